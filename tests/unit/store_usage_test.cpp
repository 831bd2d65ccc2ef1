// Usage events on both backends, against the real embedded migrations: batched multi-row inserts
// and totals per key, per user and since a time. PostgreSQL cases run when
// PARLEY_TEST_POSTGRES_URL is set and are skipped otherwise.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend_fixture.hpp"
#include "store/usage_store.hpp"

namespace parley::store {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000;

UsageEvent event(int i, std::string key, std::string user, std::int64_t at) {
  UsageEvent e;
  e.id = fmt::format("ev{:04}", i);
  e.user_id = std::move(user);
  if (!key.empty()) e.api_key_id = std::move(key);
  e.provider = "mock";
  e.model = "gpt-4o-mini";
  e.endpoint = "chat.completions";
  e.status = 200;
  e.streamed = i % 2 == 0;
  e.prompt_tokens = i;
  e.completion_tokens = 2 * i;
  e.total_tokens = 3 * i;
  e.latency_ms = 5;
  e.request_id = fmt::format("req-{}", i);
  e.created_at = at;
  return e;
}

class StoreUsageTest : public test::BackendTest {};

TEST_P(StoreUsageTest, AppendsBatchesLargerThanOneStatementAndSumsPerKey) {
  UsageStore usage(db());
  std::vector<UsageEvent> batch;
  // 125 events: thirteen multi-row statements (12 × 10 + 5) in one transaction.
  for (int i = 1; i <= 125; ++i) batch.push_back(event(i, i % 3 == 0 ? "key-b" : "key-a", "u1", kT0 + i));
  ASSERT_TRUE(usage.append(batch));

  auto all = usage.totals({});
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(all->requests, 125);
  EXPECT_EQ(all->prompt_tokens, 125 * 126 / 2);
  EXPECT_EQ(all->completion_tokens, 125 * 126);
  EXPECT_EQ(all->total_tokens, 3 * 125 * 126 / 2);

  auto b = usage.totals({.api_key_id = "key-b"});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->requests, 41);
  std::int64_t sum_b = 0;
  for (int i = 3; i <= 125; i += 3) sum_b += i;
  EXPECT_EQ(b->prompt_tokens, sum_b);

  auto recent = usage.totals({.api_key_id = "key-a", .since_ms = kT0 + 101});
  ASSERT_TRUE(recent);
  int expected = 0;
  for (int i = 101; i <= 125; ++i) expected += i % 3 != 0 ? 1 : 0;
  EXPECT_EQ(recent->requests, expected);
}

TEST_P(StoreUsageTest, EventsWithoutAKeyCountForTheirUserAndNothingMatchesAnUnknownKey) {
  UsageStore usage(db());
  std::vector<UsageEvent> batch{event(1, "", "u1", kT0), event(2, "", "u2", kT0), event(3, "k", "u1", kT0)};
  ASSERT_TRUE(usage.append(batch));
  auto u1 = usage.totals({.user_id = "u1"});
  ASSERT_TRUE(u1);
  EXPECT_EQ(u1->requests, 2);
  EXPECT_EQ(u1->total_tokens, 3 + 9);
  auto none = usage.totals({.api_key_id = "nope"});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->requests, 0);
  EXPECT_EQ(none->total_tokens, 0);
}

TEST_P(StoreUsageTest, ADuplicateIdFailsTheWholeBatch) {
  UsageStore usage(db());
  std::vector<UsageEvent> batch{event(1, "k", "u1", kT0), event(1, "k", "u1", kT0)};
  EXPECT_FALSE(usage.append(batch));
  auto all = usage.totals({});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->requests, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreUsageTest, ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         test::backend_name);

}  // namespace
}  // namespace parley::store
