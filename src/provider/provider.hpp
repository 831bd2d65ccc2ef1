// A model provider: something that answers OpenAI-style chat completion requests. Three kinds:
// OpenAiCompatibleProvider (HTTP to an OpenAI-compatible API, with retries), AnthropicProvider
// (HTTP to Anthropic's Messages API: chat completions translated, /messages relayed) and
// DemoProvider (in process, offline, deterministic). The registry maps model names to providers and says
// whose key each uses.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/json/fwd.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "crypto/secret.hpp"
#include "provider/http_client.hpp"

namespace parley::provider {

enum class Credentials { kByok, kSystem, kByokOrSystem };

// Why a call failed, noted by the provider for routing (services/router.hpp): `reason` is set when
// the deployment is at fault — "rate_limited" (429), "server_error" (5xx), "timeout", "connect"
// (connection failure) — and no event reached the client; empty otherwise. `retry_after` is the
// provider's Retry-After, capped by its retry_after_cap.
struct CallFailure {
  std::string_view reason;  // a string literal
  unsigned status = 0;
  std::optional<std::chrono::milliseconds> retry_after;
};

struct CallContext {
  std::string request_id;
  std::optional<crypto::Secret> api_key;  // the key to send, when the provider needs one
  // Streams only: called with the pass-through headers of a 2xx response head, before its first event.
  std::function<void(const std::vector<Header>&)> on_stream_head;
  // Streams only, optional: called after the events of one upstream read went to the sink, so that
  // a consumer that buffers them can pass them on together (one write per read, not per event).
  // Returns false when the consumer is gone.
  std::function<boost::asio::awaitable<bool>()> on_stream_batch_end;
  // Routing: at most this many retries for this call (0 while another deployment can take the
  // request); nullopt: the provider's own policy.
  std::optional<int> max_retries;
  // Routing: where the provider notes why the call failed (may be null).
  CallFailure* failure = nullptr;
};

// Token counts a provider reported.
struct TokenUsage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
};

// A successful answer's body, checked without building a document: nullopt unless it is one JSON
// object; otherwise the `usage` it reports (nullopt when absent or not an object).
struct AnswerFacts {
  std::optional<TokenUsage> usage;
};
std::optional<AnswerFacts> inspect_answer(std::string_view body);

// Reads `usage` from a response or stream chunk object ({"usage": {...}}); nullopt when absent or null.
std::optional<TokenUsage> usage_of(std::string_view json_text);
std::optional<TokenUsage> usage_in(const boost::json::value& doc);  // same, already parsed

// A complete answer from the provider, relayed as received: 2xx, or the provider's own verdict on
// the request (see is_relayable_rejection) with its body untouched.
struct ProviderResponse {
  unsigned status = 200;
  std::string body;
  std::vector<Header> headers;      // x-ratelimit-* and friends, lower-case names
  std::optional<TokenUsage> usage;  // from a 2xx JSON body
  std::string content_type;         // post_raw only: the answer's Content-Type
  [[nodiscard]] bool ok() const { return status >= 200 && status < 300; }
};

// 400, 404, 409, 413, 422: the provider judged the request itself (bad tools schema, unknown model
// at the provider, ...). The gateway relays these as the provider sent them; 401/403 never (their
// messages may quote the key), nor 429/5xx (retried, then mapped to our codes).
bool is_relayable_rejection(unsigned status);

// Receives each SSE `data:` payload of a streamed answer (not the final "[DONE]"). Returns false
// when the consumer is gone (stop reading).
using EventSink = std::function<boost::asio::awaitable<bool>(std::string_view data)>;

// Outcome of a streamed call: an error after the first event means the stream broke mid-way
// (never retried: bytes already reached the client).
// A relayable rejection (see above) arrives before any event: `status` and `error_body` are set.
struct StreamOutcome {
  std::vector<Header> headers;
  std::size_t events = 0;
  unsigned status = 200;
  std::string error_body;
  [[nodiscard]] bool rejected() const { return status >= 300; }
};

// The API a provider speaks upstream: "openai" (chat completions; the demo too) or "anthropic"
// (Messages API), as `kind` names it in the configuration.
enum class ProviderKind { kOpenAi, kAnthropic };

class Provider {
 public:
  virtual ~Provider() = default;
  [[nodiscard]] virtual const std::string& name() const = 0;
  [[nodiscard]] virtual bool needs_key() const = 0;
  [[nodiscard]] virtual ProviderKind kind() const { return ProviderKind::kOpenAi; }

  // POST {base}{path} (a JSON body; path "/chat/completions" or "/embeddings") with the retry
  // policy. 2xx and relayable rejections come back as a ProviderResponse, anything else as an Error.
  virtual boost::asio::awaitable<Result<ProviderResponse>> post(const CallContext& ctx, std::string_view path,
                                                                std::string body) = 0;
  // Same for a streamed answer ("stream": true in the body); events go to `sink` as they arrive.
  virtual boost::asio::awaitable<Result<StreamOutcome>> post_stream(const CallContext& ctx,
                                                                    std::string_view path, std::string body,
                                                                    EventSink sink) = 0;

  // POST {base}{path} with a body of any type (`content_type`: "multipart/form-data; boundary=…"
  // for "/audio/transcriptions", "application/json" for "/audio/speech") whose 2xx answer need not
  // be JSON (audio bytes, subtitles): it comes back as received, with its Content-Type. Same retry
  // policy and errors as post().
  virtual boost::asio::awaitable<Result<ProviderResponse>> post_raw(const CallContext& ctx,
                                                                    std::string_view path, std::string body,
                                                                    std::string content_type) = 0;

  // Chat completions for parley's own endpoints: a rejection becomes an OPENAI_API_ERROR.
  boost::asio::awaitable<Result<ProviderResponse>> chat(const CallContext& ctx, std::string body);
  boost::asio::awaitable<Result<StreamOutcome>> chat_stream(const CallContext& ctx, std::string body,
                                                            EventSink sink);

  // GET {base}/models with the given key: is the key accepted? (kInvalidApiKey when not.)
  virtual boost::asio::awaitable<Status> verify_key(const CallContext& ctx) = 0;
};

// USD per 1M tokens of one model (or of every model a prefix ending in '*' matches).
struct ModelPrice {
  std::string pattern;
  double input_per_m = 0;
  double output_per_m = 0;
};

struct ProviderEntry {
  std::shared_ptr<Provider> provider;
  Credentials credentials = Credentials::kByok;
  std::optional<crypto::Secret> system_key;  // from the environment variable the config names
  std::vector<std::string> models;           // exact names, or prefixes ending in '*'
  std::vector<ModelPrice> prices;            // the first matching pattern prices a model
  bool responses = false;    // offers OpenAI's Responses API (POST {base}/responses): relayed, not translated
  std::uint32_t weight = 1;  // share of its models' traffic among their deployments; 0: last resort

  // Cost of a call in nano-USD (USD × 1e9); 0 for a model without a price.
  [[nodiscard]] std::int64_t cost_nanos(std::string_view model, std::int64_t prompt_tokens,
                                        std::int64_t completion_tokens) const;
};

class ProviderRegistry {
 public:
  void add(ProviderEntry entry) { entries_.push_back(std::move(entry)); }
  // The first provider serving `model`, or nullptr.
  [[nodiscard]] const ProviderEntry* find_by_model(std::string_view model) const;
  [[nodiscard]] const ProviderEntry* find_by_name(std::string_view name) const;
  // "gpt-4o-mini, mock-*, demo" for error messages.
  [[nodiscard]] std::string allowed_models() const;
  [[nodiscard]] const std::vector<ProviderEntry>& entries() const { return entries_; }

 private:
  std::vector<ProviderEntry> entries_;
};

bool model_matches(std::string_view pattern, std::string_view model);

// Retries made by every provider of this process (for the metrics).
std::atomic<std::uint64_t>& retries_total();

}  // namespace parley::provider
