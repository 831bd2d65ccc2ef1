// Limits and budgets as configured on a service key or a user (docs/LIMITS.md), and what a client
// is told about them (the X-RateLimit-* / x-ratelimit-* headers). Plain data, shared by the store,
// the principal and the limiter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace parley {

enum class BudgetPeriod { kDay, kMonth, kTotal };

std::string_view budget_period_name(BudgetPeriod period) noexcept;
std::optional<BudgetPeriod> parse_budget_period(std::string_view text) noexcept;

// One scope's settings; nullopt (or 0) is "no limit".
struct LimitSettings {
  std::optional<std::int64_t> rate_limit_per_minute;
  std::optional<std::int64_t> tokens_per_minute;
  std::optional<std::int64_t> token_budget;
  std::optional<std::int64_t> spend_budget_nanos;  // USD × 1e9
  BudgetPeriod budget_period = BudgetPeriod::kMonth;

  friend bool operator==(const LimitSettings&, const LimitSettings&) = default;
};

// Fields to change; an unset field keeps its value, a field set to nullopt removes the limit.
struct LimitsPatch {
  std::optional<std::optional<std::int64_t>> rate_limit_per_minute;
  std::optional<std::optional<std::int64_t>> tokens_per_minute;
  std::optional<std::optional<std::int64_t>> token_budget;
  std::optional<std::optional<std::int64_t>> spend_budget_nanos;
  std::optional<BudgetPeriod> budget_period;

  void apply_to(LimitSettings& limits) const {
    if (rate_limit_per_minute) limits.rate_limit_per_minute = *rate_limit_per_minute;
    if (tokens_per_minute) limits.tokens_per_minute = *tokens_per_minute;
    if (token_budget) limits.token_budget = *token_budget;
    if (spend_budget_nanos) limits.spend_budget_nanos = *spend_budget_nanos;
    if (budget_period) limits.budget_period = *budget_period;
  }
};

// A window as reported to a client: its limit, what is left, and when the oldest entry leaves it.
struct RateWindow {
  std::int64_t limit = 0;
  std::int64_t remaining = 0;
  std::int64_t reset_ms = 0;
};

struct RateLimitInfo {
  std::optional<RateWindow> requests;
  std::optional<RateWindow> tokens;
  std::int64_t retry_after_ms = 0;  // > 0 on a refusal that waiting resolves
};

// "120ms", "1s", "1.5s", "6m0s", "1h0m0s": durations as OpenAI writes its x-ratelimit-reset-*.
std::string go_duration(std::int64_t ms);

}  // namespace parley
