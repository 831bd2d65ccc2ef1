#include "provider/provider.hpp"

#include <fmt/format.h>
#include <string.h>  // memmem (GNU)

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "upstream/json_outline.hpp"

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

std::optional<AnswerFacts> inspect_answer(std::string_view body) {
  static constexpr std::string_view kPaths[] = {"usage", "usage.prompt_tokens", "usage.completion_tokens",
                                                "usage.total_tokens"};
  std::optional<upstream::JsonOutline> doc = upstream::outline(body, kPaths);
  if (!doc || doc->root != upstream::JsonKind::kObject) return std::nullopt;
  AnswerFacts facts;
  if (doc->members[0].kind == upstream::JsonKind::kObject) {
    auto count = [&doc](std::size_t i) {
      return doc->members[i].kind == upstream::JsonKind::kInt ? doc->members[i].integer : 0;
    };
    TokenUsage u{count(1), count(2), count(3)};
    if (u.total_tokens == 0) u.total_tokens = u.prompt_tokens + u.completion_tokens;
    facts.usage = u;
  }
  return facts;
}

std::optional<TokenUsage> usage_of(std::string_view json_text) {
  // Most stream chunks carry no usage (or "usage":null): skip them without parsing.
  // memmem: std::string_view::find stops at every '"' of the text, and JSON has many.
  static constexpr std::string_view kKey = "\"usage\"";
  const void* found = ::memmem(json_text.data(), json_text.size(), kKey.data(), kKey.size());
  if (found == nullptr) return std::nullopt;
  std::size_t i = static_cast<std::size_t>(static_cast<const char*>(found) - json_text.data()) + kKey.size();
  while (i < json_text.size() && (json_text[i] == ' ' || json_text[i] == ':' || json_text[i] == '\n')) ++i;
  if (i >= json_text.size() || json_text[i] != '{') return std::nullopt;
  std::optional<AnswerFacts> facts = inspect_answer(json_text);
  return facts ? facts->usage : std::nullopt;
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
