// Limits as plain data (core/limits.hpp): the durations written in x-ratelimit-reset-*, budget
// period names, and how a patch changes a scope's settings.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "core/limits.hpp"

namespace parley {
namespace {

TEST(GoDurationTest, BelowOneSecondIsMilliseconds) {
  EXPECT_EQ(go_duration(0), "0ms");
  EXPECT_EQ(go_duration(1), "1ms");
  EXPECT_EQ(go_duration(120), "120ms");
  EXPECT_EQ(go_duration(999), "999ms");
}

TEST(GoDurationTest, SecondsWithFractionWithoutTrailingZeros) {
  EXPECT_EQ(go_duration(1000), "1s");
  EXPECT_EQ(go_duration(1500), "1.5s");
  EXPECT_EQ(go_duration(1050), "1.05s");
  EXPECT_EQ(go_duration(1001), "1.001s");
  EXPECT_EQ(go_duration(59'999), "59.999s");
}

TEST(GoDurationTest, MinutesAndHoursAlwaysWriteTheSmallerUnits) {
  EXPECT_EQ(go_duration(60'000), "1m0s");
  EXPECT_EQ(go_duration(61'000), "1m1s");
  EXPECT_EQ(go_duration(360'000), "6m0s");
  EXPECT_EQ(go_duration(3'600'000), "1h0m0s");
  EXPECT_EQ(go_duration(3'723'500), "1h2m3.5s");
  EXPECT_EQ(go_duration(3'600'001), "1h0m0.001s");
  EXPECT_EQ(go_duration(90'000'000), "25h0m0s");  // Go does not use days
}

TEST(GoDurationTest, NegativeIsZero) {
  EXPECT_EQ(go_duration(-1), "0ms");
  EXPECT_EQ(go_duration(-5000), "0ms");
  EXPECT_EQ(go_duration(std::numeric_limits<std::int64_t>::min()), "0ms");
}

TEST(BudgetPeriodTest, NamesRoundTrip) {
  for (BudgetPeriod p : {BudgetPeriod::kDay, BudgetPeriod::kMonth, BudgetPeriod::kTotal}) {
    auto parsed = parse_budget_period(budget_period_name(p));
    ASSERT_TRUE(parsed.has_value()) << budget_period_name(p);
    EXPECT_EQ(*parsed, p);
  }
  EXPECT_EQ(budget_period_name(BudgetPeriod::kDay), "day");
  EXPECT_EQ(budget_period_name(BudgetPeriod::kMonth), "month");
  EXPECT_EQ(budget_period_name(BudgetPeriod::kTotal), "total");
}

TEST(BudgetPeriodTest, UnknownNamesAreRefused) {
  EXPECT_FALSE(parse_budget_period(""));
  EXPECT_FALSE(parse_budget_period("Day"));
  EXPECT_FALSE(parse_budget_period("week"));
  EXPECT_FALSE(parse_budget_period("month "));
  EXPECT_FALSE(parse_budget_period("monthly"));
}

TEST(LimitSettingsTest, DefaultsAreNoLimitsAndAMonthlyPeriod) {
  LimitSettings s;
  EXPECT_FALSE(s.rate_limit_per_minute);
  EXPECT_FALSE(s.tokens_per_minute);
  EXPECT_FALSE(s.token_budget);
  EXPECT_FALSE(s.spend_budget_nanos);
  EXPECT_EQ(s.budget_period, BudgetPeriod::kMonth);
}

LimitSettings full() {
  LimitSettings s;
  s.rate_limit_per_minute = 10;
  s.tokens_per_minute = 2000;
  s.token_budget = 100'000;
  s.spend_budget_nanos = 5'000'000'000;
  s.budget_period = BudgetPeriod::kDay;
  return s;
}

TEST(LimitsPatchTest, AnEmptyPatchKeepsEverything) {
  LimitSettings s = full();
  LimitsPatch{}.apply_to(s);
  EXPECT_EQ(s, full());
}

TEST(LimitsPatchTest, SetFieldsChangeOnlyThemselves) {
  LimitSettings s = full();
  LimitsPatch p;
  p.rate_limit_per_minute = std::optional<std::int64_t>(20);
  p.budget_period = BudgetPeriod::kTotal;
  p.apply_to(s);
  LimitSettings want = full();
  want.rate_limit_per_minute = 20;
  want.budget_period = BudgetPeriod::kTotal;
  EXPECT_EQ(s, want);
}

TEST(LimitsPatchTest, NulloptRemovesALimit) {
  LimitSettings s = full();
  LimitsPatch p;
  p.tokens_per_minute = std::optional<std::int64_t>{};
  p.token_budget = std::optional<std::int64_t>{};
  p.spend_budget_nanos = std::optional<std::int64_t>{};
  p.apply_to(s);
  EXPECT_EQ(s.rate_limit_per_minute, 10);  // unset: kept
  EXPECT_FALSE(s.tokens_per_minute);
  EXPECT_FALSE(s.token_budget);
  EXPECT_FALSE(s.spend_budget_nanos);
  EXPECT_EQ(s.budget_period, BudgetPeriod::kDay);
}

TEST(LimitsPatchTest, SetsALimitThatWasAbsent) {
  LimitSettings s;
  LimitsPatch p;
  p.token_budget = std::optional<std::int64_t>(42);
  p.apply_to(s);
  EXPECT_EQ(s.token_budget, 42);
  EXPECT_FALSE(s.rate_limit_per_minute);
}

TEST(LimitsPatchTest, ZeroIsKeptAsZero) {
  // 0 means "no limit" to the limiter, but the patch stores what it was given.
  LimitSettings s = full();
  LimitsPatch p;
  p.rate_limit_per_minute = std::optional<std::int64_t>(0);
  p.apply_to(s);
  ASSERT_TRUE(s.rate_limit_per_minute);
  EXPECT_EQ(*s.rate_limit_per_minute, 0);
}

}  // namespace
}  // namespace parley
