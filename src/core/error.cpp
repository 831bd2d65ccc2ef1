#include "core/error.hpp"

#include <array>
#include <atomic>
#include <cstdint>

namespace parley {
namespace {

struct Row {
  ErrorKind kind;
  ErrorInfo info;
};

constexpr std::array kTable{
    Row{ErrorKind::kBadRequest, {400, "BAD_REQUEST", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kInvalidJson, {400, "INVALID_JSON", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kUnauthorized, {401, "UNAUTHORIZED", "authentication_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kForbidden, {403, "FORBIDDEN", "permission_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kNotFound, {404, "NOT_FOUND", "not_found_error", LogLevel::kDebug, false}},
    Row{ErrorKind::kMethodNotAllowed,
        {405, "METHOD_NOT_ALLOWED", "invalid_request_error", LogLevel::kDebug, false}},
    Row{ErrorKind::kRequestTimeout,
        {408, "REQUEST_TIMEOUT", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kConflict, {409, "CONFLICT", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kPayloadTooLarge,
        {413, "PAYLOAD_TOO_LARGE", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kUnsupportedMediaType,
        {415, "UNSUPPORTED_MEDIA_TYPE", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kValidation, {422, "VALIDATION_ERROR", "invalid_request_error", LogLevel::kDebug, false}},
    Row{ErrorKind::kRateLimited, {429, "RATE_LIMIT_EXCEEDED", "rate_limit_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kHeaderTooLarge,
        {431, "HEADER_TOO_LARGE", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kUpgradeRequired,
        {426, "UPGRADE_REQUIRED", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kInternal, {500, "UNEXPECTED_ERROR", "api_error", LogLevel::kError, false}},
    Row{ErrorKind::kDatabase, {500, "DATABASE_ERROR", "api_error", LogLevel::kError, false}},
    Row{ErrorKind::kUnavailable, {503, "SERVICE_UNAVAILABLE", "api_error", LogLevel::kWarn, false}},
    Row{ErrorKind::kApiKeyNotConfigured,
        {400, "API_KEY_NOT_CONFIGURED", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kApiKeyDecryptionFailed,
        {500, "API_KEY_DECRYPTION_FAILED", "api_error", LogLevel::kError, false}},
    Row{ErrorKind::kInvalidApiKey, {400, "INVALID_API_KEY", "invalid_request_error", LogLevel::kInfo, false}},
    Row{ErrorKind::kOpenAiRateLimit, {429, "OPENAI_RATE_LIMIT", "rate_limit_error", LogLevel::kWarn, true}},
    Row{ErrorKind::kOpenAiConnection, {503, "OPENAI_CONNECTION_ERROR", "api_error", LogLevel::kWarn, true}},
    Row{ErrorKind::kOpenAiTimeout, {504, "OPENAI_TIMEOUT", "api_error", LogLevel::kWarn, false}},
    Row{ErrorKind::kOpenAiApiError, {502, "OPENAI_API_ERROR", "api_error", LogLevel::kWarn, false}},
    Row{ErrorKind::kModelNotFound,
        {404, "MODEL_NOT_FOUND", "invalid_request_error", LogLevel::kDebug, false}},
    Row{ErrorKind::kBudgetExceeded, {402, "BUDGET_EXCEEDED", "insufficient_quota", LogLevel::kInfo, false}},
    Row{ErrorKind::kModelOutputInvalid, {502, "MODEL_OUTPUT_INVALID", "api_error", LogLevel::kWarn, false}},
};

constexpr bool table_is_complete() {
  for (std::size_t i = 0; i < kTable.size(); ++i) {
    if (static_cast<std::size_t>(kTable[i].kind) != i) return false;
  }
  return kTable.size() == static_cast<std::size_t>(ErrorKind::kModelOutputInvalid) + 1;
}
static_assert(table_is_complete(), "kTable must list every ErrorKind in declaration order");

}  // namespace

namespace {
std::array<std::atomic<std::uint64_t>, kErrorKinds> g_error_counts{};
}  // namespace

void count_error(ErrorKind kind) noexcept {
  g_error_counts[static_cast<std::size_t>(kind)].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t errors_counted(ErrorKind kind) noexcept {
  return g_error_counts[static_cast<std::size_t>(kind)].load(std::memory_order_relaxed);
}

const ErrorInfo& error_info(ErrorKind kind) noexcept {
  return kTable[static_cast<std::size_t>(kind)].info;
}

std::optional<ErrorKind> error_kind_of_code(std::string_view code) noexcept {
  for (const auto& row : kTable) {
    if (row.info.code == code) return row.kind;
  }
  return std::nullopt;
}

}  // namespace parley
