#include "services/chat_service.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>

#include "core/text.hpp"

namespace parley::services {

namespace asio = boost::asio;
namespace bj = boost::json;

Status check_messages(const std::vector<ChatMessage>& messages, std::size_t max_chars) {
  if (messages.empty()) return validation("messages", "messages must contain at least one message");
  if (messages.size() > 256) return validation("messages", "messages may contain at most 256 messages");
  bool has_user = false;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    std::string param = fmt::format("messages[{}]", i);
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      return validation(param + ".role", "role must be system, user or assistant");
    }
    const std::size_t chars = utf8_chars(m.content);
    if (m.role == "user") {
      has_user = true;
      if (chars < 1 || chars > max_chars) {
        return validation(param + ".content",
                          fmt::format("user content must be 1 to {} characters", max_chars));
      }
    } else if (chars > max_chars * 4) {
      return validation(param + ".content", "content is too long");
    }
  }
  if (!has_user) return validation("messages", "messages must include a user message");
  return {};
}

std::int64_t estimate_prompt_tokens(const std::vector<ChatMessage>& messages) {
  std::int64_t tokens = 0;
  for (const auto& m : messages) tokens += 4 + (static_cast<std::int64_t>(m.content.size()) + 3) / 4;
  return tokens;
}

std::string ChatService::request_body(const ChatInput& input, const std::string& model, bool stream) const {
  bj::array messages;
  for (const auto& m : input.messages)
    messages.push_back(bj::object{{"role", m.role}, {"content", m.content}});
  bj::object body{{"model", model}, {"messages", std::move(messages)}};
  if (auto t = input.temperature ? input.temperature : defaults_.temperature) body["temperature"] = *t;
  if (auto m = input.max_tokens ? input.max_tokens : defaults_.max_tokens) body["max_tokens"] = *m;
  if (input.response_format) {
    boost::system::error_code ec;
    bj::value format = bj::parse(*input.response_format, ec);
    if (!ec) body["response_format"] = std::move(format);
  }
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = bj::object{{"include_usage", true}};
  }
  return bj::serialize(body);
}

asio::awaitable<Result<std::optional<crypto::Secret>>> ChatService::resolve_key(
    const auth::Principal& who, const provider::ProviderEntry& entry) {
  using Key = std::optional<crypto::Secret>;
  if (!entry.provider->needs_key()) co_return Key{};
  using provider::Credentials;
  if (entry.credentials != Credentials::kSystem) {
    auto own = co_await own_keys_.find(who.user_id, entry.provider->name());
    if (!own) co_return std::unexpected(own.error());
    if (*own) co_return std::move(*own);
    if (entry.credentials == Credentials::kByok) {
      co_return fail(
          ErrorKind::kApiKeyNotConfigured,
          fmt::format("No API key for provider \"{}\"; set one with PUT /api/v1/users/{{user_id}}/api-key",
                      entry.provider->name()));
    }
  }
  if (!entry.system_key) {
    co_return fail(ErrorKind::kUnavailable,
                   fmt::format("Provider \"{}\" has no system key configured", entry.provider->name()));
  }
  co_return Key{*entry.system_key};
}

asio::awaitable<Result<ChatService::Route>> ChatService::route(const auth::Principal& who,
                                                               std::optional<std::string> model,
                                                               const std::string& request_id) {
  Route r;
  r.requested_model = model.value_or(default_model_);
  const provider::ProviderEntry* first = providers_.find_by_model(r.requested_model);
  if (first == nullptr) {
    co_return fail(
        ErrorKind::kValidation,
        fmt::format("Unknown model \"{}\"; allowed: {}", r.requested_model, providers_.allowed_models()),
        std::string("model"));
  }
  r.call.request_id = request_id;
  std::vector<std::string> models{r.requested_model};
  const std::vector<std::string>& fallbacks = router_.fallbacks(r.requested_model);
  models.insert(models.end(), fallbacks.begin(), fallbacks.end());
  // One key lookup per provider, however many of the candidates it serves.
  std::vector<std::pair<const provider::ProviderEntry*, std::optional<std::optional<crypto::Secret>>>> keys;
  for (const std::string& m : models) {
    std::vector<Candidate> found = router_.deployments(m);
    for (Candidate& c : found) {
      auto known = std::find_if(keys.begin(), keys.end(), [&c](const auto& k) { return k.first == c.entry; });
      if (known == keys.end()) {
        auto key = co_await resolve_key(who, *c.entry);
        std::optional<std::optional<crypto::Secret>> resolved;
        if (key) resolved = std::move(*key);
        keys.emplace_back(c.entry, std::move(resolved));
        known = std::prev(keys.end());
      }
      if (!known->second) continue;  // no key for this caller: skipped
      c.api_key = *known->second;
      r.candidates.push_back(std::move(c));
    }
  }
  if (r.candidates.empty()) {
    auto key = co_await resolve_key(who, *first);
    if (!key) co_return std::unexpected(key.error());
    Candidate c;
    c.entry = first;
    c.model = r.requested_model;
    c.api_key = std::move(*key);
    c.id = static_cast<std::size_t>(first - providers_.entries().data());
    r.candidates.push_back(std::move(c));
  }
  r.entry = r.candidates.front().entry;
  r.model = r.candidates.front().model;
  r.call.api_key = r.candidates.front().api_key;
  co_return r;
}

asio::awaitable<Status> ChatService::admit(const auth::Principal& who, Route& route,
                                           std::int64_t prompt_tokens,
                                           std::optional<std::int64_t> max_tokens) {
  if (limiter_ == nullptr) co_return Status{};
  if (!max_tokens) max_tokens = defaults_.max_tokens;
  const std::int64_t tokens = limiter_->reservation_tokens(prompt_tokens, max_tokens);
  const std::int64_t cost =
      route.entry->cost_nanos(route.model, prompt_tokens, tokens - std::max<std::int64_t>(prompt_tokens, 0));
  auto admitted = co_await limiter_->admit(who, tokens, cost);
  if (!admitted) co_return std::unexpected(admitted.error());
  route.admission = std::move(*admitted);
  co_return Status{};
}

asio::awaitable<Result<ChatService::Route>> ChatService::prepare(const auth::Principal& who,
                                                                 const ChatInput& input,
                                                                 const std::string& request_id) {
  auto r = co_await route(who, input.model, request_id);
  if (!r) co_return std::unexpected(r.error());
  const std::int64_t prompt = estimate_prompt_tokens(input.messages);
  Status admitted = co_await admit(who, *r, prompt, input.max_tokens);
  if (!admitted) co_return std::unexpected(admitted.error());
  co_return r;
}

std::int64_t ChatService::settle(const Route& route, int status, const Usage& usage) {
  const std::int64_t cost =
      route.entry->cost_nanos(route.model, usage.prompt_tokens, usage.completion_tokens);
  std::int64_t tokens = usage.total_tokens;
  // A successful call whose provider reported no usage keeps what was reserved.
  if (tokens == 0 && status >= 200 && status < 300) tokens = route.admission.reservation.reserved_tokens();
  route.admission.reservation.settle(tokens, cost);
  return cost;
}

namespace {

// A provider's failure after the call was admitted still tells the client where its limits stand.
Error with_limits(Error e, const RateLimitInfo& limits) {
  if (!e.rate && (limits.requests || limits.tokens)) e.rate = std::make_shared<RateLimitInfo>(limits);
  return e;
}

// A provider's verdict on a request parley itself built (parley's own endpoints relay none).
Error rejection_error(unsigned status) {
  return {ErrorKind::kOpenAiApiError, fmt::format("The provider failed (HTTP {})", status)};
}

std::int64_t since_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void ChatService::account(const auth::Principal& who, const Route& route, std::string_view endpoint,
                          int status, bool streamed, const Usage& usage, std::int64_t latency_ms) {
  if (usage_ == nullptr) {
    settle(route, status, usage);
    return;
  }
  store::UsageEvent e;
  e.user_id = who.user_id;
  e.api_key_id = who.api_key_id;
  e.provider = route.entry->provider->name();
  e.model = route.model;
  e.endpoint = std::string(endpoint);
  e.status = status;
  e.streamed = streamed;
  e.prompt_tokens = usage.prompt_tokens;
  e.completion_tokens = usage.completion_tokens;
  e.total_tokens = usage.total_tokens;
  e.latency_ms = latency_ms;
  e.request_id = route.call.request_id;
  e.cost_nanos = settle(route, status, usage);
  usage_->record(std::move(e));
}

asio::awaitable<Result<bool>> ChatService::usable(const auth::Principal& who,
                                                  const provider::ProviderEntry& entry) {
  if (!entry.provider->needs_key()) co_return true;
  using provider::Credentials;
  if (entry.credentials != Credentials::kByok && entry.system_key) co_return true;
  if (entry.credentials == Credentials::kSystem) co_return false;
  auto own = co_await own_keys_.find(who.user_id, entry.provider->name());
  if (!own) co_return std::unexpected(own.error());
  co_return own->has_value();
}

asio::awaitable<Result<ChatOutput>> ChatService::chat(const auth::Principal& who, const ChatInput& input,
                                                      const std::string& request_id) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = co_await prepare(who, input, request_id);
  if (!r) co_return std::unexpected(r.error());
  std::string body = request_body(input, r->requested_model, false);
  auto res = co_await router_.post(*r, "/chat/completions", std::move(body));
  if (res && !res->ok()) res = std::unexpected(rejection_error(res->status));
  if (!res) co_return std::unexpected(with_limits(std::move(res.error()), r->admission.info));
  boost::system::error_code ec;
  bj::value v = bj::parse(res->body, ec);
  ChatOutput out;
  out.model = r->model;
  out.limits = r->admission.info;
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    if (auto m = o.find("model"); m != o.end() && m->value().is_string())
      out.model = std::string(m->value().as_string());
    if (auto c = o.find("choices"); c != o.end() && c->value().is_array() && !c->value().as_array().empty()) {
      const auto& first = c->value().as_array()[0];
      if (first.is_object() && first.as_object().contains("message")) {
        const auto& msg = first.as_object().at("message");
        if (msg.is_object() && msg.as_object().contains("content") &&
            msg.as_object().at("content").is_string()) {
          out.content = std::string(msg.as_object().at("content").as_string());
        }
      }
    }
    out.usage = provider::usage_in(v).value_or(Usage{});
  } else {
    co_return std::unexpected(with_limits(
        Error(ErrorKind::kOpenAiApiError, "The provider returned an invalid response"), r->admission.info));
  }
  out.latency_ms = since_ms(t0);
  account(who, *r, input.endpoint, 200, false, out.usage, out.latency_ms);
  co_return out;
}

asio::awaitable<Result<ChatOutput>> ChatService::chat_stream(const auth::Principal& who,
                                                             const ChatInput& input,
                                                             const std::string& request_id, TokenSink sink) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = co_await prepare(who, input, request_id);
  if (!r) co_return std::unexpected(r.error());
  co_return co_await stream(who, *r, input, std::move(sink), t0);
}

asio::awaitable<Result<ChatOutput>> ChatService::stream(const auth::Principal& who, const Route& route,
                                                        const ChatInput& input, TokenSink sink,
                                                        std::chrono::steady_clock::time_point t0) {
  Route routed = route;  // names the deployment that answered once the call is done
  Route* r = &routed;
  ChatOutput out;
  out.model = r->model;
  out.limits = r->admission.info;
  provider::EventSink events = [&](std::string_view data) -> asio::awaitable<bool> {
    boost::system::error_code ec;
    bj::value v = bj::parse(data, ec);
    if (ec || !v.is_object()) co_return true;  // tolerate keep-alive noise
    const auto& o = v.as_object();
    if (auto u = provider::usage_in(v)) out.usage = *u;
    if (auto c = o.find("choices"); c != o.end() && c->value().is_array() && !c->value().as_array().empty()) {
      const auto& first = c->value().as_array()[0];
      if (first.is_object()) {
        auto d = first.as_object().find("delta");
        if (d != first.as_object().end() && d->value().is_object()) {
          auto content = d->value().as_object().find("content");
          if (content != d->value().as_object().end() && content->value().is_string() &&
              !content->value().as_string().empty()) {
            std::string_view token = content->value().as_string();
            out.content.append(token);
            if (!co_await sink(token)) co_return false;
          }
        }
      }
    }
    co_return true;
  };
  std::string body = request_body(input, r->requested_model.empty() ? r->model : r->requested_model, true);
  auto res = co_await router_.post_stream(*r, "/chat/completions", std::move(body), events);
  if (res && res->rejected()) res = std::unexpected(rejection_error(res->status));
  out.model = r->model;
  out.latency_ms = since_ms(t0);
  if (!res) {
    if (!out.content.empty())
      account(who, *r, input.endpoint, res.error().status(), true, out.usage, out.latency_ms);
    co_return std::unexpected(with_limits(std::move(res.error()), r->admission.info));
  }
  account(who, *r, input.endpoint, 200, true, out.usage, out.latency_ms);
  co_return out;
}

}  // namespace parley::services
