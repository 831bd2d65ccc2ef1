#include "provider/openai_provider.hpp"

namespace parley::provider {

namespace asio = boost::asio;

void OpenAiCompatibleProvider::add_credentials(HttpRequest& req, const CallContext& ctx) const {
  if (ctx.api_key) req.headers.emplace_back("Authorization", "Bearer " + std::string(ctx.api_key->reveal()));
}

asio::awaitable<Result<ProviderResponse>> OpenAiCompatibleProvider::post(const CallContext& ctx,
                                                                         std::string_view path,
                                                                         std::string body) {
  co_return co_await exchange(ctx, path, std::move(body), "application/json", true);
}

asio::awaitable<Result<ProviderResponse>> OpenAiCompatibleProvider::post_raw(const CallContext& ctx,
                                                                             std::string_view path,
                                                                             std::string body,
                                                                             std::string content_type) {
  co_return co_await exchange(ctx, path, std::move(body), content_type, false);
}

asio::awaitable<Result<StreamOutcome>> OpenAiCompatibleProvider::post_stream(const CallContext& ctx,
                                                                             std::string_view path,
                                                                             std::string body,
                                                                             EventSink sink) {
  co_return co_await exchange_stream(ctx, path, std::move(body), std::move(sink),
                                     upstream::StreamFraming::kOpenAi);
}

asio::awaitable<Status> OpenAiCompatibleProvider::verify_key(const CallContext& ctx) {
  co_return co_await check_key(ctx);
}

}  // namespace parley::provider
