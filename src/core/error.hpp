// One error vocabulary for the whole server. Every failure that can reach a client is an Error
// whose ErrorKind decides the HTTP status, the public `code` and `type`, the log level and whether
// a provider call may be retried. Subsystems return Result<T>; nothing throws on the request path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace parley {

struct RateLimitInfo;  // core/limits.hpp

enum class ErrorKind {
  kBadRequest,              // 400 malformed request or protocol violation
  kInvalidJson,             // 400 body is not JSON
  kUnauthorized,            // 401 missing or invalid credentials
  kForbidden,               // 403 authenticated but not allowed
  kNotFound,                // 404 no such route or object (also: another user's object)
  kMethodNotAllowed,        // 405 route exists, method does not
  kRequestTimeout,          // 408 client too slow
  kConflict,                // 409 unique constraint (username taken, ...)
  kPayloadTooLarge,         // 413 body over the limit
  kUnsupportedMediaType,    // 415 wrong Content-Type
  kValidation,              // 422 a field failed validation; `param` names it
  kRateLimited,             // 429 our own limits
  kHeaderTooLarge,          // 431 header block over the limit
  kUpgradeRequired,         // 426 a WebSocket route asked for without the upgrade
  kInternal,                // 500 UNEXPECTED_ERROR
  kDatabase,                // 500 store failure
  kUnavailable,             // 503 not ready / shutting down
  kApiKeyNotConfigured,     // 400 byok provider, user has no key
  kApiKeyDecryptionFailed,  // 500 stored key cannot be decrypted
  kInvalidApiKey,           // 400 provider answered 401
  kOpenAiRateLimit,         // 429 provider rate limit after retries
  kOpenAiConnection,        // 503 provider unreachable
  kOpenAiTimeout,           // 504 provider deadline passed
  kOpenAiApiError,          // 502 other provider failure
  kModelNotFound,           // 404 /v1: no configured provider serves the model
  kBudgetExceeded,          // 402 a token or spend budget of the period is used up
  kModelOutputInvalid,      // 502 the model's answer is not the structured answer asked for
};

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct ErrorInfo {
  int status;
  std::string_view code;  // stable, machine-readable: "VALIDATION_ERROR"
  std::string_view type;  // OpenAI-style family: "invalid_request_error"
  LogLevel log_level;
  bool retryable;  // may a provider call that failed this way be retried
};

// The single table behind every error response; defined in error.cpp.
const ErrorInfo& error_info(ErrorKind kind) noexcept;
// Error responses sent, by kind (for the metrics); count_error is called by http::error_response.
void count_error(ErrorKind kind) noexcept;
std::uint64_t errors_counted(ErrorKind kind) noexcept;
inline constexpr std::size_t kErrorKinds = static_cast<std::size_t>(ErrorKind::kModelOutputInvalid) + 1;

// The kind whose public code this is ("VALIDATION_ERROR" → kValidation), for codes read back from
// the store; nullopt for a code no kind has.
std::optional<ErrorKind> error_kind_of_code(std::string_view code) noexcept;

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
  std::optional<std::string> param;  // the offending field for kValidation
  // Set on a refusal by a limit: rendered as Retry-After and the rate-limit headers.
  std::shared_ptr<const RateLimitInfo> rate;

  Error() = default;
  Error(ErrorKind k, std::string msg, std::optional<std::string> p = std::nullopt)
      : kind(k), message(std::move(msg)), param(std::move(p)) {}

  [[nodiscard]] const ErrorInfo& info() const noexcept { return error_info(kind); }
  [[nodiscard]] int status() const noexcept { return info().status; }
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> fail(ErrorKind kind, std::string message,
                                   std::optional<std::string> param = std::nullopt) {
  return std::unexpected<Error>(Error{kind, std::move(message), std::move(param)});
}

inline std::unexpected<Error> validation(std::string param, std::string message) {
  return fail(ErrorKind::kValidation, std::move(message), std::move(param));
}

}  // namespace parley
