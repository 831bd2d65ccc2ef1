#include "provider/provider.hpp"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace parley::provider {

namespace bj = boost::json;

namespace {

std::optional<TokenUsage> usage_from(const bj::value& doc) {
  const bj::object* o = doc.if_object();
  if (o == nullptr) return std::nullopt;
  auto it = o->find("usage");
  if (it == o->end() || !it->value().is_object()) return std::nullopt;
  const bj::object& u = it->value().as_object();
  auto count = [&u](std::string_view key) -> std::int64_t {
    auto f = u.find(key);
    if (f == u.end()) return 0;
    if (f->value().is_int64()) return f->value().as_int64();
    if (f->value().is_uint64()) return static_cast<std::int64_t>(f->value().as_uint64());
    return 0;
  };
  TokenUsage out{count("prompt_tokens"), count("completion_tokens"), count("total_tokens")};
  if (out.total_tokens == 0) out.total_tokens = out.prompt_tokens + out.completion_tokens;
  return out;
}

Error rejection_error(unsigned status) {
  return {ErrorKind::kOpenAiApiError, fmt::format("The provider failed (HTTP {})", status)};
}

}  // namespace

std::optional<TokenUsage> usage_of(std::string_view json_text) {
  // Most stream chunks carry no usage (or "usage":null): skip them without parsing.
  std::size_t at = json_text.find("\"usage\"");
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t i = at + 7;
  while (i < json_text.size() && (json_text[i] == ' ' || json_text[i] == ':' || json_text[i] == '\n')) ++i;
  if (i >= json_text.size() || json_text[i] != '{') return std::nullopt;
  boost::system::error_code ec;
  bj::value doc = bj::parse(json_text, ec);
  if (ec) return std::nullopt;
  return usage_from(doc);
}

std::optional<TokenUsage> usage_in(const bj::value& doc) {
  return usage_from(doc);
}

bool is_relayable_rejection(unsigned status) {
  return status == 400 || status == 404 || status == 409 || status == 413 || status == 422;
}

boost::asio::awaitable<Result<ProviderResponse>> Provider::chat(const CallContext& ctx, std::string body) {
  auto res = co_await post(ctx, "/chat/completions", std::move(body));
  if (res && !res->ok()) co_return std::unexpected(rejection_error(res->status));
  co_return res;
}

boost::asio::awaitable<Result<StreamOutcome>> Provider::chat_stream(const CallContext& ctx, std::string body,
                                                                    EventSink sink) {
  auto res = co_await post_stream(ctx, "/chat/completions", std::move(body), std::move(sink));
  if (res && res->rejected()) co_return std::unexpected(rejection_error(res->status));
  co_return res;
}

}  // namespace parley::provider
