// Schema migrations on both backends: ordering, idempotence, refusal of a newer schema, rollback of
// a failing migration, per-backend overrides and concurrent migrators. PostgreSQL cases run when
// PARLEY_TEST_POSTGRES_URL is set and are skipped otherwise.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "store/database.hpp"
#include "store/migrations.hpp"
#include "store/scratch_database.hpp"

namespace parley::store {
namespace {

// ---- backend-independent ---------------------------------------------------------------------

TEST(StoreMigrationPlan, EmbedsTheIdentityMigration) {
  const std::vector<MigrationInfo> known = known_migrations();
  ASSERT_FALSE(known.empty());
  EXPECT_EQ(known.front().version, 1);
  EXPECT_EQ(known.front().name, "identity");
  EXPECT_EQ(latest_known_version(), known.back().version);
  for (std::size_t i = 1; i < known.size(); ++i) EXPECT_LT(known[i - 1].version, known[i].version);
}

TEST(StoreMigrationPlan, OrdersByVersionAndPicksTheBackendOverride) {
  const MigrationSource sources[] = {
      {"0002_second.sql", "common 2"},
      {"0001_first.sql", "common 1"},
      {"0002_second.postgres.sql", "postgres 2"},
      {"0003_third.sqlite.sql", "sqlite 3"},
      {"0003_third.postgres.sql", "postgres 3"},
  };
  auto sqlite = detail::plan_migrations(sources, Dialect::kSqlite);
  ASSERT_TRUE(sqlite) << sqlite.error().message;
  ASSERT_EQ(sqlite->size(), 3u);
  EXPECT_EQ((*sqlite)[0].version, 1);
  EXPECT_EQ((*sqlite)[0].sql, "common 1");
  EXPECT_EQ((*sqlite)[1].sql, "common 2");
  EXPECT_EQ((*sqlite)[1].name, "second");
  EXPECT_EQ((*sqlite)[2].sql, "sqlite 3");

  auto postgres = detail::plan_migrations(sources, Dialect::kPostgres);
  ASSERT_TRUE(postgres);
  EXPECT_EQ((*postgres)[1].sql, "postgres 2");
  EXPECT_EQ((*postgres)[2].sql, "postgres 3");
}

TEST(StoreMigrationPlan, RejectsMalformedOrInconsistentFiles) {
  for (const char* bad : {"1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_x.txt", "0000_zero.sql",
                          "0001_x.mysql.sql", "abcd_x.sql"}) {
    const MigrationSource sources[] = {{bad, "x"}};
    auto plan = detail::plan_migrations(sources, Dialect::kSqlite);
    EXPECT_FALSE(plan) << bad;
  }
  const MigrationSource renamed[] = {{"0001_a.sql", "x"}, {"0001_b.sql", "y"}};
  EXPECT_FALSE(detail::plan_migrations(renamed, Dialect::kSqlite));
  const MigrationSource duplicated[] = {{"0001_a.sqlite.sql", "x"}, {"0001_a.sqlite.sql", "y"}};
  EXPECT_FALSE(detail::plan_migrations(duplicated, Dialect::kSqlite));
  const MigrationSource only_postgres[] = {{"0001_a.postgres.sql", "x"}};
  auto missing = detail::plan_migrations(only_postgres, Dialect::kSqlite);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("no SQL for sqlite"), std::string::npos);
}

// ---- on each backend -------------------------------------------------------------------------

class StoreMigrationsTest : public ::testing::TestWithParam<Dialect> {
 protected:
  void SetUp() override {
    if (GetParam() == Dialect::kPostgres) {
      const char* env = std::getenv("PARLEY_TEST_POSTGRES_URL");
      if (env == nullptr || *env == '\0') {
        GTEST_SKIP() << "PostgreSQL backend skipped: PARLEY_TEST_POSTGRES_URL is not set";
      }
      url_ = env;
    }
    auto scratch = ScratchDatabase::open(GetParam(), url_);
    ASSERT_TRUE(scratch) << scratch.error().message;
    scratch_ = std::move(*scratch);
  }

  Database& db() { return scratch_->db(); }

  std::int64_t count(std::string_view table) {
    auto r = db().query("SELECT COUNT(*) FROM " + std::string(table));
    EXPECT_TRUE(r) << r.error().message;
    return r && !r->rows.empty() ? r->rows[0].get_int(0) : -1;
  }

  std::string url_;
  std::unique_ptr<ScratchDatabase> scratch_;
};

TEST_P(StoreMigrationsTest, EmptyDatabaseIsVersionZero) {
  auto version = current_schema_version(db());
  ASSERT_TRUE(version) << version.error().message;
  EXPECT_EQ(*version, 0);
}

TEST_P(StoreMigrationsTest, MigrateAppliesEverythingThenIsIdempotent) {
  auto first = migrate(db());
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->from_version, 0);
  EXPECT_EQ(first->to_version, latest_known_version());
  ASSERT_EQ(first->applied.size(), known_migrations().size());
  EXPECT_EQ(first->applied.front().name, "identity");

  auto version = current_schema_version(db());
  ASSERT_TRUE(version);
  EXPECT_EQ(*version, latest_known_version());
  EXPECT_EQ(count("schema_migrations"), static_cast<std::int64_t>(known_migrations().size()));
  for (const char* table : {"users", "user_preferences", "api_keys", "refresh_tokens", "audit_events"}) {
    EXPECT_EQ(count(table), 0) << table;
  }

  auto second = migrate(db());
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(second->from_version, latest_known_version());
  EXPECT_EQ(second->to_version, latest_known_version());
  EXPECT_EQ(count("schema_migrations"), static_cast<std::int64_t>(known_migrations().size()));

  auto names = db().query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version");
  ASSERT_TRUE(names);
  EXPECT_EQ(names->rows.at(0).get_int(0), 1);
  EXPECT_EQ(names->rows.at(0).get_string(1), "identity");
  EXPECT_GT(names->rows.at(0).get_int(2), 1'600'000'000'000);  // unix milliseconds
}

TEST_P(StoreMigrationsTest, RefusesADatabaseFromANewerParley) {
  ASSERT_TRUE(migrate(db()));
  const int newer = latest_known_version() + 1;
  ASSERT_TRUE(db().query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)",
                         {newer}));

  auto refused = migrate(db());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kDatabase);
  EXPECT_EQ(refused.error().message, "database schema version " + std::to_string(newer) +
                                         " is newer than this parley (" +
                                         std::to_string(latest_known_version()) + "); upgrade parley");
  auto version = current_schema_version(db());
  ASSERT_TRUE(version);
  EXPECT_EQ(*version, newer);
}

TEST_P(StoreMigrationsTest, AFailingMigrationIsRolledBackAndEarlierOnesStay) {
  const MigrationSource sources[] = {
      {"0001_good.sql", "CREATE TABLE good (v INTEGER);\nINSERT INTO good (v) VALUES (1);"},
      {"0002_bad.sql", "CREATE TABLE half (v INTEGER);\nINSERT INTO no_such_table (v) VALUES (1);"},
  };
  auto report = migrate(db(), sources);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().kind, ErrorKind::kDatabase);
  EXPECT_NE(report.error().message.find("0002_bad"), std::string::npos) << report.error().message;

  auto version = current_schema_version(db());
  ASSERT_TRUE(version);
  EXPECT_EQ(*version, 1);
  EXPECT_EQ(count("good"), 1);
  EXPECT_FALSE(db().query("SELECT COUNT(*) FROM half"));  // its CREATE TABLE was rolled back

  // Fixed in a later build: the remaining migration applies.
  const MigrationSource fixed[] = {
      {"0001_good.sql", sources[0].sql},
      {"0002_bad.sql", "CREATE TABLE half (v INTEGER);"},
  };
  auto retried = migrate(db(), fixed);
  ASSERT_TRUE(retried) << retried.error().message;
  ASSERT_EQ(retried->applied.size(), 1u);
  EXPECT_EQ(retried->applied[0].version, 2);
  EXPECT_EQ(retried->from_version, 1);
  EXPECT_EQ(count("good"), 1);  // 0001 did not run again
}

TEST_P(StoreMigrationsTest, BackendOverrideReplacesTheCommonFile) {
  const MigrationSource sources[] = {
      {"0001_which.sql", "CREATE TABLE which (v TEXT); INSERT INTO which VALUES ('common');"},
      {"0001_which.sqlite.sql", "CREATE TABLE which (v TEXT); INSERT INTO which VALUES ('sqlite');"},
      {"0001_which.postgres.sql", "CREATE TABLE which (v TEXT); INSERT INTO which VALUES ('postgresql');"},
  };
  ASSERT_TRUE(migrate(db(), sources));
  auto r = db().query("SELECT v FROM which");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0].get_string(0), dialect_name(GetParam()));
}

TEST_P(StoreMigrationsTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  // A second Database on the same data stands in for a second process.
  auto other = open_database(scratch_->options());
  ASSERT_TRUE(other) << other.error().message;
  const MigrationSource sources[] = {
      {"0001_counter.sql", "CREATE TABLE counter (n INTEGER);"},
      {"0002_bump.sql", "INSERT INTO counter (n) VALUES (1);"},
      {"0003_bump_again.sql", "INSERT INTO counter (n) VALUES (1);"},
  };
  Result<MigrationReport> a = fail(ErrorKind::kInternal, "not run");
  Result<MigrationReport> b = fail(ErrorKind::kInternal, "not run");
  std::thread ta([&] { a = migrate(db(), sources); });
  std::thread tb([&] { b = migrate(**other, sources); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(a->applied.size() + b->applied.size(), 3u);
  EXPECT_EQ(count("counter"), 2);
  EXPECT_EQ(count("schema_migrations"), 3);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreMigrationsTest,
                         ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         [](const ::testing::TestParamInfo<Dialect>& param_info) {
                           return std::string(dialect_name(param_info.param));
                         });

}  // namespace
}  // namespace parley::store
