#include "provider/anthropic_provider.hpp"

#include <fmt/format.h>

#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <vector>

#include "translate/anthropic.hpp"
#include "upstream/json_outline.hpp"

namespace parley::provider {

namespace asio = boost::asio;
namespace bj = boost::json;

namespace {

constexpr std::string_view kChatPath = "/chat/completions";
constexpr std::string_view kMessagesPath = "/messages";
constexpr std::string_view kCountTokensPath = "/messages/count_tokens";

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The chat request's own fields the translated answer needs.
translate::ChatMeta chat_meta(const bj::object& request) {
  translate::ChatMeta meta;
  meta.created = now_s();
  if (const bj::value* model = request.if_contains("model"); model != nullptr && model->is_string())
    meta.model = model->get_string();
  if (const bj::value* so = request.if_contains("stream_options"); so != nullptr && so->is_object()) {
    const bj::value* usage = so->get_object().if_contains("include_usage");
    meta.include_usage = usage != nullptr && usage->is_bool() && usage->get_bool();
  }
  return meta;
}

Result<bj::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  bj::value doc = bj::parse(text, ec);
  if (ec) return fail(ErrorKind::kInvalidJson, "Request body is not valid JSON");
  if (!doc.is_object()) return fail(ErrorKind::kBadRequest, "Request body must be a JSON object");
  return std::move(doc.get_object());
}

}  // namespace

AnthropicProvider::AnthropicProvider(std::string name, Endpoint endpoint, HttpClient& client,
                                     upstream::RetryConfig retry, Timeouts timeouts,
                                     std::string anthropic_version)
    : HttpProvider(std::move(name), std::move(endpoint), client, retry, timeouts),
      anthropic_version_(std::move(anthropic_version)) {}

void AnthropicProvider::add_credentials(HttpRequest& req, const CallContext& ctx) const {
  if (ctx.api_key) req.headers.emplace_back("x-api-key", std::string(ctx.api_key->reveal()));
  req.headers.emplace_back("anthropic-version", anthropic_version_);
}

Error AnthropicProvider::not_offered(std::string_view path) const {
  return {ErrorKind::kBadRequest,
          fmt::format("The provider \"{}\" speaks Anthropic's Messages API, which does not offer {}", name(),
                      path.empty() ? std::string_view("this endpoint") : path.substr(1))};
}

asio::awaitable<Result<ProviderResponse>> AnthropicProvider::post(const CallContext& ctx,
                                                                  std::string_view path, std::string body) {
  if (path == kChatPath) co_return co_await post_chat(ctx, std::move(body));
  if (path != kMessagesPath && path != kCountTokensPath) co_return std::unexpected(not_offered(path));
  auto res = co_await exchange(ctx, path, std::move(body), "application/json", true);
  if (res && res->ok()) {
    // exchange() read OpenAI's usage names; a message has Anthropic's.
    res->usage.reset();
    if (path == kMessagesPath) {
      if (std::optional<AnthropicFacts> facts = inspect_anthropic(res->body)) {
        AnthropicUsage usage;
        usage.add(*facts);
        if (usage.reported) res->usage = usage.total();
      }
    }
  }
  co_return res;
}

asio::awaitable<Result<ProviderResponse>> AnthropicProvider::post_chat(const CallContext& ctx,
                                                                       std::string body) {
  auto request = parse_object(body);
  if (!request) co_return std::unexpected(std::move(request.error()));
  auto translated = translate::chat_request_to_anthropic(*request);
  if (!translated) co_return std::unexpected(std::move(translated.error()));
  translated->erase("stream");
  const translate::ChatMeta meta = chat_meta(*request);
  auto res = co_await exchange(ctx, kMessagesPath, bj::serialize(*translated), "application/json", true);
  if (!res) co_return res;
  if (!res->ok()) {
    res->body = openai_error_from_anthropic(res->status, res->body);
    res->content_type = "application/json";
    co_return res;
  }
  boost::system::error_code ec;
  const bj::value message = bj::parse(res->body, ec);
  if (ec || !message.is_object())
    co_return fail(ErrorKind::kOpenAiApiError, "The provider's answer is not a JSON object");
  auto chat = translate::anthropic_response_to_chat(message.get_object(), meta);
  if (!chat) co_return std::unexpected(std::move(chat.error()));
  res->usage = usage_in(bj::value(*chat));
  res->body = bj::serialize(*chat);
  co_return res;
}

asio::awaitable<Result<StreamOutcome>> AnthropicProvider::post_stream(const CallContext& ctx,
                                                                      std::string_view path, std::string body,
                                                                      EventSink sink) {
  if (path == kChatPath) co_return co_await post_chat_stream(ctx, std::move(body), std::move(sink));
  if (path != kMessagesPath) co_return std::unexpected(not_offered(path));
  co_return co_await exchange_stream(ctx, path, std::move(body), std::move(sink),
                                     upstream::StreamFraming::kAnthropic);
}

asio::awaitable<Result<StreamOutcome>> AnthropicProvider::post_chat_stream(const CallContext& ctx,
                                                                           std::string body, EventSink sink) {
  auto request = parse_object(body);
  if (!request) co_return std::unexpected(std::move(request.error()));
  auto translated = translate::chat_request_to_anthropic(*request);
  if (!translated) co_return std::unexpected(std::move(translated.error()));
  translated->insert_or_assign("stream", true);
  // A stream is retried only before its first event, so one translator serves every attempt.
  translate::AnthropicToChatStream translator(chat_meta(*request));
  std::vector<bj::object> chunks;
  std::optional<Error> failed;
  EventSink translate_sink = [&](std::string_view data) -> asio::awaitable<bool> {
    boost::system::error_code ec;
    const bj::value event = bj::parse(data, ec);
    if (ec || !event.is_object()) co_return true;
    chunks.clear();
    const Status fed = translator.feed(event.get_object(), chunks);
    if (!fed) failed = fed.error();
    for (const bj::object& chunk : chunks) {
      const std::string text = bj::serialize(chunk);
      if (!co_await sink(text)) co_return false;
    }
    co_return true;
  };
  auto out = co_await exchange_stream(ctx, kMessagesPath, bj::serialize(*translated), translate_sink,
                                      upstream::StreamFraming::kAnthropic);
  if (out && out->rejected()) {
    out->error_body = openai_error_from_anthropic(out->status, out->error_body);
    co_return out;
  }
  if (out && failed) co_return std::unexpected(std::move(*failed));
  co_return out;
}

asio::awaitable<Result<ProviderResponse>> AnthropicProvider::post_raw(const CallContext& /*ctx*/,
                                                                      std::string_view path,
                                                                      std::string /*body*/,
                                                                      std::string /*content_type*/) {
  co_return std::unexpected(not_offered(path));
}

asio::awaitable<Status> AnthropicProvider::verify_key(const CallContext& ctx) {
  co_return co_await check_key(ctx);
}

std::optional<AnthropicFacts> inspect_anthropic(std::string_view json) {
  // Two levels at most in an outline: message_start's message.usage (once a stream) is read from a
  // parsed document.
  static constexpr std::string_view kPaths[] = {"type",
                                                "usage.input_tokens",
                                                "usage.output_tokens",
                                                "usage.cache_read_input_tokens",
                                                "usage.cache_creation_input_tokens",
                                                "message"};
  std::optional<upstream::JsonOutline> doc = upstream::outline(json, kPaths);
  if (!doc || doc->root != upstream::JsonKind::kObject) return std::nullopt;
  AnthropicFacts facts;
  if (doc->members[0].kind == upstream::JsonKind::kString) facts.type = doc->members[0].text;
  std::array<std::optional<std::int64_t>, 4> counts;  // input, output, cache read, cache creation
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (doc->members[i + 1].kind == upstream::JsonKind::kInt) counts[i] = doc->members[i + 1].integer;
  }
  if (doc->members[5].kind == upstream::JsonKind::kObject) {
    boost::system::error_code ec;
    const bj::value parsed = bj::parse(json, ec);
    const bj::value* usage = ec ? nullptr : parsed.find_pointer("/message/usage", ec);
    if (usage != nullptr && usage->is_object()) {
      static constexpr std::string_view kNames[] = {"input_tokens", "output_tokens",
                                                    "cache_read_input_tokens", "cache_creation_input_tokens"};
      for (std::size_t i = 0; i < counts.size(); ++i) {
        const bj::value* n = usage->get_object().if_contains(kNames[i]);
        if (n != nullptr && n->is_int64()) counts[i] = n->get_int64();
      }
    }
  }
  if (counts[0]) facts.input_tokens = *counts[0] + counts[2].value_or(0) + counts[3].value_or(0);
  facts.output_tokens = counts[1];
  return facts;
}

void AnthropicUsage::add(const AnthropicFacts& facts) {
  if (facts.input_tokens) input_tokens = *facts.input_tokens;
  if (facts.output_tokens) output_tokens = *facts.output_tokens;
  reported = reported || facts.input_tokens || facts.output_tokens;
}

std::string openai_error_from_anthropic(unsigned status, std::string_view body) {
  boost::system::error_code ec;
  const bj::value doc = bj::parse(body, ec);
  const bj::object* parsed = !ec && doc.is_object() ? &doc.get_object() : nullptr;
  const Error error = translate::error_from_anthropic(static_cast<int>(status), parsed);
  const ErrorInfo& info = error.info();
  bj::object e{{"message", error.message}, {"type", info.type}, {"param", nullptr}, {"code", info.code}};
  return bj::serialize(bj::object{{"error", std::move(e)}});
}

}  // namespace parley::provider
