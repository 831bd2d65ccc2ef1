#include "config/config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "log/log.hpp"
#include "log/redact.hpp"

namespace parley::config {
namespace {

using Setter = std::function<Status(Config&, std::string_view)>;

struct KeyDef {
  KeyInfo info;
  Setter set;
  std::function<std::string(const Config&)> get;
};

Result<std::uint64_t> parse_uint(std::string_view key, std::string_view text, std::uint64_t min,
                                 std::uint64_t max) {
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    return validation(std::string(key), fmt::format("must be a whole number, got \"{}\"", text));
  }
  if (value < min || value > max) {
    return validation(std::string(key), fmt::format("must be between {} and {}, got {}", min, max, value));
  }
  return value;
}

}  // namespace

std::optional<double> parse_temperature(std::string_view text) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  if (!(value >= 0.0 && value <= 2.0)) return std::nullopt;
  return value;
}

namespace {

Result<bool> parse_bool(std::string_view key, std::string_view text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  return validation(std::string(key), fmt::format("must be true or false, got \"{}\"", text));
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ",";
    out += item;
  }
  return out;
}

KeyDef string_key(std::string_view key, std::string_view env, std::string Config::*field, bool secret,
                  std::string_view help) {
  return {{key, env, secret, help},
          [field](Config& c, std::string_view v) -> Status {
            c.*field = std::string(v);
            return {};
          },
          [field](const Config& c) { return c.*field; }};
}

KeyDef choice_key(std::string_view key, std::string_view env, std::string Config::*field,
                  const std::vector<std::string_view>& choices, std::string_view help) {
  return {{key, env, false, help},
          [field, choices, key](Config& c, std::string_view v) -> Status {
            if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
              std::string all;
              for (auto ch : choices) all += (all.empty() ? "" : ", ") + std::string(ch);
              return validation(std::string(key), fmt::format("must be one of {}, got \"{}\"", all, v));
            }
            c.*field = std::string(v);
            return {};
          },
          [field](const Config& c) { return c.*field; }};
}

template <class T, class Owner>
KeyDef uint_key(std::string_view key, std::string_view env, Owner* (*owner)(Config&), T Owner::*field,
                std::uint64_t min, std::uint64_t max, std::string_view help) {
  return {{key, env, false, help},
          [=](Config& c, std::string_view v) -> Status {
            auto parsed = parse_uint(key, v, min, max);
            if (!parsed) return std::unexpected(parsed.error());
            owner(c)->*field = static_cast<T>(*parsed);
            return {};
          },
          [=](const Config& c) { return std::to_string(owner(const_cast<Config&>(c))->*field); }};
}

KeyDef millis_key(std::string_view key, std::string_view env, Millis HttpLimits::*field, std::uint64_t min,
                  std::uint64_t max, std::string_view help) {
  return {{key, env, false, help},
          [=](Config& c, std::string_view v) -> Status {
            auto parsed = parse_uint(key, v, min, max);
            if (!parsed) return std::unexpected(parsed.error());
            c.http.*field = Millis(*parsed);
            return {};
          },
          [=](const Config& c) { return std::to_string((c.http.*field).count()); }};
}

KeyDef list_key(std::string_view key, std::string_view env, std::vector<std::string> Config::*field,
                std::string_view help) {
  return {{key, env, false, help},
          [field](Config& c, std::string_view v) -> Status {
            c.*field = split_list(v);
            return {};
          },
          [field](const Config& c) { return join(c.*field); }};
}

Config* self(Config& c) {
  return &c;
}
HttpLimits* http_of(Config& c) {
  return &c.http;
}
AuthConfig* auth_of(Config& c) {
  return &c.auth;
}

ConversationsConfig* conversations_of(Config& c) {
  return &c.conversations;
}

RealtimeConfig* realtime_of(Config& c) {
  return &c.realtime;
}

LimitsConfig* limits_of(Config& c) {
  return &c.limits;
}

RoutingConfig* routing_of(Config& c) {
  return &c.routing;
}

DefaultsConfig* defaults_of(Config& c) {
  return &c.defaults;
}

KeyDef limits_string_key(std::string_view key, std::string_view env, std::string LimitsConfig::*field,
                         bool secret, const std::vector<std::string_view>& choices, std::string_view help) {
  return {{key, env, secret, help},
          [=](Config& c, std::string_view v) -> Status {
            if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
              std::string all;
              for (auto ch : choices) all += (all.empty() ? "" : ", ") + std::string(ch);
              return validation(std::string(key), fmt::format("must be one of {}, got \"{}\"", all, v));
            }
            if (choices.empty() && !v.empty() && !v.starts_with("redis://")) {
              return validation(std::string(key), "must be a redis:// URL");
            }
            c.limits.*field = std::string(v);
            return {};
          },
          [=](const Config& c) { return c.limits.*field; }};
}

KeyDef bool_key(std::string_view key, std::string_view env, bool AuthConfig::*field, std::string_view help) {
  return {{key, env, false, help},
          [=](Config& c, std::string_view v) -> Status {
            auto b = parse_bool(key, v);
            if (!b) return std::unexpected(b.error());
            c.auth.*field = *b;
            return {};
          },
          [=](const Config& c) { return std::string(c.auth.*field ? "true" : "false"); }};
}

KeyDef auth_string_key(std::string_view key, std::string_view env, std::string AuthConfig::*field,
                       std::string_view help) {
  return {{key, env, false, help},
          [=](Config& c, std::string_view v) -> Status {
            c.auth.*field = std::string(v);
            return {};
          },
          [=](const Config& c) { return c.auth.*field; }};
}

const std::vector<KeyDef>& key_defs() {
  static const std::vector<KeyDef> defs = [] {
    std::vector<KeyDef> d;
    d.push_back(string_key("listen", "PARLEY_LISTEN", &Config::listen, false,
                           "address:port to serve on; port 0 picks a free port"));
    d.push_back(string_key("data_dir", "PARLEY_DATA_DIR", &Config::data_dir, false,
                           "directory for the SQLite database and generated secrets"));
    d.push_back(
        string_key("database.url", "PARLEY_DATABASE_URL", &Config::database_url, true,
                   "sqlite:///path.db or postgresql://user:pass@host:port/db; default sqlite in data_dir"));
    d.push_back(uint_key("database.pool_size", "PARLEY_DATABASE_POOL_SIZE", &self,
                         &Config::database_pool_size, 1, 256, "database connections kept open"));
    d.push_back(choice_key("database.sqlite_synchronous", "PARLEY_DATABASE_SQLITE_SYNCHRONOUS",
                           &Config::sqlite_synchronous, {"full", "normal"},
                           "SQLite durability: full survives power loss, normal survives process crashes"));
    d.push_back(choice_key("log.format", "PARLEY_LOG_FORMAT", &Config::log_format, {"text", "json"},
                           "log line format"));
    d.push_back(choice_key("log.level", "PARLEY_LOG_LEVEL", &Config::log_level,
                           {"trace", "debug", "info", "warn", "error", "off"}, "lowest level logged"));
    d.push_back({{"log.access", "PARLEY_LOG_ACCESS", false, "one access-log line per request"},
                 [](Config& c, std::string_view v) -> Status {
                   auto b = parse_bool("log.access", v);
                   if (!b) return std::unexpected(b.error());
                   c.access_log = *b;
                   return {};
                 },
                 [](const Config& c) { return std::string(c.access_log ? "true" : "false"); }});
    d.push_back(uint_key("workers", "PARLEY_WORKERS", &self, &Config::workers, 0, 256,
                         "event-loop threads; 0 means one per core"));
    d.push_back(uint_key("blocking_threads", "PARLEY_BLOCKING_THREADS", &self, &Config::blocking_threads, 0,
                         256, "threads for database work and password hashing; 0 means max(2, cores)"));
    d.push_back(uint_key("http.max_header_bytes", "PARLEY_HTTP_MAX_HEADER_BYTES", &http_of,
                         &HttpLimits::max_header_bytes, 1024, std::uint64_t{1024} * 1024,
                         "request head limit (431 above)"));
    d.push_back(uint_key("http.max_body_bytes", "PARLEY_HTTP_MAX_BODY_BYTES", &http_of,
                         &HttpLimits::max_body_bytes, 1024, 1024ULL * 1024 * 1024,
                         "request body limit (413 above)"));
    d.push_back(millis_key("http.header_timeout_ms", "PARLEY_HTTP_HEADER_TIMEOUT_MS",
                           &HttpLimits::header_timeout, 100, 3'600'000,
                           "time to receive a request head once it started (408)"));
    d.push_back(millis_key("http.body_timeout_ms", "PARLEY_HTTP_BODY_TIMEOUT_MS", &HttpLimits::body_timeout,
                           100, 3'600'000, "time to receive a request body (408)"));
    d.push_back(millis_key("http.idle_timeout_ms", "PARLEY_HTTP_IDLE_TIMEOUT_MS", &HttpLimits::idle_timeout,
                           100, 86'400'000,
                           "keep-alive connection closed after this long without a request"));
    d.push_back(millis_key("http.write_timeout_ms", "PARLEY_HTTP_WRITE_TIMEOUT_MS",
                           &HttpLimits::write_timeout, 100, 3'600'000,
                           "a response not taken by the client within this is abandoned"));
    d.push_back(uint_key("http.max_connections", "PARLEY_HTTP_MAX_CONNECTIONS", &http_of,
                         &HttpLimits::max_connections, 1, 1'000'000, "open client connections (503 above)"));
    d.push_back(uint_key("http.max_connections_per_address", "PARLEY_HTTP_MAX_CONNECTIONS_PER_ADDRESS",
                         &http_of, &HttpLimits::max_connections_per_address, 1, 1'000'000,
                         "open connections from one client address (503 above); trusted proxies are exempt"));
    d.push_back(
        list_key("http.trusted_proxies", "PARLEY_HTTP_TRUSTED_PROXIES", &Config::trusted_proxies,
                 "IP addresses of reverse proxies in front of parley (comma list): exempt from the "
                 "per-address cap; the client address is read from their Forwarded / X-Forwarded-For"));
    d.push_back(millis_key("http.drain_timeout_ms", "PARLEY_HTTP_DRAIN_TIMEOUT_MS",
                           &HttpLimits::drain_timeout, 0, 3'600'000,
                           "graceful shutdown: time in-flight requests get to finish"));
    d.push_back(list_key("http.cors_origins", "PARLEY_HTTP_CORS_ORIGINS", &Config::cors_origins,
                         "origins allowed by CORS (comma list; \"*\" for any); empty disables CORS"));
    d.push_back(list_key("http.trusted_hosts", "PARLEY_HTTP_TRUSTED_HOSTS", &Config::trusted_hosts,
                         "Host header values accepted (comma list; \"*\" for any)"));
    d.push_back(auth_string_key("auth.jwt_issuer", "PARLEY_AUTH_JWT_ISSUER", &AuthConfig::jwt_issuer,
                                "iss claim of access tokens, checked on verification (empty: not checked)"));
    d.push_back(auth_string_key("auth.jwt_audience", "PARLEY_AUTH_JWT_AUDIENCE", &AuthConfig::jwt_audience,
                                "aud claim of access tokens, checked on verification (empty: not checked)"));
    d.push_back(uint_key("auth.access_token_ttl_s", "PARLEY_AUTH_ACCESS_TOKEN_TTL_S", &auth_of,
                         &AuthConfig::access_token_ttl_s, 60, 86400, "access token lifetime"));
    d.push_back(uint_key("auth.refresh_token_ttl_s", "PARLEY_AUTH_REFRESH_TOKEN_TTL_S", &auth_of,
                         &AuthConfig::refresh_token_ttl_s, 300, std::uint64_t{365} * 86400,
                         "refresh token lifetime"));
    d.push_back(uint_key("auth.jwt_leeway_s", "PARLEY_AUTH_JWT_LEEWAY_S", &auth_of, &AuthConfig::jwt_leeway_s,
                         0, 300, "clock skew allowed when checking exp/nbf/iat"));
    d.push_back(bool_key("auth.open_registration", "PARLEY_AUTH_OPEN_REGISTRATION",
                         &AuthConfig::open_registration,
                         "anyone may register (role user) once the first admin exists"));
    d.push_back(
        uint_key("auth.principal_cache_ttl_ms", "PARLEY_AUTH_PRINCIPAL_CACHE_TTL_MS", &auth_of,
                 &AuthConfig::principal_cache_ttl_ms, 0, 300'000,
                 "longest time another instance's role/deactivation/revocation change takes to apply here"));
    d.push_back(uint_key("auth.login_max_failures_per_user", "PARLEY_AUTH_LOGIN_MAX_FAILURES_PER_USER",
                         &auth_of, &AuthConfig::login_max_failures_per_user, 1, 1000,
                         "failed logins per username per window"));
    d.push_back(uint_key("auth.login_max_failures_per_address", "PARLEY_AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS",
                         &auth_of, &AuthConfig::login_max_failures_per_address, 1, 100000,
                         "failed logins per client address per window"));
    d.push_back(uint_key("auth.login_window_s", "PARLEY_AUTH_LOGIN_WINDOW_S", &auth_of,
                         &AuthConfig::login_window_s, 1, 86400,
                         "sliding window for the failed-login limits"));
    d.push_back(uint_key("auth.registrations_per_address", "PARLEY_AUTH_REGISTRATIONS_PER_ADDRESS", &auth_of,
                         &AuthConfig::registrations_per_address, 1, 1'000'000,
                         "registration attempts per client address per registration window"));
    d.push_back(uint_key("auth.registration_window_s", "PARLEY_AUTH_REGISTRATION_WINDOW_S", &auth_of,
                         &AuthConfig::registration_window_s, 1, std::uint64_t{86400} * 7,
                         "sliding window for the registration limit"));
    d.push_back(uint_key("auth.password_memory_kib", "PARLEY_AUTH_PASSWORD_MEMORY_KIB", &auth_of,
                         &AuthConfig::password_memory_kib, std::uint64_t{19} * 1024,
                         std::uint64_t{4} * 1024 * 1024, "argon2id memory per hash"));
    d.push_back(uint_key("auth.password_passes", "PARLEY_AUTH_PASSWORD_PASSES", &auth_of,
                         &AuthConfig::password_passes, 2, 20, "argon2id passes per hash"));
    d.push_back({{"demo_provider", "PARLEY_DEMO_PROVIDER", false, "offer the built-in offline demo models"},
                 [](Config& c, std::string_view v) -> Status {
                   auto b = parse_bool("demo_provider", v);
                   if (!b) return std::unexpected(b.error());
                   c.demo_provider = *b;
                   return {};
                 },
                 [](const Config& c) { return std::string(c.demo_provider ? "true" : "false"); }});
    d.push_back(uint_key("chat.max_message_chars", "PARLEY_CHAT_MAX_MESSAGE_CHARS", &self,
                         &Config::max_message_chars, 1, 1'000'000,
                         "longest user message content accepted by the chat endpoints"));
    d.push_back(uint_key("conversations.context_tokens", "PARLEY_CONVERSATIONS_CONTEXT_TOKENS",
                         &conversations_of, &ConversationsConfig::context_tokens, 16, 10'000'000,
                         "model context budget in estimated tokens (system message + newest messages)"));
    d.push_back({{"conversations.context_tokens_by_model", "PARLEY_CONVERSATIONS_CONTEXT_TOKENS_BY_MODEL",
                  false, "per-model context budgets: \"gpt-4o*=100000,mock-*=2000\" (first match wins)"},
                 [](Config& c, std::string_view v) -> Status {
                   auto parsed = parse_model_budgets(v);
                   if (!parsed) return std::unexpected(parsed.error());
                   c.conversations.context_tokens_by_model = std::string(v);
                   return {};
                 },
                 [](const Config& c) { return c.conversations.context_tokens_by_model; }});
    d.push_back(uint_key("conversations.context_max_messages", "PARLEY_CONVERSATIONS_CONTEXT_MAX_MESSAGES",
                         &conversations_of, &ConversationsConfig::context_max_messages, 2, 100'000,
                         "most stored messages read to build a model context"));
    d.push_back(uint_key(
        "conversations.stream_retention_s", "PARLEY_CONVERSATIONS_STREAM_RETENTION_S", &conversations_of,
        &ConversationsConfig::stream_retention_s, 0, 86400,
        "a finished answer's terminal event stays in memory this long (its text is read from the store)"));
    d.push_back(uint_key(
        "conversations.stream_memory_per_answer", "PARLEY_CONVERSATIONS_STREAM_MEMORY_PER_ANSWER",
        &conversations_of, &ConversationsConfig::stream_memory_per_answer, 64, std::uint64_t{1} << 30,
        "bytes of an answer's text kept in memory while it is generated; past it, saved text is "
        "read from the store"));
    d.push_back(uint_key("conversations.stream_memory_total", "PARLEY_CONVERSATIONS_STREAM_MEMORY_TOTAL",
                         &conversations_of, &ConversationsConfig::stream_memory_total, 1024,
                         std::uint64_t{1} << 40, "the same bound for all answers being generated together"));
    d.push_back(uint_key("conversations.checkpoint_ms", "PARLEY_CONVERSATIONS_CHECKPOINT_MS",
                         &conversations_of, &ConversationsConfig::checkpoint_ms, 100, 60'000,
                         "an answer being generated is saved to the store this often"));
    d.push_back(
        uint_key("conversations.stale_after_s", "PARLEY_CONVERSATIONS_STALE_AFTER_S", &conversations_of,
                 &ConversationsConfig::stale_after_s, 5, 86400,
                 "an answer in progress not saved for this long is marked failed (its process is gone)"));
    d.push_back({{"realtime.anonymous", "PARLEY_REALTIME_ANONYMOUS", false,
                  "allow anonymous realtime chat at GET /ws/chat (conversations kept in memory only)"},
                 [](Config& c, std::string_view v) -> Status {
                   auto b = parse_bool("realtime.anonymous", v);
                   if (!b) return std::unexpected(b.error());
                   c.realtime.anonymous = *b;
                   return {};
                 },
                 [](const Config& c) { return std::string(c.realtime.anonymous ? "true" : "false"); }});
    d.push_back(uint_key("realtime.max_message_bytes", "PARLEY_REALTIME_MAX_MESSAGE_BYTES", &realtime_of,
                         &RealtimeConfig::max_message_bytes, 256, std::uint64_t{16} << 20,
                         "largest WebSocket message accepted; larger closes the connection (1009)"));
    d.push_back(uint_key("realtime.send_queue_bytes", "PARLEY_REALTIME_SEND_QUEUE_BYTES", &realtime_of,
                         &RealtimeConfig::send_queue_bytes, 4096, std::uint64_t{1} << 30,
                         "unsent bytes queued per WebSocket; more closes it (4002, a reader too slow)"));
    d.push_back(uint_key("realtime.heartbeat_ms", "PARLEY_REALTIME_HEARTBEAT_MS", &realtime_of,
                         &RealtimeConfig::heartbeat_ms, 100, 3'600'000,
                         "a silent WebSocket peer is pinged; one silent twice this long is closed"));
    d.push_back(
        uint_key("realtime.idle_timeout_ms", "PARLEY_REALTIME_IDLE_TIMEOUT_MS", &realtime_of,
                 &RealtimeConfig::idle_timeout_ms, 0, std::uint64_t{86400} * 1000,
                 "a WebSocket with no message and no answer streaming this long is closed (4003); 0: never"));
    d.push_back(uint_key("realtime.messages_per_minute", "PARLEY_REALTIME_MESSAGES_PER_MINUTE", &realtime_of,
                         &RealtimeConfig::messages_per_minute, 1, 1'000'000,
                         "messages per WebSocket per minute"));
    d.push_back(uint_key("realtime.max_generations", "PARLEY_REALTIME_MAX_GENERATIONS", &realtime_of,
                         &RealtimeConfig::max_generations, 1, 1000,
                         "answers streaming to one WebSocket at once"));
    d.push_back(uint_key("realtime.connections_per_user", "PARLEY_REALTIME_CONNECTIONS_PER_USER",
                         &realtime_of, &RealtimeConfig::connections_per_user, 1, 1'000'000,
                         "open WebSockets per user"));
    d.push_back(uint_key("realtime.max_connections", "PARLEY_REALTIME_MAX_CONNECTIONS", &realtime_of,
                         &RealtimeConfig::max_connections, 1, 10'000'000, "open WebSockets in total"));
    d.push_back(uint_key("realtime.anonymous_connections", "PARLEY_REALTIME_ANONYMOUS_CONNECTIONS",
                         &realtime_of, &RealtimeConfig::anonymous_connections, 1, 10'000'000,
                         "open anonymous WebSockets in total"));
    d.push_back(uint_key("realtime.anonymous_per_address", "PARLEY_REALTIME_ANONYMOUS_PER_ADDRESS",
                         &realtime_of, &RealtimeConfig::anonymous_per_address, 1, 1'000'000,
                         "open anonymous WebSockets per client address"));
    d.push_back(uint_key("realtime.anonymous_messages_per_minute",
                         "PARLEY_REALTIME_ANONYMOUS_MESSAGES_PER_MINUTE", &realtime_of,
                         &RealtimeConfig::anonymous_messages_per_minute, 1, 1'000'000,
                         "messages per anonymous WebSocket per minute"));
    d.push_back(uint_key("realtime.anonymous_max_tokens", "PARLEY_REALTIME_ANONYMOUS_MAX_TOKENS",
                         &realtime_of, &RealtimeConfig::anonymous_max_tokens, 1, 1'000'000,
                         "longest anonymous answer (max_tokens)"));
    d.push_back(uint_key("realtime.anonymous_conversations", "PARLEY_REALTIME_ANONYMOUS_CONVERSATIONS",
                         &realtime_of, &RealtimeConfig::anonymous_conversations, 1, 10'000'000,
                         "anonymous conversations held in memory at once"));
    d.push_back(uint_key("realtime.anonymous_max_messages", "PARLEY_REALTIME_ANONYMOUS_MAX_MESSAGES",
                         &realtime_of, &RealtimeConfig::anonymous_max_messages, 2, 100'000,
                         "messages per anonymous conversation"));
    d.push_back(uint_key("realtime.anonymous_idle_s", "PARLEY_REALTIME_ANONYMOUS_IDLE_S", &realtime_of,
                         &RealtimeConfig::anonymous_idle_s, 1, std::uint64_t{86400} * 7,
                         "an anonymous conversation unused this long is forgotten"));
    d.push_back(uint_key("limits.default_rpm", "PARLEY_LIMITS_DEFAULT_RPM", &limits_of,
                         &LimitsConfig::default_rpm, 0, 100'000'000,
                         "requests per minute of a service key that sets none; 0: no limit"));
    d.push_back(uint_key("limits.default_tpm", "PARLEY_LIMITS_DEFAULT_TPM", &limits_of,
                         &LimitsConfig::default_tpm, 0, std::uint64_t{1} << 40,
                         "tokens per minute of a service key that sets none; 0: no limit"));
    d.push_back(uint_key("limits.default_max_tokens", "PARLEY_LIMITS_DEFAULT_MAX_TOKENS", &limits_of,
                         &LimitsConfig::default_max_tokens, 1, 10'000'000,
                         "tokens reserved for the answer of a request that names no max_tokens"));
    d.push_back(uint_key("limits.reservation_ttl_s", "PARLEY_LIMITS_RESERVATION_TTL_S", &limits_of,
                         &LimitsConfig::reservation_ttl_s, 10, 86400,
                         "a reservation never settled (a crash mid-call) is released after this"));
    d.push_back(
        limits_string_key("limits.redis_failure", "PARLEY_LIMITS_REDIS_FAILURE", &LimitsConfig::redis_failure,
                          false, {"fail_closed", "fail_open"},
                          "when Redis is unreachable: refuse AI calls (503) or admit them unlimited"));
    d.push_back(limits_string_key("redis.url", "PARLEY_REDIS_URL", &LimitsConfig::redis_url, true, {},
                                  "redis://[:password@]host:port[/db]: limits shared by every instance; "
                                  "empty: in this process's memory"));
    d.push_back(uint_key("redis.timeout_ms", "PARLEY_REDIS_TIMEOUT_MS", &limits_of,
                         &LimitsConfig::redis_timeout_ms, 10, 60'000,
                         "longest wait for Redis (connect or reply) before limits.redis_failure applies"));
    d.push_back({{"defaults.model", "PARLEY_DEFAULTS_MODEL", false,
                  "model of parley's own routes when a request names none; empty: OPENAI_MODEL with "
                  "OPENAI_API_KEY, else demo"},
                 [](Config& c, std::string_view v) -> Status {
                   if (v.size() > 128) return validation("defaults.model", "must be at most 128 characters");
                   c.defaults.model = std::string(v);
                   return {};
                 },
                 [](const Config& c) { return c.defaults.model; }});
    d.push_back({{"defaults.temperature", "PARLEY_DEFAULTS_TEMPERATURE", false,
                  "temperature of parley's own routes when a request sets none (0 to 2); empty: the "
                  "provider's own"},
                 [](Config& c, std::string_view v) -> Status {
                   if (v.empty()) {
                     c.defaults.temperature.reset();
                     return {};
                   }
                   auto t = parse_temperature(v);
                   if (!t) return validation("defaults.temperature", "must be a number from 0 to 2");
                   c.defaults.temperature = *t;
                   return {};
                 },
                 [](const Config& c) {
                   return c.defaults.temperature ? fmt::format("{}", *c.defaults.temperature) : std::string();
                 }});
    d.push_back(uint_key("defaults.max_tokens", "PARLEY_DEFAULTS_MAX_TOKENS", &defaults_of,
                         &DefaultsConfig::max_tokens, 0, 1'000'000,
                         "max_tokens of parley's own routes when a request sets none; 0: none"));
    d.push_back({{"defaults.speech_model", "PARLEY_DEFAULTS_SPEECH_MODEL", false,
                  "text-to-speech model of the assistant's spoken answers"},
                 [](Config& c, std::string_view v) -> Status {
                   if (v.empty() || v.size() > 128)
                     return validation("defaults.speech_model", "must be 1 to 128 characters");
                   c.defaults.speech_model = std::string(v);
                   return {};
                 },
                 [](const Config& c) { return c.defaults.speech_model; }});
    d.push_back(
        uint_key("routing.cooldown_ms", "PARLEY_ROUTING_COOLDOWN_MS", &routing_of,
                 &RoutingConfig::cooldown_ms, 0, 3'600'000,
                 "a deployment that failed (429, 5xx, timeout, connection) stays out of rotation this "
                 "long, unless its Retry-After says otherwise; 0: never"));
    d.push_back({{"routing.fallbacks", "PARLEY_ROUTING_FALLBACKS", false,
                  "fallback models tried when all of a model's deployments failed: "
                  "\"gpt-4o=gpt-4o-mini|claude-x,o1=gpt-4o\" (TOML: a [routing.fallbacks] table)"},
                 [](Config& c, std::string_view v) -> Status {
                   auto parsed = parse_fallbacks(v);
                   if (!parsed) return std::unexpected(parsed.error());
                   c.routing.fallbacks = std::string(v);
                   return {};
                 },
                 [](const Config& c) { return c.routing.fallbacks; }});
    d.push_back(uint_key("assistant.slow_turn_ms", "PARLEY_ASSISTANT_SLOW_TURN_MS", &self,
                         &Config::assistant_slow_turn_ms, 1, 3'600'000,
                         "an assistant turn slower than this logs a warning"));
    d.push_back(uint_key("audio.max_upload_bytes", "PARLEY_AUDIO_MAX_UPLOAD_BYTES", &self,
                         &Config::audio_max_upload_bytes, 1024, std::uint64_t{1} << 30,
                         "largest /v1/audio/transcriptions upload (413 above)"));
    d.push_back(string_key("secrets.encryption_keys", "PARLEY_ENCRYPTION_KEYS", &Config::encryption_keys,
                           true,
                           "comma-separated Fernet keys, first encrypts; generated in data_dir when unset"));
    d.push_back(string_key("secrets.jwt_secret", "PARLEY_JWT_SECRET", &Config::jwt_secret, true,
                           "HS256 secret for access tokens; generated in data_dir when unset"));
    return d;
  }();
  return defs;
}

const KeyDef* find_key(std::string_view key) {
  for (const auto& def : key_defs()) {
    if (def.info.key == key) return &def;
  }
  return nullptr;
}

// Flattens a TOML table to dotted keys with string values; arrays become comma lists.
Status flatten(const toml::table& table, const std::string& prefix,
               std::vector<std::pair<std::string, std::string>>& out) {
  for (const auto& [k, node] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      if (auto s = flatten(*sub, key, out); !s) return s;
      continue;
    }
    if (const auto* arr = node.as_array()) {
      std::vector<std::string> items;
      for (const auto& el : *arr) {
        if (auto s = el.value<std::string>()) {
          items.push_back(*s);
        } else {
          return validation(key, "must be an array of strings");
        }
      }
      out.emplace_back(key, join(items));
      continue;
    }
    if (auto s = node.value_exact<std::string>()) {
      out.emplace_back(key, *s);
    } else if (auto i = node.value_exact<std::int64_t>()) {
      if (*i < 0) return validation(key, "must not be negative");
      out.emplace_back(key, std::to_string(*i));
    } else if (auto b = node.value_exact<bool>()) {
      out.emplace_back(key, *b ? "true" : "false");
    } else if (auto f = node.value_exact<double>()) {
      out.emplace_back(key, fmt::format("{}", *f));
    } else {
      return validation(key, "unsupported value type");
    }
  }
  return {};
}

// YYYY-MM-DD, as Anthropic names its API versions.
bool is_api_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
  }
  return true;
}

Status load_providers(const toml::node& node, std::vector<ProviderConfig>& out) {
  const auto* array = node.as_array();
  if (array == nullptr) return validation("providers", "must be an array of tables ([[providers]])");
  std::size_t index = 0;
  for (const auto& el : *array) {
    std::string where = fmt::format("providers[{}]", index++);
    const auto* t = el.as_table();
    if (t == nullptr) return validation(where, "must be a table");
    ProviderConfig p;
    for (const auto& [k, v] : *t) {
      std::string key(k.str());
      std::string name = where;
      name.append(".").append(key);
      auto str = [&](std::string& field) -> Status {
        auto s = v.value_exact<std::string>();
        if (!s) return validation(name, "must be a string");
        field = *s;
        return {};
      };
      Status s;
      if (key == "name") {
        s = str(p.name);
      } else if (key == "kind") {
        s = str(p.kind);
      } else if (key == "base_url") {
        s = str(p.base_url);
      } else if (key == "anthropic_version") {
        s = str(p.anthropic_version);
      } else if (key == "credentials") {
        s = str(p.credentials);
      } else if (key == "api_key_env") {
        s = str(p.api_key_env);
      } else if (key == "responses") {
        auto b = v.value_exact<bool>();
        if (!b) return validation(name, "must be true or false");
        p.responses = *b;
      } else if (key == "models") {
        const auto* models = v.as_array();
        if (models == nullptr) return validation(name, "must be an array of strings");
        for (const auto& m : *models) {
          auto ms = m.value_exact<std::string>();
          if (!ms || ms->empty()) return validation(name, "must be an array of non-empty strings");
          p.models.push_back(*ms);
        }
      } else if (key == "prices") {
        const auto* prices = v.as_table();
        if (prices == nullptr) return validation(name, "must be a table of \"model\" = [input, output]");
        for (const auto& [pk, pv] : *prices) {
          std::string pname = name + "." + std::string(pk.str());
          const auto* pair = pv.as_array();
          auto number = [](const toml::node* n) -> std::optional<double> {
            if (n == nullptr) return std::nullopt;
            if (auto d = n->value_exact<double>()) return *d;
            if (auto i = n->value_exact<std::int64_t>()) return static_cast<double>(*i);
            return std::nullopt;
          };
          std::optional<double> price_in =
              pair != nullptr && pair->size() == 2 ? number(pair->get(0)) : std::nullopt;
          std::optional<double> price_out =
              pair != nullptr && pair->size() == 2 ? number(pair->get(1)) : std::nullopt;
          if (!price_in || !price_out || *price_in < 0 || *price_out < 0 || *price_in > 1e6 ||
              *price_out > 1e6) {
            return validation(pname,
                              "must be [input, output]: USD per 1M tokens, two numbers from 0 to 1000000");
          }
          if (pk.str().empty()) return validation(pname, "model name must not be empty");
          p.prices.push_back({std::string(pk.str()), *price_in, *price_out});
        }
      } else if (key == "weight") {
        auto w = v.value_exact<std::int64_t>();
        if (!w || *w < 0 || *w > 1000) return validation(name, "must be a whole number between 0 and 1000");
        p.weight = static_cast<std::uint64_t>(*w);
      } else if (key == "retry" || key == "timeouts") {
        const auto* sub = v.as_table();
        if (sub == nullptr) return validation(name, "must be a table");
        for (const auto& [sk, sv] : *sub) {
          std::string skey(sk.str());
          std::string sname = name;
          sname.append(".").append(skey);
          auto subnum = [&](std::uint64_t& field, std::uint64_t min, std::uint64_t max) -> Status {
            auto i = sv.value_exact<std::int64_t>();
            if (!i || *i < static_cast<std::int64_t>(min) || *i > static_cast<std::int64_t>(max)) {
              return validation(sname, fmt::format("must be a whole number between {} and {}", min, max));
            }
            field = static_cast<std::uint64_t>(*i);
            return {};
          };
          Status ss;
          if (key == "retry" && skey == "max_retries") {
            ss = subnum(p.max_retries, 0, 10);
          } else if (key == "retry" && skey == "base_delay_ms") {
            ss = subnum(p.base_delay_ms, 1, 600'000);
          } else if (key == "retry" && skey == "max_delay_ms") {
            ss = subnum(p.max_delay_ms, 1, 600'000);
          } else if (key == "retry" && skey == "retry_after_cap_ms") {
            ss = subnum(p.retry_after_cap_ms, 0, 600'000);
          } else if (key == "timeouts" && skey == "connect_ms") {
            ss = subnum(p.connect_timeout_ms, 10, 600'000);
          } else if (key == "timeouts" && skey == "first_byte_ms") {
            ss = subnum(p.first_byte_timeout_ms, 10, 3'600'000);
          } else if (key == "timeouts" && skey == "between_chunks_ms") {
            ss = subnum(p.chunk_timeout_ms, 10, 3'600'000);
          } else if (key == "timeouts" && skey == "total_ms") {
            ss = subnum(p.total_timeout_ms, 10, 3'600'000);
          } else {
            return validation(sname, "unknown key");
          }
          if (!ss) return ss;
        }
      } else {
        return validation(name, "unknown key");
      }
      if (!s) return s;
    }
    if (p.name.empty()) return validation(where + ".name", "is required");
    if (p.base_url.empty()) return validation(where + ".base_url", "is required");
    if (p.kind != "openai" && p.kind != "anthropic") {
      return validation(where + ".kind", "must be openai or anthropic");
    }
    if (!p.anthropic_version.empty()) {
      if (p.kind != "anthropic")
        return validation(where + ".anthropic_version", "is only for kind = \"anthropic\"");
      if (!is_api_date(p.anthropic_version)) {
        return validation(where + ".anthropic_version", "must be a date such as 2023-06-01");
      }
    }
    if (p.credentials != "byok" && p.credentials != "system" && p.credentials != "byok_or_system") {
      return validation(where + ".credentials", "must be byok, system or byok_or_system");
    }
    if (p.credentials != "byok" && p.api_key_env.empty()) {
      return validation(where + ".api_key_env", "is required when credentials use the system key");
    }
    if (p.models.empty()) return validation(where + ".models", "must list at least one model or prefix");
    for (const auto& other : out) {
      if (other.name == p.name)
        return validation(where + ".name", "duplicate provider name \"" + p.name + "\"");
    }
    out.push_back(std::move(p));
  }
  return {};
}

}  // namespace

std::string Config::effective_database_url() const {
  if (!database_url.empty()) return database_url;
  return "sqlite://" + (std::filesystem::path(data_dir) / "parley.db").string();
}

const std::vector<KeyInfo>& keys() {
  static const std::vector<KeyInfo> infos = [] {
    std::vector<KeyInfo> v;
    for (const auto& d : key_defs()) v.push_back(d.info);
    return v;
  }();
  return infos;
}

Status set_key(Config& config, std::string_view key, std::string_view value) {
  const KeyDef* def = find_key(key);
  if (def == nullptr) return validation(std::string(key), "unknown configuration key");
  return def->set(config, value);
}

Result<std::vector<ModelBudget>> parse_model_budgets(std::string_view text) {
  constexpr std::string_view kKey = "conversations.context_tokens_by_model";
  std::vector<ModelBudget> out;
  for (const std::string& item : split_list(text)) {
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return validation(std::string(kKey), fmt::format("\"{}\" is not model=tokens", item));
    }
    std::string pattern = item.substr(0, eq);
    while (!pattern.empty() && pattern.back() == ' ') pattern.pop_back();
    auto tokens = parse_uint(kKey, std::string_view(item).substr(eq + 1), 16, 10'000'000);
    if (!tokens) return std::unexpected(tokens.error());
    out.push_back({std::move(pattern), *tokens});
  }
  return out;
}

Result<std::vector<ModelFallbacks>> parse_fallbacks(std::string_view text) {
  constexpr std::string_view kKey = "routing.fallbacks";
  std::vector<ModelFallbacks> out;
  for (const std::string& item : split_list(text)) {
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos) {
      return validation(std::string(kKey), fmt::format("\"{}\" is not model=fallback|fallback…", item));
    }
    ModelFallbacks f;
    f.model = item.substr(0, eq);
    while (!f.model.empty() && f.model.back() == ' ') f.model.pop_back();
    if (f.model.empty()) return validation(std::string(kKey), fmt::format("\"{}\" names no model", item));
    std::string_view rest = std::string_view(item).substr(eq + 1);
    while (true) {
      const std::size_t bar = rest.find('|');
      std::string_view name = rest.substr(0, bar);
      while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
      while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
      if (name.empty() || name.size() > 256) {
        return validation(std::string(kKey), fmt::format("\"{}\": a fallback model name is empty", f.model));
      }
      if (name == f.model || std::find(f.fallbacks.begin(), f.fallbacks.end(), name) != f.fallbacks.end()) {
        return validation(std::string(kKey),
                          fmt::format("\"{}\": \"{}\" appears twice in its chain", f.model, name));
      }
      f.fallbacks.emplace_back(name);
      if (bar == std::string_view::npos) break;
      rest.remove_prefix(bar + 1);
    }
    if (f.fallbacks.size() > 16) {
      return validation(std::string(kKey), fmt::format("\"{}\": at most 16 fallback models", f.model));
    }
    for (const auto& other : out) {
      if (other.model == f.model)
        return validation(std::string(kKey), fmt::format("\"{}\" is listed twice", f.model));
    }
    out.push_back(std::move(f));
  }
  return out;
}

namespace {

// [routing.fallbacks] "model" = ["fallback", …] as routing.fallbacks' text form; the table is
// removed from `parsed` (the other routing keys are flattened as usual).
Status load_fallbacks_table(toml::table& parsed, std::map<std::string, Source>& sources, Config& config) {
  auto* routing = parsed.get_as<toml::table>("routing");
  if (routing == nullptr) return {};
  auto* table = routing->get_as<toml::table>("fallbacks");
  if (table == nullptr) return {};
  std::string text;
  for (const auto& [model, chain] : *table) {
    const std::string where = fmt::format("routing.fallbacks.{}", model.str());
    const auto* list = chain.as_array();
    if (list == nullptr || list->empty())
      return validation(where, "must be a non-empty array of model names");
    if (model.str().find_first_of(",|=") != std::string_view::npos)
      return validation(where, "a model name with ',', '|' or '=' cannot have fallbacks");
    if (!text.empty()) text += ',';
    text.append(model.str()).append("=");
    bool first = true;
    for (const auto& el : *list) {
      auto name = el.value_exact<std::string>();
      if (!name || name->find_first_of(",|=") != std::string::npos)
        return validation(where, "must be an array of model names (without ',', '|' or '=')");
      if (!first) text += '|';
      text += *name;
      first = false;
    }
  }
  routing->erase("fallbacks");
  if (routing->empty()) parsed.erase("routing");
  if (auto s = set_key(config, "routing.fallbacks", text); !s) return s;
  sources["routing.fallbacks"] = Source::kFile;
  return {};
}

}  // namespace

Status validate(Config& config) {
  std::string_view listen = config.listen;
  std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return validation("listen", "must be host:port, e.g. 127.0.0.1:8080");
  std::string_view host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) return validation("listen", "host part is empty");
  auto port = parse_uint("listen", listen.substr(colon + 1), 0, 65535);
  if (!port) return validation("listen", "port must be a number between 0 and 65535");
  config.listen_host = std::string(host);
  config.listen_port = static_cast<std::uint16_t>(*port);
  if (config.data_dir.empty()) return validation("data_dir", "must not be empty");
  const std::string url = config.effective_database_url();
  if (!(url.starts_with("sqlite:") || url.starts_with("postgresql://") || url.starts_with("postgres://"))) {
    return validation("database.url", "must start with sqlite://, postgresql:// or postgres://");
  }
  if (config.workers == 0) config.workers = std::max(1U, std::thread::hardware_concurrency());
  if (config.blocking_threads == 0)
    config.blocking_threads = std::max(2U, std::thread::hardware_concurrency());
  for (const auto& origin : config.cors_origins) {
    if (origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://"))) {
      return validation("http.cors_origins",
                        fmt::format("\"{}\" is not an origin (http[s]://host[:port])", origin));
    }
  }
  return {};
}

Result<LoadResult> load(const LoadInput& input) {
  auto getenv =
      input.getenv ? input.getenv : [](const char* name) -> const char* { return std::getenv(name); };
  LoadResult out;
  for (const auto& def : key_defs()) out.sources[std::string(def.info.key)] = Source::kDefault;

  std::optional<std::string> path = input.config_path;
  if (!path) {
    if (const char* env = getenv("PARLEY_CONFIG"); env != nullptr && *env != '\0') path = env;
  }
  if (path) {
    toml::table parsed;
    try {
      parsed = toml::parse_file(*path);
    } catch (const toml::parse_error& err) {
      return fail(ErrorKind::kValidation,
                  fmt::format("{}:{}:{}: {}", *path, err.source().begin.line, err.source().begin.column,
                              err.description()),
                  std::string("config"));
    }
    if (auto* providers = parsed.get("providers")) {
      if (auto s = load_providers(*providers, out.config.providers); !s) return std::unexpected(s.error());
      parsed.erase("providers");
    }
    if (auto s = load_fallbacks_table(parsed, out.sources, out.config); !s) return std::unexpected(s.error());
    std::vector<std::pair<std::string, std::string>> flat;
    if (auto s = flatten(parsed, "", flat); !s) return std::unexpected(s.error());
    for (const auto& [key, value] : flat) {
      if (auto s = set_key(out.config, key, value); !s) return std::unexpected(s.error());
      out.sources[key] = Source::kFile;
    }
  }
  for (const auto& def : key_defs()) {
    const char* env = getenv(std::string(def.info.env).c_str());
    if (env == nullptr) continue;
    if (auto s = def.set(out.config, env); !s) {
      return fail(ErrorKind::kValidation,
                  fmt::format("{} ({}): {}", def.info.env, def.info.key, s.error().message),
                  std::string(def.info.key));
    }
    out.sources[std::string(def.info.key)] = Source::kEnv;
  }
  for (const auto& [key, value] : input.flags) {
    if (auto s = set_key(out.config, key, value); !s) return std::unexpected(s.error());
    out.sources[key] = Source::kFlag;
  }
  if (auto s = validate(out.config); !s) return std::unexpected(s.error());
  return out;
}

std::string keys_markdown() {
  Config defaults;
  std::string out = "| key | environment | default | meaning |\n|---|---|---|---|\n";
  for (const auto& def : key_defs()) {
    std::string value = def.get(defaults);
    if (def.info.key == "workers" || def.info.key == "blocking_threads") value += " (auto)";
    if (def.info.key == "database.url") value = "sqlite in data_dir";
    if (def.info.secret && def.info.key.starts_with("secrets.")) value = "generated in data_dir";
    out += fmt::format("| `{}` | `{}` | `{}` | {} |\n", def.info.key, def.info.env, value, def.info.help);
  }
  return out;
}

std::string describe(const LoadResult& loaded) {
  std::string out;
  for (const auto& def : key_defs()) {
    std::string value = def.get(loaded.config);
    if (def.info.secret && !value.empty()) {
      // Database URLs are useful to see; only their password is secret.
      if (def.info.key == "database.url") {
        value = log::redact(value);
      } else {
        value = "[set, " + std::to_string(value.size()) + " chars]";
      }
    }
    if (def.info.key == "database.url" && value.empty()) value = loaded.config.effective_database_url();
    const char* source = "default";
    auto it = loaded.sources.find(std::string(def.info.key));
    if (it != loaded.sources.end()) {
      switch (it->second) {
        case Source::kFile:
          source = "file";
          break;
        case Source::kEnv:
          source = "env";
          break;
        case Source::kFlag:
          source = "flag";
          break;
        case Source::kDefault:
          break;
      }
    }
    out += fmt::format("{} = \"{}\"  # {} ({})\n", def.info.key, value, source, def.info.env);
  }
  return out;
}

}  // namespace parley::config
