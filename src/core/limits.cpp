#include "core/limits.hpp"

#include <string>

namespace parley {

std::string_view budget_period_name(BudgetPeriod period) noexcept {
  switch (period) {
    case BudgetPeriod::kDay:
      return "day";
    case BudgetPeriod::kMonth:
      return "month";
    case BudgetPeriod::kTotal:
      return "total";
  }
  return "month";
}

std::optional<BudgetPeriod> parse_budget_period(std::string_view text) noexcept {
  if (text == "day") return BudgetPeriod::kDay;
  if (text == "month") return BudgetPeriod::kMonth;
  if (text == "total") return BudgetPeriod::kTotal;
  return std::nullopt;
}

std::string go_duration(std::int64_t ms) {
  if (ms < 0) ms = 0;
  if (ms < 1000) return std::to_string(ms) + "ms";
  const std::int64_t hours = ms / 3'600'000;
  const std::int64_t minutes = (ms / 60'000) % 60;
  const std::int64_t sec_ms = ms % 60'000;
  std::string seconds = std::to_string(sec_ms / 1000);
  if (std::int64_t frac = sec_ms % 1000; frac != 0) {
    std::string f = std::to_string(frac);
    f.insert(0, 3 - f.size(), '0');
    while (f.back() == '0') f.pop_back();
    seconds += "." + f;
  }
  std::string out;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  return out + seconds + "s";
}

}  // namespace parley
