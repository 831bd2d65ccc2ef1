// What every HTTP provider kind shares (OpenAiCompatibleProvider, AnthropicProvider): one exchange
// or one stream with the retry policy of PRODUCT.md — at most max_retries retries, exponential
// backoff with jitter, Retry-After honoured up to a cap, only on 429/500/502/503/504/529 and
// network failures before any response byte, never once a streamed event reached the client,
// never past the request deadline. Each retry and failure is logged with provider, status, attempt
// and request id — never the key, never the provider's message (which may quote the key).
//
// A kind says how its requests carry the key (add_credentials) and how its streams end
// (upstream::StreamFraming); the rest is here.
#pragma once

#include <chrono>

#include "provider/http_client.hpp"
#include "provider/provider.hpp"
#include "upstream/retry_policy.hpp"
#include "upstream/stream_relay.hpp"

namespace parley::provider {

class HttpProvider : public Provider {
 public:
  HttpProvider(std::string name, Endpoint endpoint, HttpClient& client, upstream::RetryConfig retry,
               Timeouts timeouts);

  [[nodiscard]] const std::string& name() const override { return name_; }
  [[nodiscard]] bool needs_key() const override { return true; }

 protected:
  // The kind's own headers: the key (Authorization: Bearer, x-api-key, ...), an API version.
  virtual void add_credentials(HttpRequest& req, const CallContext& ctx) const = 0;

  HttpRequest make_request(const CallContext& ctx, boost::beast::http::verb method, std::string_view path,
                           std::string body, std::string_view content_type = "application/json") const;
  // POST {base}{path}: a 2xx or a relayable rejection, else an Error. A 2xx answer is checked to
  // be one JSON object (and its chat-completions usage read) only when `json_answer`.
  boost::asio::awaitable<Result<ProviderResponse>> exchange(const CallContext& ctx, std::string_view path,
                                                            std::string body, std::string_view content_type,
                                                            bool json_answer);
  // POST {base}{path} for a streamed answer; each event's data goes to `sink`.
  boost::asio::awaitable<Result<StreamOutcome>> exchange_stream(const CallContext& ctx, std::string_view path,
                                                                std::string body, EventSink sink,
                                                                upstream::StreamFraming framing);
  // GET {base}/models: kInvalidApiKey on 401/403.
  boost::asio::awaitable<Status> check_key(const CallContext& ctx);
  [[nodiscard]] Error final_error(upstream::FailureKind kind, unsigned status) const;

 private:
  std::string name_;
  Endpoint endpoint_;
  HttpClient& client_;
  upstream::RetryConfig retry_;
  Timeouts timeouts_;
};

}  // namespace parley::provider
