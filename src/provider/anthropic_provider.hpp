// A provider that speaks Anthropic's Messages API upstream (`kind = "anthropic"`): the key in
// `x-api-key`, the API version in `anthropic-version`, the retry policy of HttpProvider (529
// "overloaded" retried like 503). By path:
//
//   "/chat/completions"       the chat-completions body is translated to a Messages request and
//                             the answer back (src/translate/anthropic.hpp): post() returns a
//                             chat.completion, post_stream() sends chat.completion.chunk data (the
//                             usage chunk when the body asks for stream_options.include_usage). A
//                             rejection (400/404/409/413/422) comes back in OpenAI's error envelope.
//   "/messages"               relayed as is: the body, the answer, each event's data (its `type`
//                             names the event); usage read from Anthropic's fields.
//   "/messages/count_tokens"  relayed as is.
//   anything else             (embeddings, audio) a 400 naming what this kind does not offer.
//
// verify_key: GET {base}/models with the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "provider/http_provider.hpp"

namespace parley::provider {

inline constexpr std::string_view kDefaultAnthropicVersion = "2023-06-01";

class AnthropicProvider final : public HttpProvider {
 public:
  AnthropicProvider(std::string name, Endpoint endpoint, HttpClient& client, upstream::RetryConfig retry,
                    Timeouts timeouts, std::string anthropic_version = std::string(kDefaultAnthropicVersion));

  [[nodiscard]] ProviderKind kind() const override { return ProviderKind::kAnthropic; }
  boost::asio::awaitable<Result<ProviderResponse>> post(const CallContext& ctx, std::string_view path,
                                                        std::string body) override;
  boost::asio::awaitable<Result<StreamOutcome>> post_stream(const CallContext& ctx, std::string_view path,
                                                            std::string body, EventSink sink) override;
  boost::asio::awaitable<Result<ProviderResponse>> post_raw(const CallContext& ctx, std::string_view path,
                                                            std::string body,
                                                            std::string content_type) override;
  boost::asio::awaitable<Status> verify_key(const CallContext& ctx) override;

 protected:
  void add_credentials(HttpRequest& req, const CallContext& ctx) const override;

 private:
  boost::asio::awaitable<Result<ProviderResponse>> post_chat(const CallContext& ctx, std::string body);
  boost::asio::awaitable<Result<StreamOutcome>> post_chat_stream(const CallContext& ctx, std::string body,
                                                                 EventSink sink);
  [[nodiscard]] Error not_offered(std::string_view path) const;

  std::string anthropic_version_;
};

// An Anthropic message or stream event, read without building a document: its "type" and the
// token counts it reports — a message's `usage`, message_start's `message.usage`, message_delta's
// `usage`. Input tokens include the cached ones (cache_read_ / cache_creation_input_tokens).
// nullopt unless the text is one JSON object.
struct AnthropicFacts {
  std::string type;
  std::optional<std::int64_t> input_tokens;
  std::optional<std::int64_t> output_tokens;
};
[[nodiscard]] std::optional<AnthropicFacts> inspect_anthropic(std::string_view json);

// The usage of an Anthropic answer or stream: each count as last reported.
struct AnthropicUsage {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  bool reported = false;
  void add(const AnthropicFacts& facts);
  [[nodiscard]] TokenUsage total() const {
    return {input_tokens, output_tokens, input_tokens + output_tokens};
  }
};

// An Anthropic error answer's body (status and text) in OpenAI's error envelope:
// {"error": {"message", "type", "param": null, "code"}}, the message Anthropic's.
[[nodiscard]] std::string openai_error_from_anthropic(unsigned status, std::string_view body);

}  // namespace parley::provider
