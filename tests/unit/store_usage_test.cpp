// Usage events on both backends, against the real embedded migrations: batched inserts, totals
// per key, per user and since a time, and the 0004 renumbering of rows written before it. PostgreSQL cases
// run when PARLEY_TEST_POSTGRES_URL is set and are skipped otherwise.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "backend_fixture.hpp"
#include "store/migrations.hpp"
#include "store/usage_store.hpp"

namespace parley::store {
namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000;

UsageEvent event(int i, std::string key, std::string user, std::int64_t at) {
  UsageEvent e;
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
  // 125 events in one transaction: full multi-row statements (7 × 16 on SQLite, 2 × 50 on
  // PostgreSQL) and the remainder one row at a time.
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

TEST_P(StoreUsageTest, TheDatabaseNumbersRowsInTheOrderTheyAreAppended) {
  UsageStore usage(db());
  ASSERT_TRUE(usage.append(std::vector<UsageEvent>{event(1, "k", "u1", kT0), event(2, "k", "u1", kT0)}));
  ASSERT_TRUE(usage.append(std::vector<UsageEvent>{event(3, "k", "u1", kT0 - 5)}));
  auto rows = db().query("SELECT id, request_id FROM usage_events ORDER BY id");
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->rows.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rows->rows[i].get_string(1), fmt::format("req-{}", i + 1));
    if (i > 0) {
      EXPECT_GT(rows->rows[i].get_int(0), rows->rows[i - 1].get_int(0));
    }
  }
}

// Migration 0004 replaced the writer's TEXT ids by database-assigned integers: rows written before
// it are kept, numbered in time order, and later rows continue the sequence.
class StoreUsageMigrationTest : public test::BackendTest {
 protected:
  void SetUp() override { open_scratch(false); }
};

TEST_P(StoreUsageMigrationTest, Migration0004KeepsEarlierRowsAndNumbersThemInTimeOrder) {
  std::vector<MigrationSource> before;
  for (const MigrationSource& m : detail::embedded_migration_sources()) {
    if (m.file_name < std::string_view("0004")) before.push_back(m);
  }
  ASSERT_TRUE(migrate(db(), before));
  for (auto [id, at] : {std::pair{"b", 30}, std::pair{"a", 10}, std::pair{"c", 20}}) {
    auto ins = db().query(
        "INSERT INTO usage_events (id, user_id, api_key_id, provider, model, endpoint, status, streamed, "
        "prompt_tokens, completion_tokens, total_tokens, latency_ms, request_id, created_at) "
        "VALUES ($1, 'u1', 'k', 'mock', 'm', 'chat.completions', 200, 0, 1, 2, 3, 4, $2, $3)",
        {Value(id), Value(std::string("req-") + id), Value(kT0 + at)});
    ASSERT_TRUE(ins) << ins.error().message;
  }
  auto migrated = migrate(db());
  ASSERT_TRUE(migrated) << migrated.error().message;
  ASSERT_EQ(migrated->applied.size(), static_cast<std::size_t>(latest_known_version() - 3));

  UsageStore usage(db());
  ASSERT_TRUE(usage.append(std::vector<UsageEvent>{event(9, "k", "u1", kT0 + 40)}));
  auto rows = db().query("SELECT id, request_id, total_tokens FROM usage_events ORDER BY id");
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->rows.size(), 4u);
  const char* expected[] = {"req-a", "req-c", "req-b", "req-9"};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(rows->rows[i].get_int(0), static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(rows->rows[i].get_string(1), expected[i]);
  }
  auto totals = usage.totals({.api_key_id = "k"});
  ASSERT_TRUE(totals);
  EXPECT_EQ(totals->requests, 4);
  EXPECT_EQ(totals->total_tokens, 3 * 3 + 27);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreUsageMigrationTest,
                         ::testing::Values(Dialect::kSqlite, Dialect::kPostgres), test::backend_name);

INSTANTIATE_TEST_SUITE_P(Backends, StoreUsageTest, ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         test::backend_name);

}  // namespace
}  // namespace parley::store
