// Usage events on both backends, against the real embedded migrations: batched inserts, totals
// per key, per user and since a time, the daily rollups kept by append (and backfilled by 0006),
// records pages, summaries, and the 0004 renumbering of rows written before it. PostgreSQL cases
// run when PARLEY_TEST_POSTGRES_URL is set and are skipped otherwise.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>
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

// The rollups as they are stored, and as the events say they should be.
using RollupRows = std::map<std::tuple<std::int64_t, std::string, std::string, std::string, std::string>,
                            std::vector<std::int64_t>>;

RollupRows stored_rollups(Executor& db) {
  RollupRows out;
  auto r = db.query(
      "SELECT day, user_id, api_key_id, provider, model, requests, errors, prompt_tokens, completion_tokens, "
      "total_tokens, cost_nanos, latency_ms_sum FROM usage_daily");
  EXPECT_TRUE(r) << r.error().message;
  if (!r) return out;
  for (const Row& row : r->rows) {
    std::vector<std::int64_t> v;
    for (std::size_t i = 5; i < 12; ++i) v.push_back(row.get_int(i));
    out[{row.get_int(0), row.get_string(1), row.get_string(2), row.get_string(3), row.get_string(4)}] = v;
  }
  return out;
}

RollupRows rollups_from_events(Executor& db) {
  RollupRows out;
  auto r = db.query(
      "SELECT created_at, user_id, COALESCE(api_key_id, ''), provider, model, status, prompt_tokens, "
      "completion_tokens, total_tokens, cost_nanos, latency_ms FROM usage_events");
  EXPECT_TRUE(r) << r.error().message;
  if (!r) return out;
  for (const Row& row : r->rows) {
    auto& v = out[{utc_day_start(row.get_int(0)), row.get_string(1), row.get_string(2), row.get_string(3),
                   row.get_string(4)}];
    if (v.empty()) v.assign(7, 0);
    v[0] += 1;
    v[1] += row.get_int(5) >= 400 ? 1 : 0;
    for (std::size_t i = 0; i < 5; ++i) v[2 + i] += row.get_int(6 + i);
  }
  return out;
}

// The deployment's rollups (usage_daily_models) against usage_daily summed per day and model.
void expect_model_rollups_match(Executor& db) {
  auto direct = db.query(
      "SELECT day, provider, model, requests, errors, prompt_tokens, completion_tokens, total_tokens, "
      "cost_nanos, "
      "latency_ms_sum FROM usage_daily_models ORDER BY day, provider, model");
  auto summed = db.query(
      "SELECT day, provider, model, SUM(requests), SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), "
      "SUM(total_tokens), SUM(cost_nanos), SUM(latency_ms_sum) FROM usage_daily GROUP BY day, provider, "
      "model "
      "ORDER BY day, provider, model");
  ASSERT_TRUE(direct) << direct.error().message;
  ASSERT_TRUE(summed) << summed.error().message;
  ASSERT_EQ(direct->rows.size(), summed->rows.size());
  EXPECT_FALSE(direct->rows.empty());
  for (std::size_t i = 0; i < direct->rows.size(); ++i) {
    for (std::size_t c = 0; c < 10; ++c) {
      EXPECT_EQ(direct->rows[i].get_string(c), summed->rows[i].get_string(c))
          << "row " << i << " column " << c;
    }
  }
}

TEST(UsageDayTest, UtcDayStartFloorsToMidnight) {
  EXPECT_EQ(utc_day_start(0), 0);
  EXPECT_EQ(utc_day_start(kDayMs - 1), 0);
  EXPECT_EQ(utc_day_start(kDayMs), kDayMs);
  EXPECT_EQ(utc_day_start(-1), -kDayMs);
  EXPECT_EQ(utc_day_start(1'700'000'000'000), 1'699'920'000'000);
}

TEST_P(StoreUsageTest, AppendKeepsTheDailyRollupsEqualToTheEventsAcrossBatchesDaysKeysAndModels) {
  UsageStore usage(db());
  const std::int64_t day0 = utc_day_start(kT0);
  // Batches that straddle midnight, mix keys, key-less calls, models, errors and costs, and repeat
  // groups within one batch and across batches (the upsert's update path). One batch has more
  // than 16 groups (a full multi-row upsert plus the remainder).
  for (int batch = 0; batch < 4; ++batch) {
    std::vector<UsageEvent> events;
    for (int i = 0; i < 60; ++i) {
      UsageEvent e = event(i + 1, i % 4 == 0 ? "" : fmt::format("key-{}", i % 3), fmt::format("u{}", i % 2),
                           day0 + kDayMs - 1000 + (batch * 60 + i) * 10);
      e.model = batch == 2 ? fmt::format("model-{}", i % 12) : (i % 5 == 0 ? "gpt-4o" : "gpt-4o-mini");
      e.status = i % 7 == 0 ? 502 : (i % 11 == 0 ? 429 : 200);
      e.cost_nanos = 1000 * i + batch;
      e.latency_ms = i;
      events.push_back(std::move(e));
    }
    ASSERT_TRUE(usage.append(events));
  }
  const RollupRows stored = stored_rollups(db());
  EXPECT_EQ(stored, rollups_from_events(db()));
  EXPECT_GT(stored.size(), 16u);
  expect_model_rollups_match(db());
  // Both days are there, the key-less calls under ''.
  bool saw_day1 = false;
  bool saw_keyless = false;
  for (const auto& [k, v] : stored) {
    saw_day1 = saw_day1 || std::get<0>(k) == day0 + kDayMs;
    saw_keyless = saw_keyless || std::get<2>(k).empty();
  }
  EXPECT_TRUE(saw_day1);
  EXPECT_TRUE(saw_keyless);
}

TEST_P(StoreUsageTest, TotalsReadWholeDaysFromTheRollupsAndThePartialFirstDayFromTheEvents) {
  UsageStore usage(db());
  const std::int64_t day0 = utc_day_start(kT0);
  std::vector<UsageEvent> events;
  // Three days, four calls a day at 01:00, 07:00, 13:00, 19:00.
  for (int d = 0; d < 3; ++d) {
    for (int h = 0; h < 4; ++h) {
      UsageEvent e = event(1 + d * 4 + h, "k", "u1", day0 + d * kDayMs + (1 + 6 * h) * 3'600'000);
      e.cost_nanos = 7;
      events.push_back(std::move(e));
    }
  }
  ASSERT_TRUE(usage.append(events));
  // Rows written behind the store's back (not in the rollups) show which part answers: only the
  // partial first day is read from the events.
  auto ins = db().query(
      "INSERT INTO usage_events (user_id, api_key_id, provider, model, endpoint, status, streamed, "
      "prompt_tokens, "
      "completion_tokens, total_tokens, latency_ms, cost_nanos, request_id, created_at) "
      "VALUES ('u1', 'k', 'mock', 'm', 'chat', 200, 0, 0, 0, 1000, 0, 0, NULL, $1)",
      {Value(day0 + kDayMs + 23 * 3'600'000)});
  ASSERT_TRUE(ins) << ins.error().message;

  auto from_midnight = usage.totals({.api_key_id = "k", .since_ms = day0 + kDayMs});
  ASSERT_TRUE(from_midnight) << from_midnight.error().message;
  EXPECT_EQ(from_midnight->requests, 8);  // days 1 and 2 from the rollups; the stray row not seen
  EXPECT_EQ(from_midnight->cost_nanos, 56);
  std::int64_t tokens = 0;
  for (int i = 5; i <= 12; ++i) tokens += 3 * i;
  EXPECT_EQ(from_midnight->total_tokens, tokens);

  // From 12:00 of day 1: its 13:00 and 19:00 calls and the stray row from the events, day 2 from
  // the rollups.
  auto mid_day = usage.totals({.api_key_id = "k", .since_ms = day0 + kDayMs + 12 * 3'600'000});
  ASSERT_TRUE(mid_day);
  EXPECT_EQ(mid_day->requests, 2 + 1 + 4);
  EXPECT_EQ(mid_day->total_tokens, 3 * (7 + 8) + 1000 + 3 * (9 + 10 + 11 + 12));
  EXPECT_EQ(mid_day->cost_nanos, 6 * 7);

  auto all = usage.totals({.user_id = "u1"});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->requests, 12);
  auto other = usage.totals({.user_id = "u2", .since_ms = day0 + 5});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->requests, 0);
}

TEST_P(StoreUsageTest, RecordsArePagedNewestFirstWithACursorAndTimeBounds) {
  UsageStore usage(db());
  std::vector<UsageEvent> events;
  // 30 events of key k (two at each time, so the id breaks ties), 10 of another key.
  for (int i = 0; i < 30; ++i) events.push_back(event(i + 1, "k", "u1", kT0 + (i / 2) * 1000));
  for (int i = 0; i < 10; ++i) events.push_back(event(100 + i, "other", "u2", kT0 + i * 1000));
  events[3].cost_nanos = 123;
  ASSERT_TRUE(usage.append(events));

  std::vector<UsageRecord> seen;
  UsageRecordQuery q{.api_key_id = "k", .limit = 7};
  int pages = 0;
  for (;;) {
    auto page = usage.records(q);
    ASSERT_TRUE(page) << page.error().message;
    ++pages;
    seen.insert(seen.end(), page->items.begin(), page->items.end());
    if (!page->has_more) break;
    ASSERT_EQ(page->items.size(), 7u);
    q.after = UsageCursor{page->items.back().created_at, page->items.back().id};
  }
  EXPECT_EQ(pages, 5);
  ASSERT_EQ(seen.size(), 30u);
  for (std::size_t i = 1; i < seen.size(); ++i) {
    const bool ordered = seen[i - 1].created_at > seen[i].created_at ||
                         (seen[i - 1].created_at == seen[i].created_at && seen[i - 1].id > seen[i].id);
    EXPECT_TRUE(ordered) << i;
    EXPECT_EQ(seen[i].api_key_id, std::optional<std::string>("k"));
  }
  EXPECT_EQ(seen.front().request_id, std::optional<std::string>("req-30"));
  EXPECT_EQ(seen.back().request_id, std::optional<std::string>("req-1"));
  EXPECT_EQ(seen[26].cost_nanos, 123);  // req-4
  EXPECT_EQ(seen[26].prompt_tokens, 4);
  EXPECT_EQ(seen[26].endpoint, "chat.completions");

  // [kT0 + 3 s, kT0 + 6 s): events 7..12.
  auto bounded =
      usage.records({.api_key_id = "k", .since_ms = kT0 + 3000, .until_ms = kT0 + 6000, .limit = 50});
  ASSERT_TRUE(bounded);
  ASSERT_EQ(bounded->items.size(), 6u);
  EXPECT_FALSE(bounded->has_more);
  EXPECT_EQ(bounded->items.front().request_id, std::optional<std::string>("req-12"));

  auto by_user = usage.records({.user_id = "u2", .limit = 50});
  ASSERT_TRUE(by_user);
  EXPECT_EQ(by_user->items.size(), 10u);
  auto everyone = usage.records({.limit = 50});
  ASSERT_TRUE(everyone);
  EXPECT_EQ(everyone->items.size(), 40u);
  EXPECT_EQ(everyone->items.front().created_at, kT0 + 14000);
}

TEST_P(StoreUsageTest, SummaryAddsUpPerDayAndPerModelFromTheRollups) {
  UsageStore usage(db());
  const std::int64_t day0 = utc_day_start(kT0);
  std::vector<UsageEvent> events;
  for (int i = 0; i < 12; ++i) {
    UsageEvent e = event(i + 1, i % 2 == 0 ? "k" : "k2", "u1", day0 + (i % 3) * kDayMs + 60'000);
    e.model = i < 8 ? "gpt-4o-mini" : "gpt-4o";
    e.status = i == 5 ? 500 : 200;
    e.cost_nanos = 10;
    events.push_back(std::move(e));
  }
  ASSERT_TRUE(usage.append(events));

  auto all = usage.summary({.user_id = "u1", .from_day = day0});
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->by_day.size(), 3u);
  for (int d = 0; d < 3; ++d) {
    EXPECT_EQ(all->by_day[d].day, day0 + d * kDayMs);
    EXPECT_EQ(all->by_day[d].amounts.requests, 4);
    EXPECT_EQ(all->by_day[d].amounts.cost_nanos, 40);
  }
  EXPECT_EQ(all->by_day[2].amounts.errors, 1);  // i = 5 is on day 2
  ASSERT_EQ(all->by_model.size(), 2u);
  EXPECT_EQ(all->by_model[0].model, "gpt-4o-mini");
  EXPECT_EQ(all->by_model[0].amounts.requests, 8);
  EXPECT_EQ(all->by_model[0].amounts.prompt_tokens, 36);
  EXPECT_EQ(all->by_model[1].model, "gpt-4o");
  EXPECT_EQ(all->by_model[1].amounts.total_tokens, 3 * (9 + 10 + 11 + 12));

  auto key_recent = usage.summary({.api_key_id = "k", .from_day = day0 + kDayMs});
  ASSERT_TRUE(key_recent);
  ASSERT_EQ(key_recent->by_day.size(), 2u);
  EXPECT_EQ(key_recent->by_day[0].amounts.requests + key_recent->by_day[1].amounts.requests, 4);

  // The whole deployment, from its own rollups: the same sums.
  auto everyone = usage.summary({.from_day = day0});
  ASSERT_TRUE(everyone);
  ASSERT_EQ(everyone->by_day.size(), 3u);
  EXPECT_EQ(everyone->by_day[2].amounts.errors, 1);
  ASSERT_EQ(everyone->by_model.size(), 2u);
  EXPECT_EQ(everyone->by_model[0].amounts.prompt_tokens, 36);
  auto total = usage.totals({.since_ms = day0 + kDayMs});
  ASSERT_TRUE(total);
  EXPECT_EQ(total->requests, 8);
  EXPECT_EQ(total->cost_nanos, 80);

  auto nobody = usage.summary({.user_id = "nobody", .from_day = 0});
  ASSERT_TRUE(nobody);
  EXPECT_TRUE(nobody->by_day.empty());
  EXPECT_TRUE(nobody->by_model.empty());
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
  // Every migration after 0003 (numbers may have gaps: each change takes its own).
  std::size_t after_third = 0;
  for (const auto& m : known_migrations()) after_third += m.version > 3 ? 1 : 0;
  ASSERT_EQ(migrated->applied.size(), after_third);

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

// Migration 0006 adds cost_nanos (0 for earlier rows) and backfills the rollups from the events.
TEST_P(StoreUsageMigrationTest, Migration0006BackfillsTheDailyRollups) {
  std::vector<MigrationSource> before;
  for (const MigrationSource& m : detail::embedded_migration_sources()) {
    if (m.file_name < std::string_view("0006")) before.push_back(m);
  }
  ASSERT_TRUE(migrate(db(), before));
  const std::int64_t day0 = utc_day_start(kT0);
  for (int i = 0; i < 9; ++i) {
    auto ins = db().query(
        "INSERT INTO usage_events (user_id, api_key_id, provider, model, endpoint, status, streamed, "
        "prompt_tokens, completion_tokens, total_tokens, latency_ms, request_id, created_at) "
        "VALUES ($1, $2, 'mock', 'm', 'chat', $3, 0, 1, 2, 3, 4, NULL, $4)",
        {Value(i % 2 == 0 ? "u1" : "u2"), i % 3 == 0 ? Value() : Value("k"), Value(i == 4 ? 503 : 200),
         Value(day0 + (i % 2) * kDayMs + i)});
    ASSERT_TRUE(ins) << ins.error().message;
  }
  auto migrated = migrate(db());
  ASSERT_TRUE(migrated) << migrated.error().message;
  const RollupRows stored = stored_rollups(db());
  EXPECT_EQ(stored, rollups_from_events(db()));
  EXPECT_EQ(stored.size(), 4u);  // 2 days × (with a key, without)
  expect_model_rollups_match(db());
  UsageStore usage(db());
  ASSERT_TRUE(usage.append(std::vector<UsageEvent>{event(9, "k", "u1", day0 + 50)}));
  EXPECT_EQ(stored_rollups(db()), rollups_from_events(db()));
  expect_model_rollups_match(db());
  auto totals = usage.totals({.api_key_id = "k", .since_ms = day0});
  ASSERT_TRUE(totals);
  EXPECT_EQ(totals->requests, 7);
  EXPECT_EQ(totals->cost_nanos, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreUsageMigrationTest,
                         ::testing::Values(Dialect::kSqlite, Dialect::kPostgres), test::backend_name);

INSTANTIATE_TEST_SUITE_P(Backends, StoreUsageTest, ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         test::backend_name);

}  // namespace
}  // namespace parley::store
