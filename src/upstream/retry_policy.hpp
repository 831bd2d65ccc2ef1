// The one home of the provider retry policy (PRODUCT.md, "Behaviour that must hold"):
//
//   - retry on 429, 500, 502, 503, 504, 529 (Anthropic's "overloaded") and on network failures
//     before any response byte (connect failure, connection reset); never on any other status
//     (400, 401, 403, 404, 422, ...), never on a malformed response, never on an attempt timeout
//     (the provider may already have done, and billed, the work; a connect timeout is reported by
//     the client as kConnect);
//   - never once a streamed byte has reached our client;
//   - at most `max_retries` retries, i.e. at most max_retries + 1 attempts;
//   - backoff base * 2^attempt (1 s, 2 s, 4 s by default) capped at `max_delay`, then jittered by
//     ±`jitter`; jitter is applied after the cap so that callers waiting at the cap still spread
//     out, hence a delay may reach max_delay * (1 + jitter);
//   - a `Retry-After` from the provider raises the delay to at least min(Retry-After,
//     retry_after_cap): it is honoured up to the cap, never beyond it;
//   - never when the delay would reach the request's deadline (reason "deadline").
//
// Everything here is pure: no clock, no I/O, no logging. Randomness comes from an injected Rng so
// that tests are deterministic. Thread-safety: the functions are reentrant; an Rng is not
// thread-safe (use one per thread / event loop).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "core/error.hpp"

namespace parley::upstream {

struct RetryConfig {
  int max_retries = 3;
  std::chrono::milliseconds base_delay{1000};
  std::chrono::milliseconds max_delay{8000};
  double jitter = 0.2;  // ±20 %; values outside [0, 1] are clamped
  std::chrono::milliseconds retry_after_cap{30000};
};

enum class FailureKind {
  kHttpStatus,  // the provider answered with a non-2xx status (see http_status)
  kConnect,     // could not connect (DNS, refused, TLS handshake, connect timeout)
  kReset,       // the connection failed before any response byte arrived
  kTimeout,     // the deadline of one attempt passed after the request was sent
  kMalformed,   // a response arrived but could not be understood (bad JSON, truncated stream)
};

[[nodiscard]] std::string_view to_string(FailureKind kind) noexcept;

// A uniform random number in [0, 1). Values outside that range are clamped.
using Rng = std::function<double()>;

// A deterministic Rng (std::mt19937_64) for the given seed; copies continue independently.
[[nodiscard]] Rng make_rng(std::uint64_t seed);

struct RetryDecision {
  bool retry = false;
  std::chrono::milliseconds delay{0};  // how long to wait before the next attempt (when retry)
  // Why, for the log line: "rate_limited", "server_error", "connect", "reset" when retrying;
  // "bytes_reached_client", "status_not_retryable", "timeout", "malformed", "max_retries",
  // "deadline" when not. Points to a string literal.
  std::string_view reason;
};

// Whether a failure of this kind (and, for kHttpStatus, status) is retryable at all.
[[nodiscard]] bool is_retryable(FailureKind kind, int http_status) noexcept;

// Configured delays above this are treated as this (keeps the arithmetic exact and overflow-free).
inline constexpr std::chrono::milliseconds kMaxBackoffDelay = std::chrono::hours{24};

// base * 2^attempt capped at max_delay (and kMaxBackoffDelay), jittered by ±jitter using one draw
// from `rng`.
[[nodiscard]] std::chrono::milliseconds backoff_delay(const RetryConfig& config, int attempt, const Rng& rng);

// Decides what to do after attempt number `attempt` (0-based) failed.
//   http_status: the provider's status for kHttpStatus, ignored otherwise.
//   retry_after: the provider's Retry-After (see parse_retry_after), if any.
//   bytes_reached_client: any byte of this response was already relayed to our client.
//   time_left_until_deadline: what remains of the whole request's deadline.
// Draws from `rng` only when it gets as far as computing a delay.
[[nodiscard]] RetryDecision decide(const RetryConfig& config, int attempt, FailureKind kind, int http_status,
                                   std::optional<std::chrono::milliseconds> retry_after,
                                   bool bytes_reached_client,
                                   std::chrono::milliseconds time_left_until_deadline, const Rng& rng);

// Parses a Retry-After header value (RFC 9110 §10.2.3): delta-seconds ("120") or an IMF-fixdate
// ("Sun, 06 Nov 1994 08:49:37 GMT", relative to `now`; a date in the past gives 0). Surrounding
// whitespace is allowed. Anything else - negative or fractional numbers, the obsolete RFC 850 and
// asctime date forms, invalid dates - gives nullopt. Huge values saturate at 10^9 seconds.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view header, std::chrono::system_clock::time_point now);

// The ErrorKind reported to our client when the final attempt failed this way:
//   429                         -> kOpenAiRateLimit   (429 OPENAI_RATE_LIMIT)
//   401, 403                    -> kInvalidApiKey     (400 INVALID_API_KEY: the key was refused)
//   kConnect, kReset            -> kOpenAiConnection  (503 OPENAI_CONNECTION_ERROR)
//   kTimeout                    -> kOpenAiTimeout     (504 OPENAI_TIMEOUT)
//   any other status, kMalformed -> kOpenAiApiError   (502 OPENAI_API_ERROR)
// Provider 400/404/422 are "other upstream failures" in PRODUCT.md's terms, as in the seed
// service, so they are OPENAI_API_ERROR; the caller should carry the provider's error message
// (never a key) so the user can see, e.g., an unknown model or an over-long context. Surfaces that
// relay the provider's own response (the OpenAI-compatible /v1 routes) may pass status and body
// through instead of using this mapping.
[[nodiscard]] ErrorKind error_kind_for(FailureKind kind, int http_status) noexcept;

}  // namespace parley::upstream
