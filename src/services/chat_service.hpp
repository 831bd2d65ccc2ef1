// The AI task endpoints' domain: chat (plain and streamed), summarize and translate. Picks the
// provider serving the requested model, resolves whose key to use (the provider's credential
// mode: the caller's vault key, the deployment's key, or either), calls it and extracts the reply
// and usage. Asynchronous (coroutines on the caller's loop); never blocks.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "auth/principal.hpp"
#include "crypto/secret.hpp"
#include "provider/provider.hpp"
#include "services/limiter.hpp"
#include "services/router.hpp"
#include "services/usage_recorder.hpp"

namespace parley::services {

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

struct ChatInput {
  std::vector<ChatMessage> messages;
  std::optional<std::string> model;
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
  std::string_view endpoint = "chat";  // for usage accounting: chat, summarize, translate
  // A serialized `response_format` object sent as is (structured output), e.g. a json_schema.
  std::optional<std::string> response_format;
};

// What parley's own routes use when a request sets no temperature or max_tokens ([defaults]).
struct ChatDefaults {
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
};

using Usage = provider::TokenUsage;

struct ChatOutput {
  std::string content;
  std::string model;
  Usage usage;
  std::int64_t latency_ms = 0;
  RateLimitInfo limits;  // the caller's limits after this call was admitted (response headers)
};

// Where a caller's own provider key comes from (the vault). An interface rather than a callable
// holding a lambda coroutine: see docs/ARCHITECTURE.md, "Coroutines". The arguments are taken by
// value because an implementation reads them after a suspension.
class OwnKeys {
 public:
  virtual ~OwnKeys() = default;
  // The user's key for `provider`; nullopt when none is stored; kApiKeyDecryptionFailed when the
  // stored key no longer decrypts.
  virtual boost::asio::awaitable<Result<std::optional<crypto::Secret>>> find(std::string user_id,
                                                                             std::string provider) = 0;
};

// Called per streamed token; returns false when the client is gone.
using TokenSink = std::function<boost::asio::awaitable<bool>(std::string_view token)>;

class ChatService {
 public:
  // `usage` may be null (no accounting, e.g. in tests); `limiter` too (no limits).
  ChatService(const provider::ProviderRegistry& providers, OwnKeys& own_keys, std::string default_model,
              UsageRecorder* usage = nullptr, Limiter* limiter = nullptr, ChatDefaults defaults = {},
              RoutingOptions routing = {})
      : providers_(providers),
        own_keys_(own_keys),
        default_model_(std::move(default_model)),
        usage_(usage),
        limiter_(limiter),
        defaults_(defaults),
        router_(providers, std::move(routing)) {}

  boost::asio::awaitable<Result<ChatOutput>> chat(const auth::Principal& who, const ChatInput& input,
                                                  const std::string& request_id);
  // Streams tokens to `sink`; the result carries the full text and usage (or the error that ended
  // the stream, possibly after some tokens).
  boost::asio::awaitable<Result<ChatOutput>> chat_stream(const auth::Principal& who, const ChatInput& input,
                                                         const std::string& request_id, TokenSink sink);

  [[nodiscard]] const std::string& default_model() const { return default_model_; }
  [[nodiscard]] const ChatDefaults& defaults() const { return defaults_; }
  [[nodiscard]] UsageRecorder* usage() const { return usage_; }
  [[nodiscard]] const provider::ProviderRegistry& providers() const { return providers_; }
  // Every provider call goes through it (deployments, cooldowns, fallbacks).
  [[nodiscard]] Router& router() { return router_; }

  // Is a provider usable by this caller: no key needed, a system key configured, or the caller's own
  // key in the vault (for byok modes)?
  boost::asio::awaitable<Result<bool>> usable(const auth::Principal& who,
                                              const provider::ProviderEntry& entry);

  // Resolves the deployments and keys for a model (exposed for the /v1 gateway): the model's
  // deployments, then its fallback models' (services/router.hpp), each with the key this caller
  // uses for it; those without one are skipped. None at all: the error for the model's first
  // provider (unknown model, no key configured, no system key).
  using Route = services::Route;
  boost::asio::awaitable<Result<Route>> route(const auth::Principal& who, std::optional<std::string> model,
                                              const std::string& request_id);
  // Checks and reserves the caller's limits for a call on `route` (docs/LIMITS.md): the prompt's
  // estimated tokens plus max_tokens (else defaults.max_tokens, else limits.default_max_tokens).
  // The errors of Limiter::admit.
  boost::asio::awaitable<Status> admit(const auth::Principal& who, Route& route, std::int64_t prompt_tokens,
                                       std::optional<std::int64_t> max_tokens);
  // route() then admit() for a ChatInput.
  boost::asio::awaitable<Result<Route>> prepare(const auth::Principal& who, const ChatInput& input,
                                                const std::string& request_id);
  // Settles the route's reservation with a call's usage and returns its cost in nano-USD.
  static std::int64_t settle(const Route& route, int status, const Usage& usage);
  // Settles the route's reservation and records the call in usage (when accounting is on).
  void account(const auth::Principal& who, const Route& route, std::string_view endpoint, int status,
               bool streamed, const Usage& usage, std::int64_t latency_ms);

  // Streams with an already resolved route (the caller resolved it first, e.g. to refuse a request
  // before storing anything); `t0` is when the request started, for the latency. A sink that
  // returns false ends the call early; the result then holds what arrived until then.
  boost::asio::awaitable<Result<ChatOutput>> stream(const auth::Principal& who, const Route& route,
                                                    const ChatInput& input, TokenSink sink,
                                                    std::chrono::steady_clock::time_point t0);

 private:
  [[nodiscard]] std::string request_body(const ChatInput& input, const std::string& model, bool stream) const;
  // The key this caller uses for `entry` (nullopt: none needed), or why there is none.
  boost::asio::awaitable<Result<std::optional<crypto::Secret>>> resolve_key(
      const auth::Principal& who, const provider::ProviderEntry& entry);

  const provider::ProviderRegistry& providers_;
  OwnKeys& own_keys_;
  std::string default_model_;
  UsageRecorder* usage_;
  Limiter* limiter_;
  ChatDefaults defaults_;
  Router router_;
};

// Tokens a prompt is reserved for before the provider counts them: characters / 4 (rounded up)
// plus 4 per message.
std::int64_t estimate_prompt_tokens(const std::vector<ChatMessage>& messages);

// Validates messages: roles system/user/assistant, user content 1..max_chars characters.
Status check_messages(const std::vector<ChatMessage>& messages, std::size_t max_chars);

}  // namespace parley::services
