// An OpenAI-compatible HTTP provider (OpenAI itself, parley-mock, vLLM, …): POST
// {base}/chat/completions and GET {base}/models, with the retry policy of PRODUCT.md — at most
// max_retries retries, exponential backoff with jitter, Retry-After honoured up to a cap, only on
// 429/500/502/503/504 and network failures before any response byte, never once a streamed event
// reached the client, never past the request deadline. Each retry and failure is logged with
// provider, status, attempt and request id — never the key, never the provider's message (which
// may quote the key).
#pragma once

#include <chrono>

#include "provider/http_client.hpp"
#include "provider/provider.hpp"
#include "upstream/retry_policy.hpp"

namespace parley::provider {

class OpenAiCompatibleProvider final : public Provider {
 public:
  OpenAiCompatibleProvider(std::string name, Endpoint endpoint, HttpClient& client,
                           upstream::RetryConfig retry, Timeouts timeouts);

  [[nodiscard]] const std::string& name() const override { return name_; }
  [[nodiscard]] bool needs_key() const override { return true; }
  boost::asio::awaitable<Result<ProviderResponse>> post(const CallContext& ctx, std::string_view path,
                                                        std::string body) override;
  boost::asio::awaitable<Result<StreamOutcome>> post_stream(const CallContext& ctx, std::string_view path,
                                                            std::string body, EventSink sink) override;
  boost::asio::awaitable<Result<ProviderResponse>> post_raw(const CallContext& ctx, std::string_view path,
                                                            std::string body,
                                                            std::string content_type) override;
  boost::asio::awaitable<Status> verify_key(const CallContext& ctx) override;

 private:
  HttpRequest make_request(const CallContext& ctx, boost::beast::http::verb method, std::string_view path,
                           std::string body, std::string_view content_type = "application/json") const;
  // post() and post_raw(): a JSON answer is checked (and its usage read) only when `json_answer`.
  boost::asio::awaitable<Result<ProviderResponse>> exchange(const CallContext& ctx, std::string_view path,
                                                            std::string body, std::string_view content_type,
                                                            bool json_answer);
  Error final_error(upstream::FailureKind kind, unsigned status) const;

  std::string name_;
  Endpoint endpoint_;
  HttpClient& client_;
  upstream::RetryConfig retry_;
  Timeouts timeouts_;
};

}  // namespace parley::provider
