// The SQL interface on both backends: URL handling, placeholder rewriting, value round trips,
// transactions, error mapping and the bounded pool. PostgreSQL cases run when
// PARLEY_TEST_POSTGRES_URL is set (tests/harness/postgres.sh start DIR prints one) and are skipped
// otherwise.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/database.hpp"
#include "store/detail.hpp"
#include "store/scratch_database.hpp"

namespace parley::store {
namespace {

using namespace std::chrono_literals;

// ---- backend-independent ---------------------------------------------------------------------

TEST(StorePlaceholders, RewritesDollarNumbersToQuestionNumbers) {
  EXPECT_EQ(to_sqlite_placeholders("SELECT $1, $2 FROM t WHERE a = $10"),
            "SELECT ?1, ?2 FROM t WHERE a = ?10");
  EXPECT_EQ(to_sqlite_placeholders("$1"), "?1");
  EXPECT_EQ(to_sqlite_placeholders("VALUES ($1,$2)"), "VALUES (?1,?2)");
}

TEST(StorePlaceholders, LeavesStringLiteralsAlone) {
  EXPECT_EQ(to_sqlite_placeholders("SELECT '$1', 'it''s $2', $3"), "SELECT '$1', 'it''s $2', ?3");
  EXPECT_EQ(to_sqlite_placeholders("SELECT '''$1''' || $1"), "SELECT '''$1''' || ?1");
  EXPECT_EQ(to_sqlite_placeholders("SELECT '' || $1"), "SELECT '' || ?1");
  // An unterminated literal swallows the rest rather than rewriting inside it.
  EXPECT_EQ(to_sqlite_placeholders("SELECT 'open $1"), "SELECT 'open $1");
}

TEST(StorePlaceholders, LeavesIdentifiersAndCommentsAlone) {
  EXPECT_EQ(to_sqlite_placeholders("SELECT \"a$1\", x$1, `b$2`, $1 -- $2\n/* $3 */ $4"),
            "SELECT \"a$1\", x$1, `b$2`, ?1 -- $2\n/* $3 */ ?4");
  EXPECT_EQ(to_sqlite_placeholders("SELECT $ , $a, $1"), "SELECT $ , $a, ?1");
}

TEST(StorePlaceholders, FindsTheHighestPlaceholder) {
  EXPECT_EQ(detail::highest_placeholder("SELECT 1"), 0);
  EXPECT_EQ(detail::highest_placeholder("SELECT $2, $1, $10"), 10);
  EXPECT_EQ(detail::highest_placeholder("SELECT '$5', $1 -- $9"), 1);
}

TEST(StoreUrl, ParsesSqliteForms) {
  auto abs = parse_database_url("sqlite:///var/lib/parley/parley.db");
  ASSERT_TRUE(abs);
  EXPECT_EQ(abs->dialect, Dialect::kSqlite);
  EXPECT_EQ(abs->target, "/var/lib/parley/parley.db");

  auto rel = parse_database_url("sqlite://data/parley.db");
  ASSERT_TRUE(rel);
  EXPECT_EQ(rel->target, "data/parley.db");

  auto plain = parse_database_url("./data/parley.db");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->dialect, Dialect::kSqlite);
  EXPECT_EQ(plain->target, "./data/parley.db");

  auto memory = parse_database_url("sqlite::memory:");
  ASSERT_TRUE(memory);
  EXPECT_EQ(memory->target, ":memory:");
}

TEST(StoreUrl, ParsesPostgresForms) {
  for (const char* url : {"postgresql://u:p@h:5432/db", "postgres://h/db"}) {
    auto parsed = parse_database_url(url);
    ASSERT_TRUE(parsed) << url;
    EXPECT_EQ(parsed->dialect, Dialect::kPostgres);
    EXPECT_EQ(parsed->target, url);
  }
}

TEST(StoreUrl, RejectsEmptyAndUnknownSchemes) {
  auto empty = parse_database_url("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().kind, ErrorKind::kValidation);

  auto mysql = parse_database_url("mysql://root:hunter2@db/x");
  ASSERT_FALSE(mysql);
  EXPECT_EQ(mysql.error().kind, ErrorKind::kValidation);
  EXPECT_EQ(mysql.error().message.find("hunter2"), std::string::npos);

  auto no_path = parse_database_url("sqlite://");
  EXPECT_FALSE(no_path);
}

TEST(StoreUrl, RedactsPasswords) {
  EXPECT_EQ(redact_database_url("postgresql://bob:s3cret@db:5432/parley"),
            "postgresql://bob:***@db:5432/parley");
  EXPECT_EQ(redact_database_url("postgresql://bob:p%40ss:x@db/parley?sslmode=require"),
            "postgresql://bob:***@db/parley?sslmode=require");
  EXPECT_EQ(redact_database_url("postgres://db/x?user=a&password=hunter2&sslmode=require"),
            "postgres://db/x?user=a&password=***&sslmode=require");
  EXPECT_EQ(redact_database_url("postgresql://bob@db/parley"), "postgresql://bob@db/parley");
  EXPECT_EQ(redact_database_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
}

TEST(StoreRow, GettersConvertLeniently) {
  Row row({Value(std::int64_t{42}), Value(2.5), Value("17"), Value(), Value("x"), Value(Bytes{"ab"})});
  EXPECT_EQ(row.get_int(0), 42);
  EXPECT_EQ(row.get_string(0), "42");
  EXPECT_EQ(row.get_int(1), 2);
  EXPECT_DOUBLE_EQ(row.get_double(1), 2.5);
  EXPECT_EQ(row.get_int(2), 17);
  EXPECT_TRUE(row.is_null(3));
  EXPECT_EQ(row.get_optional_string(3), std::nullopt);
  EXPECT_EQ(row.get_optional_int(3), std::nullopt);
  EXPECT_EQ(row.get_string(3), "");
  EXPECT_EQ(row.get_int(4), 0);
  EXPECT_EQ(row.get_string(5), "ab");
  EXPECT_TRUE(row.is_null(99));  // past the end reads as NULL
  EXPECT_EQ(row.get_optional_bool(0), std::optional<bool>(true));
}

TEST(StoreValue, ConvertsFromCommonTypes) {
  EXPECT_TRUE(Value(std::nullopt).is_null());
  EXPECT_EQ(*Value(true).if_int(), 1);
  EXPECT_EQ(*Value(7).if_int(), 7);
  EXPECT_EQ(*Value("text").if_text(), "text");  // not bool
  EXPECT_EQ(*Value(std::optional<std::string>("o")).if_text(), "o");
  EXPECT_TRUE(Value(std::optional<std::int64_t>()).is_null());
}

TEST(StoreOpen, PostgresConnectErrorNeverShowsThePassword) {
  DatabaseOptions options;
  options.url = "postgresql://bob:Sup3r%2FSecretPw@127.0.0.1:1/parley?sslmode=disable";
  options.pg_connect_timeout = 2s;
  auto db = open_database(options);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().kind, ErrorKind::kDatabase);
  EXPECT_EQ(db.error().message.find("Sup3r"), std::string::npos) << db.error().message;
  EXPECT_NE(db.error().message.find("bob:***@127.0.0.1"), std::string::npos) << db.error().message;
}

TEST(StoreOpen, RejectsBadSchemaName) {
  DatabaseOptions options;
  options.url = "postgresql://127.0.0.1:1/parley";
  options.pg_schema = "bad; DROP";
  auto db = open_database(options);
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().kind, ErrorKind::kValidation);
}

TEST(StoreOpen, SqliteInMemoryWorks) {
  DatabaseOptions options;
  options.url = "sqlite::memory:";
  auto db = open_database(options);
  ASSERT_TRUE(db) << db.error().message;
  ASSERT_TRUE((*db)->query("CREATE TABLE t (v TEXT)"));
  ASSERT_TRUE((*db)->query("INSERT INTO t VALUES ($1)", {"kept"}));
  auto r = (*db)->query("SELECT v FROM t");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0].get_string(0), "kept");
}

TEST(StoreOpen, SqliteCreatesParentDirectoryAndReportsBadPaths) {
  auto scratch = ScratchDatabase::open(Dialect::kSqlite);
  ASSERT_TRUE(scratch);
  DatabaseOptions options;
  const std::string dir = scratch.value()->options().url.substr(9);  // strip "sqlite://"
  options.url = "sqlite://" + dir + ".d/nested/deeper/x.db";
  auto db = open_database(options);
  ASSERT_TRUE(db) << db.error().message;
  db->reset();
  std::filesystem::remove_all(dir + ".d");

  options.url = "/proc/definitely/not/writable/x.db";
  auto bad = open_database(options);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ErrorKind::kDatabase);
}

// ---- on each backend -------------------------------------------------------------------------

class StoreDatabaseTest : public ::testing::TestWithParam<Dialect> {
 protected:
  void SetUp() override { open(DatabaseOptions{}); }

  void open(DatabaseOptions options) {
    scratch_.reset();
    url_.clear();
    if (GetParam() == Dialect::kPostgres) {
      const char* env = std::getenv("PARLEY_TEST_POSTGRES_URL");
      if (env == nullptr || *env == '\0') {
        GTEST_SKIP() << "PostgreSQL backend skipped: PARLEY_TEST_POSTGRES_URL is not set";
      }
      url_ = env;
    }
    auto scratch = ScratchDatabase::open(GetParam(), url_, std::move(options));
    ASSERT_TRUE(scratch) << scratch.error().message;
    scratch_ = std::move(*scratch);
  }

  Database& db() { return scratch_->db(); }
  bool postgres() const { return GetParam() == Dialect::kPostgres; }

  std::int64_t count(std::string_view table) {
    auto r = db().query("SELECT COUNT(*) FROM " + std::string(table));
    EXPECT_TRUE(r) << r.error().message;
    return r && !r->rows.empty() ? r->rows[0].get_int(0) : -1;
  }

  std::string url_;
  std::unique_ptr<ScratchDatabase> scratch_;
};

TEST_P(StoreDatabaseTest, ReportsItsDialectAndPings) {
  EXPECT_EQ(db().dialect(), GetParam());
  EXPECT_TRUE(db().ping());
}

TEST_P(StoreDatabaseTest, ParametersKeepTheirTypes) {
  auto r = db().query("SELECT $1, $2, $3, $4",
                      {std::int64_t{-7}, 0.25, "text", std::numeric_limits<std::int64_t>::max()});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->rows.size(), 1u);
  const Row& row = r->rows[0];
  ASSERT_NE(row.at(0).if_int(), nullptr);
  EXPECT_EQ(*row.at(0).if_int(), -7);
  ASSERT_NE(row.at(1).if_double(), nullptr);
  EXPECT_EQ(*row.at(1).if_double(), 0.25);
  ASSERT_NE(row.at(2).if_text(), nullptr);
  EXPECT_EQ(*row.at(2).if_text(), "text");
  EXPECT_EQ(row.get_int(3), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(r->columns.size(), 4u);
}

TEST_P(StoreDatabaseTest, ValuesAndNullsRoundTripThroughATable) {
  ASSERT_TRUE(db().query(
      "CREATE TABLE t (id TEXT PRIMARY KEY, i BIGINT, d DOUBLE PRECISION, s TEXT, flag INTEGER NOT NULL)"));
  const std::string tricky = "it's a \"quote\", $1, ünïcödé ✓, \\ backslash";
  ASSERT_TRUE(db().query("INSERT INTO t (id, i, d, s, flag) VALUES ($1, $2, $3, $4, $5)",
                         {"a", std::numeric_limits<std::int64_t>::min(), -1.0 / 3.0, tricky, true}));
  ASSERT_TRUE(db().query("INSERT INTO t (id, i, d, s, flag) VALUES ($1, $2, $3, $4, $5)",
                         {"b", std::nullopt, std::optional<double>(), std::optional<std::string>(), false}));
  ASSERT_TRUE(
      db().query("INSERT INTO t (id, i, d, s, flag) VALUES ($1, $2, $3, $4, $5)", {"c", 0, 0.0, "", 0}));

  auto r = db().query("SELECT id, i, d, s, flag FROM t ORDER BY id");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->rows.size(), 3u);
  EXPECT_EQ(r->columns, (std::vector<std::string>{"id", "i", "d", "s", "flag"}));
  EXPECT_EQ(r->rows[0].get_int(1), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(r->rows[0].get_double(2), -1.0 / 3.0);  // exact: shortest round-trip formatting
  EXPECT_EQ(r->rows[0].get_string(3), tricky);
  EXPECT_TRUE(r->rows[0].get_bool(4));
  for (std::size_t c = 1; c <= 3; ++c) EXPECT_TRUE(r->rows[1].is_null(c)) << c;
  EXPECT_FALSE(r->rows[1].get_bool(4));
  EXPECT_EQ(r->rows[2].get_optional_string(3), std::optional<std::string>(""));  // empty is not NULL
  EXPECT_FALSE(r->rows[2].is_null(1));
}

TEST_P(StoreDatabaseTest, BytesRoundTrip) {
  ASSERT_TRUE(db().query(postgres() ? "CREATE TABLE blobs (b BYTEA)" : "CREATE TABLE blobs (b BLOB)"));
  const std::string raw("\x00\x01\xff\x7f zero\x00end", 13);
  ASSERT_TRUE(db().query("INSERT INTO blobs (b) VALUES ($1)", {Bytes{raw}}));
  auto r = db().query("SELECT b FROM blobs");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->rows.size(), 1u);
  ASSERT_NE(r->rows[0].at(0).if_bytes(), nullptr);
  EXPECT_EQ(r->rows[0].at(0).if_bytes()->data, raw);
}

TEST_P(StoreDatabaseTest, CountsAffectedRows) {
  ASSERT_TRUE(db().query("CREATE TABLE t (v INTEGER)"));
  auto inserted = db().query("INSERT INTO t (v) VALUES (1), (2), (3)");
  ASSERT_TRUE(inserted);
  EXPECT_EQ(inserted->affected_rows, 3);
  auto updated = db().query("UPDATE t SET v = v + 10 WHERE v >= $1", {2});
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->affected_rows, 2);
  auto selected = db().query("SELECT v FROM t");
  ASSERT_TRUE(selected);
  EXPECT_EQ(selected->affected_rows, 0);
  EXPECT_EQ(selected->rows.size(), 3u);
  auto deleted = db().query("DELETE FROM t WHERE v = $1", {99});
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->affected_rows, 0);
}

TEST_P(StoreDatabaseTest, TransactionCommitsWhenBodySucceeds) {
  ASSERT_TRUE(db().query("CREATE TABLE t (v INTEGER)"));
  Status st = db().transaction([](Connection& c) -> Status {
    for (int i = 0; i < 3; ++i) {
      if (auto r = c.query("INSERT INTO t (v) VALUES ($1)", {i}); !r) return std::unexpected(r.error());
    }
    return {};
  });
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(count("t"), 3);
}

TEST_P(StoreDatabaseTest, TransactionRollsBackWhenBodyFails) {
  ASSERT_TRUE(db().query("CREATE TABLE t (v INTEGER PRIMARY KEY)"));
  Status st = db().transaction([](Connection& c) -> Status {
    if (auto r = c.query("INSERT INTO t (v) VALUES (1)"); !r) return std::unexpected(r.error());
    auto dup = c.query("INSERT INTO t (v) VALUES (1)");
    if (!dup) return std::unexpected(dup.error());
    return {};
  });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(count("t"), 0);

  Status explicit_failure = db().transaction([](Connection& c) -> Status {
    if (auto r = c.query("INSERT INTO t (v) VALUES (2)"); !r) return std::unexpected(r.error());
    return fail(ErrorKind::kValidation, "changed my mind", "v");
  });
  ASSERT_FALSE(explicit_failure);
  EXPECT_EQ(explicit_failure.error().kind, ErrorKind::kValidation);
  EXPECT_EQ(count("t"), 0);
}

TEST_P(StoreDatabaseTest, TransactionRollsBackWhenBodyThrows) {
  ASSERT_TRUE(db().query("CREATE TABLE t (v INTEGER)"));
  Status st = db().transaction([](Connection& c) -> Status {
    (void)c.query("INSERT INTO t (v) VALUES (1)");
    throw std::runtime_error("boom");
  });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kDatabase);
  EXPECT_NE(st.error().message.find("boom"), std::string::npos);
  EXPECT_EQ(count("t"), 0);
  EXPECT_TRUE(db().ping());  // the connection went back to the pool in a usable state
}

TEST_P(StoreDatabaseTest, NestedTransactionRollsBackOnlyItsOwnWork) {
  ASSERT_TRUE(db().query("CREATE TABLE t (v INTEGER PRIMARY KEY)"));
  Status st = db().transaction([](Connection& c) -> Status {
    if (auto r = c.query("INSERT INTO t (v) VALUES (1)"); !r) return std::unexpected(r.error());
    Status inner = c.transaction([](Connection& c2) -> Status {
      if (auto r = c2.query("INSERT INTO t (v) VALUES (2)"); !r) return std::unexpected(r.error());
      auto dup = c2.query("INSERT INTO t (v) VALUES (1)");  // fails: aborts the savepoint only
      if (!dup) return std::unexpected(dup.error());
      return {};
    });
    if (inner || inner.error().kind != ErrorKind::kConflict)
      return fail(ErrorKind::kInternal, "inner should fail");
    if (auto r = c.query("INSERT INTO t (v) VALUES (3)"); !r) return std::unexpected(r.error());
    return {};
  });
  ASSERT_TRUE(st) << st.error().message;
  auto r = db().query("SELECT v FROM t ORDER BY v");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->rows.size(), 2u);
  EXPECT_EQ(r->rows[0].get_int(0), 1);
  EXPECT_EQ(r->rows[1].get_int(0), 3);
}

TEST_P(StoreDatabaseTest, UniqueViolationIsConflictWithoutTheValue) {
  ASSERT_TRUE(db().query("CREATE TABLE t (id TEXT PRIMARY KEY, email TEXT NOT NULL)"));
  ASSERT_TRUE(db().query("CREATE UNIQUE INDEX t_email_key ON t (email)"));
  ASSERT_TRUE(db().query("INSERT INTO t VALUES ($1, $2)", {"1", "private@example.com"}));
  auto dup = db().query("INSERT INTO t VALUES ($1, $2)", {"2", "private@example.com"});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind, ErrorKind::kConflict);
  EXPECT_NE(dup.error().message.find("email"), std::string::npos) << dup.error().message;
  EXPECT_EQ(dup.error().message.find("private@"), std::string::npos) << dup.error().message;
  auto dup_key = db().query("INSERT INTO t VALUES ($1, $2)", {"1", "other@example.com"});
  ASSERT_FALSE(dup_key);
  EXPECT_EQ(dup_key.error().kind, ErrorKind::kConflict);
}

TEST_P(StoreDatabaseTest, ForeignKeyViolationIsNotFound) {
  ASSERT_TRUE(db().query("CREATE TABLE parent (id TEXT PRIMARY KEY)"));
  ASSERT_TRUE(
      db().query("CREATE TABLE child (id TEXT PRIMARY KEY, parent_id TEXT NOT NULL REFERENCES parent (id) "
                 "ON DELETE CASCADE)"));
  auto orphan = db().query("INSERT INTO child VALUES ($1, $2)", {"c", "missing"});
  ASSERT_FALSE(orphan);
  EXPECT_EQ(orphan.error().kind, ErrorKind::kNotFound);

  ASSERT_TRUE(db().query("INSERT INTO parent VALUES ('p')"));
  ASSERT_TRUE(db().query("INSERT INTO child VALUES ('c', 'p')"));
  ASSERT_TRUE(db().query("DELETE FROM parent WHERE id = 'p'"));
  EXPECT_EQ(count("child"), 0);  // foreign keys are enforced and cascade
}

TEST_P(StoreDatabaseTest, MismatchedParameterCountIsAnError) {
  auto too_few = db().query("SELECT $1, $2", {1});
  ASSERT_FALSE(too_few);
  EXPECT_EQ(too_few.error().kind, ErrorKind::kDatabase);
  auto too_many = db().query("SELECT $1", {1, 2});
  ASSERT_FALSE(too_many);
  EXPECT_EQ(too_many.error().kind, ErrorKind::kDatabase);
}

TEST_P(StoreDatabaseTest, QueryRunsOneStatementOnly) {
  ASSERT_TRUE(db().query("CREATE TABLE t (v INTEGER)"));
  auto two = db().query("INSERT INTO t VALUES ($1); INSERT INTO t VALUES ($1)", {1});
  ASSERT_FALSE(two);
  EXPECT_EQ(count("t"), 0);
  EXPECT_TRUE(db().query("SELECT 1;  "));  // a trailing semicolon is not a second statement
}

TEST_P(StoreDatabaseTest, SyntaxErrorIsDatabaseError) {
  auto r = db().query("SELEKT nonsense");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kDatabase);
  EXPECT_FALSE(r.error().message.empty());
}

TEST_P(StoreDatabaseTest, PoolWaitIsBounded) {
  DatabaseOptions options;
  options.pool_size = 1;
  options.acquire_timeout = 200ms;
  open(options);
  if (IsSkipped()) return;

  std::promise<void> holding;
  std::promise<void> release;
  std::shared_future<void> release_future = release.get_future().share();
  std::thread holder([&] {
    (void)db().transaction([&](Connection&) -> Status {
      holding.set_value();
      release_future.wait();
      return {};
    });
  });
  holding.get_future().wait();
  auto blocked = db().query("SELECT 1");
  release.set_value();
  holder.join();

  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(blocked.error().message.find("pool size 1"), std::string::npos) << blocked.error().message;
  EXPECT_TRUE(db().query("SELECT 1"));  // free again once the holder is done
}

TEST_P(StoreDatabaseTest, ConcurrentWritersAllCommit) {
  ASSERT_TRUE(db().query("CREATE TABLE t (worker INTEGER, n INTEGER)"));
  constexpr int kWorkers = 4;
  constexpr int kEach = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      for (int n = 0; n < kEach; ++n) {
        Status st = db().transaction([&](Connection& c) -> Status {
          auto r = c.query("INSERT INTO t (worker, n) VALUES ($1, $2)", {w, n});
          if (!r) return std::unexpected(r.error());
          return {};
        });
        if (!st) ++failures;
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(count("t"), kWorkers * kEach);
}

TEST_P(StoreDatabaseTest, SqliteRunsWalWithForeignKeysAndFullSync) {
  if (postgres()) GTEST_SKIP() << "SQLite pragmas";
  Status st = db().transaction([](Connection& c) -> Status {
    auto mode = c.query("PRAGMA journal_mode");
    auto fk = c.query("PRAGMA foreign_keys");
    auto sync = c.query("PRAGMA synchronous");
    if (!mode || !fk || !sync) return fail(ErrorKind::kInternal, "pragma failed");
    EXPECT_EQ(mode->rows.at(0).get_string(0), "wal");
    EXPECT_EQ(fk->rows.at(0).get_int(0), 1);
    EXPECT_EQ(sync->rows.at(0).get_int(0), 2);  // FULL
    return {};
  });
  ASSERT_TRUE(st) << st.error().message;
}

TEST_P(StoreDatabaseTest, PostgresReconnectsAfterTheServerDropsAConnection) {
  if (!postgres()) GTEST_SKIP() << "PostgreSQL connection loss";
  DatabaseOptions options;
  options.pool_size = 1;
  open(options);
  if (IsSkipped()) return;

  auto pid = db().query("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid) << pid.error().message;
  const std::int64_t old_pid = pid->rows.at(0).get_int(0);

  DatabaseOptions admin_options;
  admin_options.url = url_;
  auto admin = open_database(admin_options);
  ASSERT_TRUE(admin) << admin.error().message;
  ASSERT_TRUE((*admin)->query("SELECT pg_terminate_backend(CAST($1 AS INTEGER))", {old_pid}));
  for (int i = 0; i < 100; ++i) {  // wait until the backend has really gone
    auto alive =
        (*admin)->query("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = CAST($1 AS INTEGER)", {old_pid});
    ASSERT_TRUE(alive);
    if (alive->rows.at(0).get_int(0) == 0) break;
    std::this_thread::sleep_for(20ms);
  }

  auto again = db().query("SELECT pg_backend_pid()");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_NE(again->rows.at(0).get_int(0), old_pid);

  // A connection that dies during a statement fails that statement only.
  auto suicide = db().query("SELECT pg_terminate_backend(pg_backend_pid())");
  ASSERT_FALSE(suicide);
  EXPECT_EQ(suicide.error().kind, ErrorKind::kDatabase);
  auto after = db().query("SELECT 1");
  ASSERT_TRUE(after) << after.error().message;
}

TEST_P(StoreDatabaseTest, PostgresSchemaOptionIsolatesTables) {
  if (!postgres()) GTEST_SKIP() << "PostgreSQL schemas";
  ASSERT_TRUE(db().query("CREATE TABLE isolated (v INTEGER)"));
  auto schema = db().query("SELECT current_schema()");
  ASSERT_TRUE(schema);
  EXPECT_EQ(schema->rows.at(0).get_string(0), scratch_->options().pg_schema);
  DatabaseOptions plain;
  plain.url = url_;
  auto other = open_database(plain);
  ASSERT_TRUE(other);
  auto r = (*other)->query("SELECT COUNT(*) FROM isolated");
  EXPECT_FALSE(r);  // not visible outside the schema
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreDatabaseTest, ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         [](const ::testing::TestParamInfo<Dialect>& param_info) {
                           return std::string(dialect_name(param_info.param));
                         });

}  // namespace
}  // namespace parley::store
