// The effective configuration: built-in defaults, then a TOML file (--config / PARLEY_CONFIG), then
// PARLEY_* environment variables, then command-line flags. Loaded and validated once at start; an
// invalid value names its key and the reason, and parley exits before it binds a port.
// Every key is listed in docs/CONFIGURATION.md with its default.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace parley::config {

using Millis = std::chrono::milliseconds;

struct HttpLimits {
  std::size_t max_header_bytes = std::size_t{16} * 1024;  // whole request head; larger → 431
  std::size_t max_body_bytes = std::size_t{1024} * 1024;  // request body; larger → 413
  Millis header_timeout{10'000};                          // from first byte to end of head; slower → 408
  Millis body_timeout{30'000};                            // to read the whole body; slower → 408
  Millis idle_timeout{60'000};                            // keep-alive connection with no request in progress
  Millis write_timeout{30'000};                           // a client that does not read its response
  std::size_t max_connections = 10'000;                   // more → 503 and close
  std::size_t max_connections_per_address = 2'000;        // from one peer address (not a trusted proxy)
  Millis drain_timeout{10'000};  // graceful shutdown: in-flight requests get this long
};

struct AuthConfig {
  std::string jwt_issuer = "parley";
  std::string jwt_audience = "parley";
  std::uint64_t access_token_ttl_s = 900;                         // 15 minutes
  std::uint64_t refresh_token_ttl_s = std::uint64_t{30} * 86400;  // 30 days
  std::uint64_t jwt_leeway_s = 30;
  bool open_registration = false;
  std::uint64_t principal_cache_ttl_ms = 5000;  // how stale a user's role/active flag may be
  std::uint64_t login_max_failures_per_user = 5;
  std::uint64_t login_max_failures_per_address = 20;
  std::uint64_t login_window_s = 900;
  std::uint64_t registrations_per_address = 20;
  std::uint64_t registration_window_s = 3600;
  std::uint64_t password_memory_kib = std::uint64_t{19} * 1024;
  std::uint64_t password_passes = 2;
};

// Stored conversations and their answers (docs/CONVERSATIONS.md).
struct ConversationsConfig {
  std::uint64_t context_tokens = 4096;  // model context budget (estimated tokens), unless by model
  // Per-model budgets: "gpt-4o*=100000,mock-*=2000" (exact names or prefixes ending in '*'; the
  // first match wins).
  std::string context_tokens_by_model;
  std::uint64_t context_max_messages = 200;  // most stored messages read to build a context
  std::uint64_t stream_retention_s = 10;     // a finished answer's terminal event stays in memory this long
  std::uint64_t stream_memory_per_answer =
      std::uint64_t{256} * 1024;                                // bytes of an answer's text held in memory
  std::uint64_t stream_memory_total = std::uint64_t{64} << 20;  // the same, all answers together
  std::uint64_t checkpoint_ms = 1000;  // an answer being generated is saved this often
  std::uint64_t stale_after_s = 300;  // an answer not saved for this long was abandoned (> provider timeouts)
};

// Realtime chat over WebSocket (docs/REALTIME.md).
struct RealtimeConfig {
  bool anonymous = false;                                      // GET /ws/chat without a token
  std::uint64_t max_message_bytes = std::uint64_t{64} * 1024;  // a larger message → close 1009
  std::uint64_t send_queue_bytes = std::uint64_t{1} << 20;  // unsent frames per connection; more → close 4002
  std::uint64_t heartbeat_ms = 20'000;      // a silent peer is pinged; silent for twice this → closed
  std::uint64_t idle_timeout_ms = 600'000;  // no message and no answer streaming → close 4003 (0: never)
  std::uint64_t messages_per_minute = 120;  // per connection
  std::uint64_t max_generations = 2;        // answers streaming to one connection at once
  std::uint64_t connections_per_user = 20;
  std::uint64_t max_connections = 10'000;
  std::uint64_t anonymous_connections = 200;
  std::uint64_t anonymous_per_address = 5;
  std::uint64_t anonymous_messages_per_minute = 20;
  std::uint64_t anonymous_max_tokens = 512;
  std::uint64_t anonymous_conversations = 1000;
  std::uint64_t anonymous_max_messages = 40;
  std::uint64_t anonymous_idle_s = 1800;
};

// Rate limits and budgets (docs/LIMITS.md).
struct LimitsConfig {
  std::uint64_t default_rpm = 0;              // a service key without rate_limit_per_minute; 0: none
  std::uint64_t default_tpm = 0;              // a service key without tokens_per_minute; 0: none
  std::uint64_t default_max_tokens = 1024;    // reserved for the answer when a request names no max_tokens
  std::uint64_t reservation_ttl_s = 900;      // an unsettled reservation is released after this
  std::string redis_failure = "fail_closed";  // fail_closed | fail_open
  std::string redis_url;                      // empty: limits in this process's memory
  std::uint64_t redis_timeout_ms = 250;       // longest wait for one Redis reply
};

// What parley's own routes use when a request names no model, temperature or max_tokens
// (docs/ASSISTANT.md, "Settings"). Empty / unset: the built-in choice (OPENAI_MODEL, … for the
// provider made from OPENAI_API_KEY; else the demo model).
struct DefaultsConfig {
  std::string model;
  std::optional<double> temperature;
  std::uint64_t max_tokens = 0;  // 0: none
  std::string speech_model = "tts-1";
};

// Price of a model, USD per 1M tokens.
struct ModelPrice {
  std::string pattern;  // exact model name or prefix ending in '*'
  double input_per_m = 0;
  double output_per_m = 0;
};

// One upstream provider ([[providers]] in the TOML file). See docs/CONFIGURATION.md.
struct ProviderConfig {
  std::string name;
  std::string kind = "openai";       // openai (OpenAI-compatible) | anthropic (Messages API)
  std::string base_url;              // "http://127.0.0.1:9100/v1"; "builtin:demo" for the demo
  std::string anthropic_version;     // kind anthropic: the anthropic-version header; "" = 2023-06-01
  std::string credentials = "byok";  // byok | system | byok_or_system
  std::string api_key_env;           // environment variable holding the system key
  std::vector<std::string> models;   // exact names or prefixes ending in '*'
  std::uint64_t max_retries = 3;
  std::uint64_t base_delay_ms = 1000;  // 1 s, 2 s, 4 s
  std::uint64_t max_delay_ms = 8000;
  std::uint64_t retry_after_cap_ms = 30000;
  std::uint64_t connect_timeout_ms = 5000;
  std::uint64_t first_byte_timeout_ms = 60000;
  std::uint64_t chunk_timeout_ms = 60000;
  std::uint64_t total_timeout_ms = 120000;
  std::vector<ModelPrice> prices;  // [providers.prices] "model" = [input, output]
  bool responses = false;          // the provider offers POST {base}/responses (relayed, not translated)
  std::uint64_t weight = 1;        // share of its models' traffic among their deployments; 0: last resort
};

// Routing among a model's deployments and to fallback models (docs/GATEWAY.md, "Routing and
// fallbacks").
struct RoutingConfig {
  std::uint64_t cooldown_ms = 30'000;  // a failed deployment stays out of rotation this long
  // "gpt-4o=gpt-4o-mini|claude-x,o1=gpt-4o": each model's fallback models, in order (the TOML
  // table [routing.fallbacks] "gpt-4o" = ["gpt-4o-mini", "claude-x"] is read into this form).
  std::string fallbacks;
};

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./data";
  std::string database_url;  // empty → sqlite under data_dir
  std::size_t database_pool_size = 8;
  std::string sqlite_synchronous = "full";  // full | normal
  std::string log_format = "text";
  std::string log_level = "info";
  bool access_log = true;
  unsigned workers = 0;           // event-loop threads; 0 → number of cores
  unsigned blocking_threads = 0;  // database / hashing pool; 0 → max(2, cores)
  HttpLimits http;
  AuthConfig auth;
  std::vector<ProviderConfig> providers;  // from the file; the built-in ones are added at start
  bool demo_provider = true;              // the offline "demo" models
  std::size_t max_message_chars = 4000;   // user message content limit on the chat endpoints
  ConversationsConfig conversations;
  RealtimeConfig realtime;
  LimitsConfig limits;
  DefaultsConfig defaults;
  RoutingConfig routing;
  std::uint64_t assistant_slow_turn_ms = 2000;                     // a slower assistant turn logs a warning
  std::uint64_t audio_max_upload_bytes = std::uint64_t{25} << 20;  // /v1/audio/transcriptions body
  std::vector<std::string> cors_origins;                           // exact origins, or "*"
  std::vector<std::string> trusted_hosts{"localhost", "127.0.0.1", "::1"};
  // Peer addresses of reverse proxies in front of parley: not held to the per-address connection
  // cap (every client arrives through them).
  std::vector<std::string> trusted_proxies;
  std::string encryption_keys;  // comma-separated Fernet keys; empty → generated in data_dir
  std::string jwt_secret;       // empty → generated in data_dir

  // Derived after validation.
  std::string listen_host;
  std::uint16_t listen_port = 0;
  [[nodiscard]] std::string effective_database_url() const;
};

// Where a value came from, for `parley config check`.
enum class Source { kDefault, kFile, kEnv, kFlag };

struct LoadResult {
  Config config;
  std::map<std::string, Source> sources;  // key → where its value came from
};

struct LoadInput {
  std::optional<std::string> config_path;          // --config, else PARLEY_CONFIG
  std::map<std::string, std::string> flags;        // key → value from the command line
  std::function<const char*(const char*)> getenv;  // injectable for tests; defaults to ::getenv
};

Result<LoadResult> load(const LoadInput& input);

// conversations.context_tokens_by_model parsed: "pattern=N" pairs in order.
struct ModelBudget {
  std::string pattern;  // exact model name, or a prefix ending in '*'
  std::uint64_t tokens = 0;
};
Result<std::vector<ModelBudget>> parse_model_budgets(std::string_view text);

// routing.fallbacks parsed: each model with its fallback models, in order.
struct ModelFallbacks {
  std::string model;
  std::vector<std::string> fallbacks;
};
Result<std::vector<ModelFallbacks>> parse_fallbacks(std::string_view text);

// A temperature as text ("0.7"): nullopt unless a number from 0 to 2.
std::optional<double> parse_temperature(std::string_view text);

// Sets `key` (dotted name, e.g. "http.max_body_bytes") from text, with validation.
Status set_key(Config& config, std::string_view key, std::string_view value);

// Checks cross-field rules and derives listen_host/listen_port.
Status validate(Config& config);

// Every key with its environment variable name and whether it is secret (for docs and config check).
struct KeyInfo {
  std::string_view key;
  std::string_view env;
  bool secret;
  std::string_view help;
};
const std::vector<KeyInfo>& keys();

// Every key as a markdown table (key, environment variable, default, meaning) for docs/CONFIGURATION.md.
std::string keys_markdown();

// The effective configuration as TOML-like "key = value" lines, secrets masked.
std::string describe(const LoadResult& loaded);

}  // namespace parley::config
