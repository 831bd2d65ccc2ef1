#include "upstream/retry_policy.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>

namespace parley::upstream {
namespace {

using std::chrono::milliseconds;

constexpr long long kMaxRetryAfterSeconds = 1'000'000'000;

bool is_retryable_status(int status) noexcept {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504 ||
         status == 529;  // Anthropic's "overloaded", a 503 by another number
}

// One draw from rng, forced into [0, 1); an empty Rng means "no jitter" (the midpoint).
double draw(const Rng& rng) {
  if (!rng) return 0.5;
  const double r = rng();
  if (!(r >= 0.0)) return 0.0;  // also NaN
  if (r >= 1.0) return std::nextafter(1.0, 0.0);
  return r;
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

std::optional<int> two_digits(std::string_view s, std::size_t at) noexcept {
  if (!is_digit(s[at]) || !is_digit(s[at + 1])) return std::nullopt;
  return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

// IMF-fixdate, RFC 9110 §5.6.7: "Sun, 06 Nov 1994 08:49:37 GMT" (case-sensitive, fixed width).
std::optional<std::chrono::sys_seconds> parse_imf_fixdate(std::string_view s) noexcept {
  static constexpr std::array<std::string_view, 7> kDays{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29) return std::nullopt;
  if (std::find(kDays.begin(), kDays.end(), s.substr(0, 3)) == kDays.end()) return std::nullopt;
  if (s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':' ||
      s.substr(25) != " GMT") {
    return std::nullopt;
  }
  const auto month_it = std::find(kMonths.begin(), kMonths.end(), s.substr(8, 3));
  if (month_it == kMonths.end()) return std::nullopt;
  const auto day = two_digits(s, 5);
  const auto year_hi = two_digits(s, 12);
  const auto year_lo = two_digits(s, 14);
  const auto hour = two_digits(s, 17);
  const auto minute = two_digits(s, 20);
  const auto second = two_digits(s, 23);
  if (!day || !year_hi || !year_lo || !hour || !minute || !second) return std::nullopt;
  if (*hour > 23 || *minute > 59 || *second > 60) return std::nullopt;  // 60: a leap second

  const std::chrono::year_month_day date{
      std::chrono::year{*year_hi * 100 + *year_lo},
      std::chrono::month{static_cast<unsigned>(month_it - kMonths.begin()) + 1},
      std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days{date} + std::chrono::hours{*hour} + std::chrono::minutes{*minute} +
         std::chrono::seconds{*second};
}

}  // namespace

std::string_view to_string(FailureKind kind) noexcept {
  switch (kind) {
    case FailureKind::kHttpStatus:
      return "http_status";
    case FailureKind::kConnect:
      return "connect";
    case FailureKind::kReset:
      return "reset";
    case FailureKind::kTimeout:
      return "timeout";
    case FailureKind::kMalformed:
      return "malformed";
  }
  return "unknown";
}

Rng make_rng(std::uint64_t seed) {
  return [engine = std::mt19937_64{seed}]() mutable {
    return std::uniform_real_distribution<double>{0.0, 1.0}(engine);
  };
}

bool is_retryable(FailureKind kind, int http_status) noexcept {
  switch (kind) {
    case FailureKind::kHttpStatus:
      return is_retryable_status(http_status);
    case FailureKind::kConnect:
    case FailureKind::kReset:
      return true;
    case FailureKind::kTimeout:
    case FailureKind::kMalformed:
      return false;
  }
  return false;
}

milliseconds backoff_delay(const RetryConfig& config, int attempt, const Rng& rng) {
  const milliseconds cap = std::clamp(config.max_delay, milliseconds{0}, kMaxBackoffDelay);
  milliseconds delay = std::clamp(config.base_delay, milliseconds{0}, cap);
  // Doubling stops at the cap, so neither a large attempt nor a large base can overflow.
  for (int i = 0; i < attempt && delay < cap; ++i) {
    delay = delay.count() > cap.count() / 2 ? cap : delay * 2;
  }
  const double jitter = std::clamp(config.jitter, 0.0, 1.0);
  const double factor = 1.0 + jitter * (2.0 * draw(rng) - 1.0);
  return milliseconds{std::llround(static_cast<double>(delay.count()) * factor)};
}

RetryDecision decide(const RetryConfig& config, int attempt, FailureKind kind, int http_status,
                     std::optional<milliseconds> retry_after, bool bytes_reached_client,
                     milliseconds time_left_until_deadline, const Rng& rng) {
  if (bytes_reached_client) return {false, milliseconds{0}, "bytes_reached_client"};
  if (!is_retryable(kind, http_status)) {
    switch (kind) {
      case FailureKind::kTimeout:
        return {false, milliseconds{0}, "timeout"};
      case FailureKind::kMalformed:
        return {false, milliseconds{0}, "malformed"};
      default:
        return {false, milliseconds{0}, "status_not_retryable"};
    }
  }
  if (attempt >= config.max_retries) return {false, milliseconds{0}, "max_retries"};

  milliseconds delay = backoff_delay(config, std::max(attempt, 0), rng);
  if (retry_after) {
    const milliseconds cap = std::max(config.retry_after_cap, milliseconds{0});
    delay = std::max(delay, std::clamp(*retry_after, milliseconds{0}, cap));
  }
  if (delay >= time_left_until_deadline) return {false, delay, "deadline"};

  std::string_view reason = "server_error";
  if (kind == FailureKind::kConnect) {
    reason = "connect";
  } else if (kind == FailureKind::kReset) {
    reason = "reset";
  } else if (http_status == 429) {
    reason = "rate_limited";
  }
  return {true, delay, reason};
}

std::optional<milliseconds> parse_retry_after(std::string_view header,
                                              std::chrono::system_clock::time_point now) {
  const std::string_view value = trim_ows(header);
  if (value.empty()) return std::nullopt;

  if (std::all_of(value.begin(), value.end(), is_digit)) {
    long long seconds = 0;
    for (const char c : value) {
      seconds = std::min(seconds * 10 + (c - '0'), kMaxRetryAfterSeconds);
    }
    return std::chrono::duration_cast<milliseconds>(std::chrono::seconds{seconds});
  }

  const std::optional<std::chrono::sys_seconds> date = parse_imf_fixdate(value);
  if (!date) return std::nullopt;
  const milliseconds until = std::chrono::ceil<milliseconds>(*date - now);
  return std::max(until, milliseconds{0});
}

ErrorKind error_kind_for(FailureKind kind, int http_status) noexcept {
  switch (kind) {
    case FailureKind::kConnect:
    case FailureKind::kReset:
      return ErrorKind::kOpenAiConnection;
    case FailureKind::kTimeout:
      return ErrorKind::kOpenAiTimeout;
    case FailureKind::kMalformed:
      return ErrorKind::kOpenAiApiError;
    case FailureKind::kHttpStatus:
      if (http_status == 429) return ErrorKind::kOpenAiRateLimit;
      if (http_status == 401 || http_status == 403) return ErrorKind::kInvalidApiKey;  // the key is refused
      return ErrorKind::kOpenAiApiError;
  }
  return ErrorKind::kOpenAiApiError;
}

}  // namespace parley::upstream
