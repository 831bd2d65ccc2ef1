// An OpenAI-compatible HTTP provider (OpenAI itself, parley-mock, vLLM, …): POST
// {base}/chat/completions, /embeddings, /audio/… and GET {base}/models with the key as
// `Authorization: Bearer`, relayed as received, with the retry policy of HttpProvider.
#pragma once

#include "provider/http_provider.hpp"

namespace parley::provider {

class OpenAiCompatibleProvider final : public HttpProvider {
 public:
  using HttpProvider::HttpProvider;

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
};

}  // namespace parley::provider
