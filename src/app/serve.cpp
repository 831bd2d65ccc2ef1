#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "api/assistant.hpp"
#include "api/chat.hpp"
#include "api/conversations.hpp"
#include "api/deps.hpp"
#include "api/gateway.hpp"
#include "api/openai_conversations.hpp"
#include "api/ops.hpp"
#include "api/realtime.hpp"
#include "api/responses.hpp"
#include "api/usage.hpp"
#include "api/vault.hpp"
#include "app/app.hpp"
#include "crypto/fernet.hpp"
#include "http/blocking_pool.hpp"
#include "http/server.hpp"
#include "log/redact.hpp"
#include "provider/anthropic_provider.hpp"
#include "provider/demo_provider.hpp"
#include "provider/openai_provider.hpp"
#include "redis/redis.hpp"
#include "services/limiter.hpp"
#include "services/redis_limit_store.hpp"
#include "store/migrations.hpp"
#include "store/response_store.hpp"
#include "store/usage_store.hpp"
#include "version.hpp"

namespace parley::app {
namespace {

namespace asio = boost::asio;

// A user's own provider key, decrypted by the vault on the blocking pool.
class VaultOwnKeys final : public services::OwnKeys {
 public:
  VaultOwnKeys(services::VaultService& vault, http::BlockingPool& pool) : vault_(vault), pool_(pool) {}

  asio::awaitable<Result<std::optional<crypto::Secret>>> find(std::string user_id,
                                                              std::string provider) override {
    co_return co_await pool_.run([&] { return vault_.decrypted(user_id, provider); });
  }

 private:
  services::VaultService& vault_;
  http::BlockingPool& pool_;
};

// Tries a key with the named provider (the vault's `verify: true`).
asio::awaitable<Status> verify_provider_key(const provider::ProviderRegistry& providers,
                                            std::string provider_name, crypto::Secret key) {
  const provider::ProviderEntry* entry = providers.find_by_name(provider_name);
  if (entry == nullptr)
    co_return validation("provider", "No provider called \"" + provider_name + "\" is configured");
  provider::CallContext call;
  call.api_key = std::move(key);
  co_return co_await entry->provider->verify_key(call);
}

// A number from the environment within [min, max]; nullopt otherwise.
std::optional<double> env_number(std::string_view text, double min, double max) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !(value >= min && value <= max))
    return std::nullopt;
  return value;
}

// A budget's settled usage for its period, read from the usage rows on the blocking pool.
class StoredBudgets final : public services::BudgetSource {
 public:
  StoredBudgets(store::Database& db, http::BlockingPool& pool) : db_(db), pool_(pool) {}

  asio::awaitable<Result<Used>> used(std::string key_id, std::string user_id,
                                     std::int64_t since_ms) override {
    co_return co_await pool_.run([&]() -> Result<Used> {
      store::UsageFilter filter;
      if (!key_id.empty()) filter.api_key_id = key_id;
      if (!user_id.empty()) filter.user_id = user_id;
      filter.since_ms = since_ms;
      auto totals = store::UsageStore(db_).totals(filter);
      if (!totals) return std::unexpected(totals.error());
      Used used;
      used.tokens = totals->total_tokens;
      used.cost = totals->cost_nanos;
      return used;
    });
  }

 private:
  store::Database& db_;
  http::BlockingPool& pool_;
};

// Readiness: not draining, and the database answers.
struct Components;
asio::awaitable<Status> check_ready(Components& c);

// Everything the routes need, built once in serve() and passed down explicitly.
struct Components {
  config::Config config;
  SystemClock clock;
  std::unique_ptr<store::Database> db;
  std::unique_ptr<http::BlockingPool> blocking;
  std::unique_ptr<http::Metrics> metrics;
  std::unique_ptr<services::PrincipalCache> principals;
  std::unique_ptr<services::AuditLog> audit;
  std::unique_ptr<services::LoginLimiter> login_limiter;
  std::unique_ptr<services::UserService> users;
  std::unique_ptr<services::TokenService> tokens;
  std::unique_ptr<services::ApiKeyService> keys;
  std::unique_ptr<services::PreferenceService> preferences;
  std::unique_ptr<api::Authenticator> authenticator;
  std::unique_ptr<api::IdentityDeps> identity;
  std::unique_ptr<services::VaultService> vault;
  std::unique_ptr<api::VaultDeps> vault_deps;
  std::unique_ptr<services::OwnKeys> own_keys;
  std::unique_ptr<http::BlockingPool> hashing_pool;
  std::unique_ptr<http::Gate> hashing;
  std::size_t blocking_threads = 1;
  std::unique_ptr<api::OpsDeps> ops_deps;
  std::unique_ptr<provider::HttpClient> http_client;
  provider::ProviderRegistry providers;
  std::unique_ptr<services::ChatService> chat;
  std::unique_ptr<api::ChatDeps> chat_deps;
  services::UsageMetrics usage_metrics;
  std::unique_ptr<services::UsageRecorder> usage;
  std::unique_ptr<StoredBudgets> budgets;
  std::unique_ptr<services::Limiter> limiter;
  services::RedisLimitStore* redis_limits = nullptr;  // owned by limiter when redis.url is set
  std::shared_ptr<redis::Subscriber> invalidations;
  std::unique_ptr<services::GatewayService> gateway;
  std::unique_ptr<api::GatewayDeps> gateway_deps;
  std::unique_ptr<services::GenerationRegistry> response_generations;
  std::unique_ptr<services::ResponsesService> responses;
  std::unique_ptr<api::ResponsesDeps> responses_deps;
  std::unique_ptr<services::ConversationService> conversations;
  std::unique_ptr<services::GenerationRegistry> generations;
  std::unique_ptr<services::AnswerService> answers;
  std::unique_ptr<api::ConversationDeps> conversation_deps;
  // /v1/conversations, and the ConversationItems through which /v1/responses reads and extends them.
  std::unique_ptr<services::OpenAiConversations> openai_conversations;
  std::unique_ptr<api::OpenAiConversationDeps> openai_conversation_deps;
  std::unique_ptr<services::AssistantService> assistant;
  std::unique_ptr<api::AssistantDeps> assistant_deps;
  std::unique_ptr<services::AnonymousChat> anonymous_chat;
  std::unique_ptr<api::RealtimeDeps> realtime_deps;
  std::unique_ptr<services::UsageService> usage_reader;
  std::unique_ptr<api::UsageDeps> usage_deps;
  http::Server* server = nullptr;

  // Builds the provider registry from the configuration plus the built-in providers.
  Status build_providers() {
    http_client = std::make_unique<provider::HttpClient>();
    for (std::size_t i = 0; i < config.providers.size(); ++i) {
      const auto& p = config.providers[i];
      auto endpoint = provider::parse_base_url(p.base_url);
      if (!endpoint) {
        return validation(fmt::format("providers[{}].base_url", i), endpoint.error().message);
      }
      upstream::RetryConfig retry;
      retry.max_retries = static_cast<int>(p.max_retries);
      retry.base_delay = std::chrono::milliseconds(p.base_delay_ms);
      retry.max_delay = std::chrono::milliseconds(p.max_delay_ms);
      retry.retry_after_cap = std::chrono::milliseconds(p.retry_after_cap_ms);
      provider::Timeouts t{
          std::chrono::milliseconds(p.connect_timeout_ms), std::chrono::milliseconds(p.first_byte_timeout_ms),
          std::chrono::milliseconds(p.chunk_timeout_ms), std::chrono::milliseconds(p.total_timeout_ms)};
      provider::ProviderEntry e;
      if (p.kind == "anthropic") {
        e.provider = std::make_shared<provider::AnthropicProvider>(
            p.name, *endpoint, *http_client, retry, t,
            p.anthropic_version.empty() ? std::string(provider::kDefaultAnthropicVersion)
                                        : p.anthropic_version);
      } else {
        e.provider =
            std::make_shared<provider::OpenAiCompatibleProvider>(p.name, *endpoint, *http_client, retry, t);
      }
      e.credentials = p.credentials == "system"           ? provider::Credentials::kSystem
                      : p.credentials == "byok_or_system" ? provider::Credentials::kByokOrSystem
                                                          : provider::Credentials::kByok;
      if (!p.api_key_env.empty()) {
        if (const char* key = std::getenv(p.api_key_env.c_str()); key != nullptr && *key != '\0') {
          e.system_key = crypto::Secret(std::string(key));
        } else if (e.credentials != provider::Credentials::kByok) {
          spdlog::warn("provider {}: {} is not set; calls that need the system key will fail", p.name,
                       p.api_key_env);
        }
      }
      e.models = p.models;
      e.responses = p.responses;
      e.weight = static_cast<std::uint32_t>(p.weight);
      for (const auto& price : p.prices)
        e.prices.push_back({price.pattern, price.input_per_m, price.output_per_m});
      providers.add(std::move(e));
    }
    // Seed 001's environment for the provider made from OPENAI_API_KEY (docs/ASSISTANT.md).
    std::string openai_model;
    services::ChatDefaults chat_defaults;
    if (const char* key = std::getenv("OPENAI_API_KEY");
        key != nullptr && *key != '\0' && !providers.find_by_name("openai")) {
      provider::Timeouts timeouts;
      if (const char* t = std::getenv("OPENAI_TIMEOUT"); t != nullptr && *t != '\0') {
        auto seconds = env_number(t, 1, 3600);
        if (!seconds) return validation("OPENAI_TIMEOUT", "must be a number of seconds from 1 to 3600");
        timeouts.total = std::chrono::milliseconds(std::llround(*seconds * 1000));
        timeouts.first_byte = std::min(timeouts.first_byte, timeouts.total);
      }
      if (const char* m = std::getenv("OPENAI_MODEL"); m != nullptr && *m != '\0') openai_model = m;
      if (const char* t = std::getenv("OPENAI_TEMPERATURE"); t != nullptr && *t != '\0') {
        chat_defaults.temperature = config::parse_temperature(t);
        if (!chat_defaults.temperature)
          return validation("OPENAI_TEMPERATURE", "must be a number from 0 to 2");
      }
      if (const char* t = std::getenv("OPENAI_MAX_TOKENS"); t != nullptr && *t != '\0') {
        auto n = env_number(t, 1, 1'000'000);
        if (!n || *n != std::floor(*n))
          return validation("OPENAI_MAX_TOKENS", "must be a whole number from 1 to 1000000");
        chat_defaults.max_tokens = static_cast<std::int64_t>(*n);
      }
      // OPENAI_BASE_URL as the OpenAI SDKs read it (a compatible server, a proxy of one).
      std::string base_url = "https://api.openai.com/v1";
      if (const char* b = std::getenv("OPENAI_BASE_URL"); b != nullptr && *b != '\0') base_url = b;
      auto endpoint = provider::parse_base_url(base_url);
      if (!endpoint) return validation("OPENAI_BASE_URL", endpoint.error().message);
      provider::ProviderEntry e;
      e.provider = std::make_shared<provider::OpenAiCompatibleProvider>("openai", *endpoint, *http_client,
                                                                        upstream::RetryConfig{}, timeouts);
      e.credentials = provider::Credentials::kByokOrSystem;
      e.system_key = crypto::Secret(std::string(key));
      e.models = {"gpt-*", "chatgpt-*", "o1*", "o3*", "o4*", "text-embedding-*", "tts-*", "whisper-*"};
      providers.add(std::move(e));
      if (openai_model.empty()) openai_model = "gpt-4o-mini";
    }
    // [defaults] wins over the environment.
    if (config.defaults.temperature) chat_defaults.temperature = config.defaults.temperature;
    if (config.defaults.max_tokens > 0)
      chat_defaults.max_tokens = static_cast<std::int64_t>(config.defaults.max_tokens);
    std::string default_model = !config.defaults.model.empty() ? config.defaults.model : openai_model;
    if (config.demo_provider) {
      provider::ProviderEntry e;
      e.provider = std::make_shared<provider::DemoProvider>();
      e.credentials = provider::Credentials::kSystem;
      e.models = {"demo", "demo-*"};
      providers.add(std::move(e));
      if (default_model.empty()) default_model = "demo";
    }
    if (default_model.empty()) {
      for (const auto& e : providers.entries()) {
        for (const auto& m : e.models) {
          if (default_model.empty() && !m.ends_with('*')) default_model = m;
        }
      }
    }
    own_keys = std::make_unique<VaultOwnKeys>(*vault, *blocking);
    usage = std::make_unique<services::UsageRecorder>(*db, clock, 200'000, &usage_metrics);
    const auto& lc = config.limits;
    services::LimiterOptions limits;
    limits.default_rpm = static_cast<std::int64_t>(lc.default_rpm);
    limits.default_tpm = static_cast<std::int64_t>(lc.default_tpm);
    limits.default_max_tokens = static_cast<std::int64_t>(lc.default_max_tokens);
    limits.reservation_ttl_ms = static_cast<std::int64_t>(lc.reservation_ttl_s) * 1000;
    limits.fail_open = lc.redis_failure == "fail_open";
    budgets = std::make_unique<StoredBudgets>(*db, *blocking);
    std::unique_ptr<services::LimitStore> limit_store;
    if (!lc.redis_url.empty()) {
      auto url = redis::parse_url(lc.redis_url);
      if (!url) return std::unexpected(url.error());
      auto shared =
          std::make_unique<services::RedisLimitStore>(*url, std::chrono::milliseconds(lc.redis_timeout_ms));
      redis_limits = shared.get();
      limit_store = std::move(shared);
    } else {
      limit_store = std::make_unique<services::MemoryLimitStore>();
    }
    limiter = std::make_unique<services::Limiter>(limits, std::move(limit_store), *budgets, clock);
    identity->limits = limiter.get();
    services::RoutingOptions routing;
    routing.cooldown = std::chrono::milliseconds(config.routing.cooldown_ms);
    auto fallbacks = config::parse_fallbacks(config.routing.fallbacks);
    if (!fallbacks) return std::unexpected(fallbacks.error());
    for (auto& f : *fallbacks) {
      for (const auto& m : f.fallbacks) {
        if (providers.find_by_model(m) == nullptr)
          spdlog::warn("routing.fallbacks: no provider serves \"{}\" (a fallback of \"{}\")", m, f.model);
      }
      routing.fallbacks.emplace_back(std::move(f.model), std::move(f.fallbacks));
    }
    chat = std::make_unique<services::ChatService>(providers, *own_keys, default_model, usage.get(),
                                                   limiter.get(), chat_defaults, std::move(routing));
    gateway = std::make_unique<services::GatewayService>(*chat, clock.now_s());
    gateway_deps = std::make_unique<api::GatewayDeps>(api::GatewayDeps{*gateway, *authenticator});
    usage_reader = std::make_unique<services::UsageService>(*db, clock);
    usage_deps = std::make_unique<api::UsageDeps>(api::UsageDeps{*usage_reader, *authenticator, *blocking});
    vault_deps->providers = &providers;
    vault_deps->verifier = [this](std::string provider_name, crypto::Secret key) {
      return verify_provider_key(providers, std::move(provider_name), std::move(key));
    };
    chat_deps =
        std::make_unique<api::ChatDeps>(api::ChatDeps{*chat, *authenticator, config.max_message_chars});
    const auto& cc = config.conversations;
    services::AnswerOptions answer_options;
    answer_options.budgets.fallback = static_cast<std::int64_t>(cc.context_tokens);
    auto by_model = config::parse_model_budgets(cc.context_tokens_by_model);
    if (!by_model) return std::unexpected(by_model.error());
    for (auto& b : *by_model) answer_options.budgets.by_model.emplace_back(std::move(b.pattern), b.tokens);
    answer_options.context_max_messages = static_cast<std::int64_t>(cc.context_max_messages);
    answer_options.checkpoint = std::chrono::milliseconds(cc.checkpoint_ms);
    answer_options.memory_per_answer = static_cast<std::size_t>(cc.stream_memory_per_answer);
    answer_options.memory_total = static_cast<std::size_t>(cc.stream_memory_total);
    const services::ContextBudgets answer_options_budgets = answer_options.budgets;
    conversations = std::make_unique<services::ConversationService>(*db, clock);
    generations = std::make_unique<services::GenerationRegistry>(std::chrono::seconds(cc.stream_retention_s));
    answers = std::make_unique<services::AnswerService>(*chat, *blocking, *db, clock, *generations,
                                                        std::move(answer_options));
    conversation_deps = std::make_unique<api::ConversationDeps>(api::ConversationDeps{
        *conversations, *answers, *chat, *authenticator, *blocking, config.max_message_chars});
    openai_conversations =
        std::make_unique<services::OpenAiConversations>(*conversations, *generations, *blocking, *db, clock,
                                                        static_cast<std::int64_t>(cc.context_max_messages));
    openai_conversation_deps = std::make_unique<api::OpenAiConversationDeps>(
        api::OpenAiConversationDeps{*openai_conversations, *authenticator});
    // Background responses: their own registry (a response is its own "conversation" there). A
    // response naming a conversation reads and extends it through openai_conversations.
    response_generations = std::make_unique<services::GenerationRegistry>(
        std::chrono::seconds(config.conversations.stream_retention_s));
    responses = std::make_unique<services::ResponsesService>(
        *gateway, *blocking, *db, clock, *response_generations, openai_conversations.get());
    responses_deps = std::make_unique<api::ResponsesDeps>(api::ResponsesDeps{*responses, *authenticator});
    services::AssistantOptions assistant_options;
    assistant_options.speech_model = config.defaults.speech_model;
    assistant_options.slow_turn = std::chrono::milliseconds(config.assistant_slow_turn_ms);
    assistant_options.max_text_chars = config.max_message_chars;
    assistant = std::make_unique<services::AssistantService>(
        *chat, *answers, *conversations, *preferences, *blocking, *db, clock, std::move(assistant_options));
    assistant_deps =
        std::make_unique<api::AssistantDeps>(api::AssistantDeps{*assistant, *authenticator, *blocking});
    const auto& rc = config.realtime;
    services::AnonymousOptions anonymous;
    anonymous.max_conversations = rc.anonymous_conversations;
    anonymous.max_messages = rc.anonymous_max_messages;
    anonymous.idle_ttl = std::chrono::seconds(rc.anonymous_idle_s);
    anonymous.max_tokens = static_cast<std::int64_t>(rc.anonymous_max_tokens);
    anonymous.budgets = answer_options_budgets;
    anonymous_chat = std::make_unique<services::AnonymousChat>(*chat, clock, std::move(anonymous));
    api::RealtimeOptions realtime;
    realtime.anonymous = rc.anonymous;
    realtime.user = {rc.messages_per_minute, rc.max_generations};
    realtime.guest = {rc.anonymous_messages_per_minute, 1};
    realtime.connections_per_user = rc.connections_per_user;
    realtime.max_connections = rc.max_connections;
    realtime.anonymous_connections = rc.anonymous_connections;
    realtime.anonymous_per_address = rc.anonymous_per_address;
    realtime.allowed_origins = config.cors_origins;
    realtime.max_message_bytes = rc.max_message_bytes;
    realtime_deps =
        std::make_unique<api::RealtimeDeps>(*conversation_deps, *anonymous_chat, std::move(realtime));
    return {};
  }

  // With Redis: one instance's key and user changes reach the others' caches at once.
  void share_invalidations(const asio::any_io_executor& executor) {
    if (redis_limits == nullptr) return;
    redis_limits->attach(executor);
    constexpr std::string_view kChannel = "parley:invalidate";
    keys->set_on_forget([this, kChannel](std::string_view id) {
      redis_limits->publish(std::string(kChannel), "k:" + std::string(id));
    });
    principals->set_on_invalidate([this, kChannel](std::string_view id) {
      redis_limits->publish(std::string(kChannel), "u:" + std::string(id));
    });
    invalidations = std::make_shared<redis::Subscriber>(
        executor, redis_limits->url(), std::string(kChannel),
        [this](std::string_view message) {
          if (message.starts_with("k:")) keys->forget_local(message.substr(2));
          if (message.starts_with("u:")) principals->invalidate_local(message.substr(2));
        },
        [this] {
          // Changes announced while the subscription was down are unknown: forget everything.
          keys->forget_all();
          principals->clear();
        });
    invalidations->start();
  }

  // Builds the services. With db == nullptr (listing routes) nothing is ever called on them.
  void build_services() {
    const auto& a = config.auth;
    store::Database& database = *db;
    principals =
        std::make_unique<services::PrincipalCache>(std::chrono::milliseconds(a.principal_cache_ttl_ms));
    audit = std::make_unique<services::AuditLog>(database, clock);
    login_limiter = std::make_unique<services::LoginLimiter>(
        services::LoginLimits{a.login_max_failures_per_user, a.login_max_failures_per_address,
                              std::chrono::seconds(a.login_window_s), a.registrations_per_address,
                              std::chrono::seconds(a.registration_window_s)});
    crypto::PasswordParams password{a.password_passes, a.password_memory_kib * 1024};
    users = std::make_unique<services::UserService>(
        database, clock, *principals, *audit, services::UserServiceOptions{a.open_registration, password});
    tokens = std::make_unique<services::TokenService>(database, clock, *users, *audit, *login_limiter,
                                                      crypto::Secret(config.jwt_secret), a);
    keys = std::make_unique<services::ApiKeyService>(
        database, clock, *audit,
        std::chrono::milliseconds(std::max<std::uint64_t>(a.principal_cache_ttl_ms, 1000)));
    preferences = std::make_unique<services::PreferenceService>(database, clock);
    authenticator = std::make_unique<api::Authenticator>(*tokens, *users, *keys, *principals, *blocking);
    // serve() has checked the keys (check_secrets); list_routes() has none and never encrypts.
    auto vault_keys = services::parse_encryption_keys(config.encryption_keys);
    if (!vault_keys) vault_keys = crypto::MultiFernet::create({crypto::FernetKey::generate()});
    vault = std::make_unique<services::VaultService>(database, clock, *audit, std::move(*vault_keys));
    vault_deps =
        std::make_unique<api::VaultDeps>(api::VaultDeps{*vault, *authenticator, *blocking, clock, nullptr});
    // Password hashing on its own threads, at most 8 requests waiting per thread.
    hashing_pool = std::make_unique<http::BlockingPool>(blocking_threads);
    hashing = std::make_unique<http::Gate>(blocking_threads * 8);
    identity = std::make_unique<api::IdentityDeps>(
        api::IdentityDeps{*users, *tokens, *keys, *preferences, *audit, *authenticator, *blocking, clock,
                          *hashing_pool, *hashing, *login_limiter});
  }
};

// Usage rows four times a second and key last-used times every five seconds, on the ordinary
// blocking pool. Usage becomes money with budgets: its writer must not be a thread that a busy
// machine starves (a low-priority writer starved inside a SQLite write also holds the lock that
// every other writer waits for). What a kill -9 can lose is the calls of about the last tick and
// one write (docs/OPERATIONS.md, "Usage accounting and kill -9").
asio::awaitable<void> flush_usage(Components& c) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (unsigned tick = 1; c.server != nullptr && !c.server->draining(); ++tick) {
    timer.expires_after(std::chrono::milliseconds(250));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (c.usage->pending() > 0) {
      Status s = co_await c.blocking->run([&c] { return c.usage->flush(); });
      if (!s) spdlog::warn("could not record usage: {}", s.error().message);
    }
    // Answers another instance left "generating" when it died (PostgreSQL; see
    // docs/CONVERSATIONS.md): looked for twice per stale_after_s.
    if (tick % (2 * c.config.conversations.stale_after_s) == 0) {
      auto stale = co_await c.blocking->run([&c] {
        return c.conversations->fail_stale_answers(
            std::chrono::seconds(c.config.conversations.stale_after_s));
      });
      if (!stale) spdlog::warn("could not check for abandoned answers: {}", stale.error().message);
      if (stale && *stale > 0) spdlog::warn("marked {} abandoned answer(s) failed", *stale);
    }
    if (tick % 20 != 0) continue;
    c.limiter->sweep();
    Status s = co_await c.blocking->run([&c] { return c.keys->flush_last_used(); });
    if (!s) spdlog::warn("could not record API key usage: {}", s.error().message);
  }
}

Status check_secrets(const config::Config& config) {
  std::string_view keys = config.encryption_keys;
  while (!keys.empty()) {
    std::size_t comma = keys.find(',');
    std::string_view key = keys.substr(0, comma);
    while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
    if (!key.empty() && !crypto::FernetKey::parse(key)) {
      return validation("secrets.encryption_keys",
                        "each key must be a Fernet key: 32 bytes in url-safe base64 (parley keys generate)");
    }
    if (comma == std::string_view::npos) break;
    keys.remove_prefix(comma + 1);
  }
  if (auto vault_keys = services::parse_encryption_keys(config.encryption_keys); !vault_keys) {
    return std::unexpected(vault_keys.error());
  }
  if (config.jwt_secret.size() < 32) {
    return validation("secrets.jwt_secret", "must be at least 32 characters");
  }
  return {};
}

asio::awaitable<Status> check_ready(Components& c) {
  if (c.server != nullptr && c.server->draining())
    co_return fail(ErrorKind::kUnavailable, "Server is shutting down");
  if (!c.db) co_return fail(ErrorKind::kUnavailable, "Database is not open");
  Status s = co_await c.blocking->run([&c] { return c.db->ping(); });
  if (!s) co_return fail(ErrorKind::kUnavailable, "Database is not reachable");
  co_return Status{};
}

// Limits, provider calls and error responses in /metrics (no key or user ids as labels).
void add_gateway_metrics(http::Metrics& metrics, Components& c) {
  metrics.add_collector([&c](std::string& out) {
    const auto& k = c.limiter->counters();
    out +=
        "# HELP parley_limiter_decisions_total AI calls admitted or refused by the limits, by the scope that "
        "decided (key, user; none: the caller has no limits).\n";
    out += "# TYPE parley_limiter_decisions_total counter\n";
    auto line = [&out](std::string_view scope, std::string_view decision, std::uint64_t n) {
      out += fmt::format("parley_limiter_decisions_total{{scope=\"{}\",decision=\"{}\"}} {}\n", scope,
                         decision, n);
    };
    line("key", "allowed", k.allowed_key.load());
    line("user", "allowed", k.allowed_user.load());
    line("none", "allowed", k.allowed_none.load());
    line("key", "limited", k.limited_key.load());
    line("user", "limited", k.limited_user.load());
    line("key", "budget", k.budget_key.load());
    line("user", "budget", k.budget_user.load());
    line("store", "unavailable", k.unavailable.load() - k.failed_open.load());
    line("store", "failed_open", k.failed_open.load());
    out += "# HELP parley_limiter_seconds Time to check and reserve a call's limits (memory or Redis).\n";
    out += "# TYPE parley_limiter_seconds summary\n";
    out +=
        fmt::format("parley_limiter_seconds_sum {:.6f}\n", static_cast<double>(k.admit_ns_sum.load()) / 1e9);
    out += fmt::format("parley_limiter_seconds_count {}\n", k.admit_count.load());
    if (c.redis_limits != nullptr) {
      const auto& h = c.redis_limits->health();
      out += "# HELP parley_limiter_redis_up Whether the last Redis exchange succeeded.\n";
      out += "# TYPE parley_limiter_redis_up gauge\n";
      out += fmt::format("parley_limiter_redis_up {}\n", h.up.load() ? 1 : 0);
      out +=
          "# HELP parley_limiter_redis_errors_total Redis exchanges that failed (unreachable, timeout, "
          "error).\n";
      out += "# TYPE parley_limiter_redis_errors_total counter\n";
      out += fmt::format("parley_limiter_redis_errors_total {}\n", h.errors.load());
    }
    out += "# HELP parley_provider_retries_total Provider calls retried by the retry policy.\n";
    out += "# TYPE parley_provider_retries_total counter\n";
    out += fmt::format("parley_provider_retries_total {}\n", provider::retries_total().load());
    out += "# HELP parley_errors_total Error responses sent, by code.\n";
    out += "# TYPE parley_errors_total counter\n";
    for (std::size_t i = 0; i < kErrorKinds; ++i) {
      const auto kind = static_cast<ErrorKind>(i);
      out +=
          fmt::format("parley_errors_total{{code=\"{}\"}} {}\n", error_info(kind).code, errors_counted(kind));
    }
    c.usage_metrics.render(out);
    if (c.chat) c.chat->router().render_metrics(out);
  });
}

void register_routes(http::Router& router, Components& c) {
  c.ops_deps =
      std::make_unique<api::OpsDeps>(api::OpsDeps{kVersion, *c.metrics, [&c] { return check_ready(c); }});
  if (const char* dir = std::getenv("PARLEY_CONSOLE_DIR"); dir != nullptr && *dir != '\0')
    c.ops_deps->console_dir = dir;
  api::register_ops_routes(router, *c.ops_deps);
  api::register_identity_routes(router, *c.identity);
  api::register_vault_routes(router, *c.vault_deps);
  api::register_chat_routes(router, *c.chat_deps);
  api::register_gateway_routes(router, *c.gateway_deps);
  api::register_messages_routes(router, *c.gateway_deps);
  api::register_responses_routes(router, *c.responses_deps);
  api::register_conversation_routes(router, *c.conversation_deps);
  api::register_openai_conversation_routes(router, *c.openai_conversation_deps);
  api::register_assistant_routes(router, *c.assistant_deps);
  api::register_realtime_routes(router, *c.realtime_deps);
  api::register_usage_routes(router, *c.usage_deps);
  api::add_realtime_metrics(*c.metrics, *c.realtime_deps);
  add_gateway_metrics(*c.metrics, c);
}

// A data directory (and the database files in it) made by an earlier version, or by hand, with
// wider modes: narrowed to the service user (the process umask covers what parley creates).
void make_private(const std::string& data_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::permissions(data_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) spdlog::warn("cannot make {} private (0700): {}", data_dir, ec.message());
  for (const char* name : {"parley.db", "parley.db-wal", "parley.db-shm", "encryption.keys", "jwt.secret"}) {
    const fs::path file = fs::path(data_dir) / name;
    if (!fs::exists(file, ec)) continue;
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace, ec);
    if (ec) spdlog::warn("cannot make {} private (0600): {}", file.string(), ec.message());
  }
}

}  // namespace

Result<std::unique_ptr<store::Database>> open_configured_database(const config::Config& config) {
  std::string url = config.effective_database_url();
  if (config.database_url.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config.data_dir, ec);
    if (ec)
      return fail(ErrorKind::kInternal, "cannot create data dir " + config.data_dir + ": " + ec.message());
    make_private(config.data_dir);
  }
  store::DatabaseOptions options;
  options.url = url;
  options.pool_size = static_cast<int>(config.database_pool_size);
  options.sqlite_synchronous = config.sqlite_synchronous == "normal" ? store::SqliteSynchronous::kNormal
                                                                     : store::SqliteSynchronous::kFull;
  return store::open_database(options);
}

std::vector<http::RouteInfo> list_routes() {
  Components c;
  c.metrics = std::make_unique<http::Metrics>(1, kVersion);
  c.db = store::open_database({.url = "sqlite::memory:"}).value_or(nullptr);
  c.blocking = std::make_unique<http::BlockingPool>(1);
  c.build_services();
  (void)c.build_providers();
  http::Router router;
  register_routes(router, c);
  return router.routes();
}

int serve(config::LoadResult loaded) {
  Components c;
  c.config = std::move(loaded.config);
  if (auto s = ensure_secrets(c.config); !s) {
    spdlog::critical("cannot prepare secrets: {}", s.error().message);
    return 1;
  }
  if (auto s = check_secrets(c.config); !s) {
    spdlog::critical("invalid configuration: {}: {}", s.error().param.value_or(""), s.error().message);
    return 2;
  }
  auto db = open_configured_database(c.config);
  if (!db) {
    spdlog::critical("cannot open database: {}", db.error().message);
    return 1;
  }
  c.db = std::move(*db);
  auto report = store::migrate(*c.db);
  if (!report) {
    spdlog::critical("database migration failed: {}", report.error().message);
    return 1;
  }
  if (!report->applied.empty()) {
    spdlog::info("applied {} migration(s); schema version {}", report->applied.size(), report->to_version);
  }
  c.blocking = std::make_unique<http::BlockingPool>(c.config.blocking_threads);
  c.blocking_threads = c.config.blocking_threads;
  c.metrics = std::make_unique<http::Metrics>(c.config.workers, kVersion);
  c.build_services();
  if (auto s = c.build_providers(); !s) {
    spdlog::critical("invalid configuration: {}: {}", s.error().param.value_or(""), s.error().message);
    return 2;
  }

  // Answers left "generating" by an earlier run: with SQLite this process owns the file, so every
  // one is over; with PostgreSQL only those no instance has saved for stale_after_s.
  {
    auto failed =
        c.db->dialect() == store::Dialect::kSqlite
            ? c.conversations->fail_all_generating()
            : c.conversations->fail_stale_answers(std::chrono::seconds(c.config.conversations.stale_after_s));
    if (!failed) spdlog::warn("could not check for interrupted answers: {}", failed.error().message);
    if (failed && *failed > 0) spdlog::warn("marked {} interrupted answer(s) failed", *failed);
    // Background responses likewise, with SQLite (PostgreSQL: another instance may be generating them).
    if (c.db->dialect() == store::Dialect::kSqlite) {
      auto responses = store::ResponseStore(*c.db).fail_running(c.clock.now_ms());
      if (!responses)
        spdlog::warn("could not check for interrupted responses: {}", responses.error().message);
    }
  }

  http::Router router;
  register_routes(router, c);

  http::ServerOptions options{c.config.http,          c.config.cors_origins,
                              c.config.trusted_hosts, c.config.trusted_proxies,
                              c.config.access_log,    c.config.workers};
  const auto& rc = c.config.realtime;
  options.websocket.max_message_bytes = rc.max_message_bytes;
  options.websocket.send_queue_bytes = rc.send_queue_bytes;
  options.websocket.heartbeat = std::chrono::milliseconds(rc.heartbeat_ms);
  options.websocket.idle_timeout = std::chrono::milliseconds(rc.idle_timeout_ms);
  options.websocket.write_timeout = c.config.http.write_timeout;
  options.large_bodies.emplace_back("/v1/audio/transcriptions", c.config.audio_max_upload_bytes);
  http::Server server(options, router, *c.metrics);
  c.server = &server;
  if (auto s = server.bind(c.config.listen_host, c.config.listen_port); !s) {
    spdlog::critical("{}", s.error().message);
    return 1;
  }
  std::string host = c.config.listen_host.find(':') != std::string::npos ? "[" + c.config.listen_host + "]"
                                                                         : c.config.listen_host;
  std::printf("parley %s listening on http://%s:%u\n", kVersion, host.c_str(), server.port());
  std::fflush(stdout);
  spdlog::info("parley {} listening on http://{}:{} with {} worker(s); database {}", kVersion, host,
               server.port(), c.config.workers, log::redact(c.config.effective_database_url()));

  if (c.redis_limits != nullptr) {
    const auto& url = c.redis_limits->url();
    spdlog::info("limits are shared through Redis at {}:{} (when it is unreachable: {})", url.host, url.port,
                 c.config.limits.redis_failure);
    c.share_invalidations(server.main_executor());
  } else {
    spdlog::info("limits are kept in this process's memory (one instance; set redis.url to share them)");
  }

  asio::signal_set signals(server.main_executor(), SIGINT, SIGTERM);
  signals.async_wait([&server, &c](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("received signal {}; draining", signo);
    if (c.invalidations) c.invalidations->stop();
    server.shutdown();
  });
  asio::co_spawn(server.main_executor(), flush_usage(c), asio::detached);
  server.run();
  // Pooled provider connections belong to the server's event loops: close them while those exist.
  c.http_client->close_idle();
  // Redis objects belong to the event loops too: released while those exist.
  if (c.redis_limits != nullptr) c.redis_limits->close();
  c.invalidations.reset();
  c.blocking->stop();
  c.hashing_pool->stop();
  c.answers->interrupt_running();
  c.responses->interrupt_running();
  if (auto s = c.keys->flush_last_used(); !s)
    spdlog::warn("could not record API key usage: {}", s.error().message);
  if (auto s = c.usage->flush(); !s) spdlog::warn("could not record usage: {}", s.error().message);
  spdlog::info("stopped");
  return 0;
}

}  // namespace parley::app
