// SQLite backend: a bounded pool of connections to one database file in WAL mode, so readers run
// beside the single writer. Connections are opened in multi-thread mode (SQLITE_OPEN_NOMUTEX): the
// pool guarantees that one thread at a time uses each.
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <memory>
#include <system_error>
#include <unordered_map>

#include "store/detail.hpp"
#include "store/pool.hpp"

namespace parley::store::detail {

namespace {

constexpr std::string_view kMemoryPath = ":memory:";

Error sqlite_error(sqlite3* db, int rc, std::string_view context) {
  const int code = db != nullptr ? sqlite3_extended_errcode(db) : rc;
  const char* message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  ErrorKind kind = ErrorKind::kDatabase;
  switch (code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      kind = ErrorKind::kConflict;
      break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      kind = ErrorKind::kNotFound;
      break;
    default:
      if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) kind = ErrorKind::kUnavailable;
      break;
  }
  return Error{kind, fmt::format("sqlite {}: {} (code {})", context, message, code)};
}

struct StatementDeleter {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

class SqliteSession final : public Connection {
 public:
  static Result<std::unique_ptr<SqliteSession>> open(const std::string& path,
                                                     const DatabaseOptions& options) {
    sqlite3* raw = nullptr;
    const int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    auto session = std::unique_ptr<SqliteSession>(new SqliteSession(raw));
    if (rc != SQLITE_OK) {
      return fail(ErrorKind::kDatabase,
                  fmt::format("sqlite: cannot open '{}': {}", path,
                              raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    }
    sqlite3_busy_timeout(raw, static_cast<int>(std::clamp<std::int64_t>(options.sqlite_busy_timeout.count(),
                                                                        0, std::numeric_limits<int>::max())));
    if (path != kMemoryPath) {
      Result<QueryResult> mode = session->query("PRAGMA journal_mode = WAL");
      if (!mode) return std::unexpected(std::move(mode.error()));
      if (mode->rows.empty() || mode->rows[0].get_string(0) != "wal") {
        return fail(ErrorKind::kDatabase,
                    fmt::format("sqlite: cannot switch '{}' to WAL journal mode", path));
      }
    }
    const char* synchronous = options.sqlite_synchronous == SqliteSynchronous::kFull ? "FULL" : "NORMAL";
    // temp_store = MEMORY: statement journals (a multi-row INSERT inside a transaction keeps one)
    // and temporary tables stay in memory instead of a temporary file written page by page.
    if (Status st = session->execute_script(fmt::format(
            "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;", synchronous));
        !st) {
      return std::unexpected(std::move(st.error()));
    }
    return session;
  }

  SqliteSession(const SqliteSession&) = delete;
  SqliteSession& operator=(const SqliteSession&) = delete;
  ~SqliteSession() override {
    cache_.clear();  // finalize the prepared statements before the connection
    sqlite3_close_v2(db_);
  }

  [[nodiscard]] Dialect dialect() const noexcept override { return Dialect::kSqlite; }

  Status execute_script(std::string_view sql) override {
    const std::string text(sql);
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
    sqlite3_free(message);  // sqlite3_errmsg carries the same text
    if (rc != SQLITE_OK) return std::unexpected(sqlite_error(db_, rc, "script"));
    return {};
  }

  Status begin() { return execute_script("BEGIN IMMEDIATE"); }
  Status commit() { return execute_script("COMMIT"); }
  Status rollback() { return execute_script("ROLLBACK"); }

  [[nodiscard]] bool reusable() const noexcept { return true; }
  // Back to the pool only outside a transaction (a failed ROLLBACK would leave one open).
  [[nodiscard]] bool healthy() const noexcept { return sqlite3_get_autocommit(db_) != 0; }

 protected:
  Result<QueryResult> do_query(std::string_view sql, std::span<const Value> params) override {
    auto prepared = statement_for(sql);
    if (!prepared) return std::unexpected(std::move(prepared.error()));
    sqlite3_stmt* stmt = *prepared;
    // Whatever happens below, the statement goes back to the cache reset and without bindings
    // (they point into `params`).
    struct Release {
      sqlite3_stmt* s;
      ~Release() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } release{stmt};
    return run(stmt, params);
  }

 private:
  // Prepared statements are kept per connection, keyed by the SQL text as the stores write it, so
  // a statement a store runs again (every INSERT of a batch, every warm lookup) is parsed once.
  static constexpr std::size_t kMaxCachedStatements = 128;

  Result<sqlite3_stmt*> statement_for(std::string_view sql) {
    if (auto it = cache_.find(sql); it != cache_.end()) return it->second.get();
    const std::string text = to_sqlite_placeholders(sql);
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v3(db_, text.data(), static_cast<int>(text.size()), SQLITE_PREPARE_PERSISTENT,
                                &raw, &tail);
    Statement stmt(raw);
    if (rc != SQLITE_OK) return std::unexpected(sqlite_error(db_, rc, "prepare"));
    if (!stmt) return fail(ErrorKind::kDatabase, "sqlite prepare: empty statement");
    if (Status st = only_whitespace_after(tail, text.data() + text.size()); !st) {
      return std::unexpected(std::move(st.error()));
    }
    if (cache_.size() >= kMaxCachedStatements) cache_.clear();
    return cache_.emplace(std::string(sql), std::move(stmt)).first->second.get();
  }

  Result<QueryResult> run(sqlite3_stmt* stmt, std::span<const Value> params) {
    int rc = SQLITE_OK;
    const int expected = sqlite3_bind_parameter_count(stmt);
    if (static_cast<std::size_t>(expected) != params.size()) {
      return fail(ErrorKind::kDatabase,
                  fmt::format("sqlite bind: statement has {} parameters, {} given", expected, params.size()));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      if (Status st = bind(stmt, static_cast<int>(i) + 1, params[i]); !st) {
        return std::unexpected(std::move(st.error()));
      }
    }

    QueryResult result;
    const int columns = sqlite3_column_count(stmt);
    result.columns.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      const char* name = sqlite3_column_name(stmt, c);
      result.columns.emplace_back(name != nullptr ? name : "");
    }
    const sqlite3_int64 changes_before = sqlite3_total_changes64(db_);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<Value> values;
      values.reserve(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns; ++c) values.push_back(column_value(stmt, c));
      result.rows.emplace_back(std::move(values));
    }
    if (rc != SQLITE_DONE) return std::unexpected(sqlite_error(db_, rc, "step"));
    // sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE, so after a SELECT or DDL
    // it would be stale; only trust it when this statement changed something.
    if (sqlite3_total_changes64(db_) != changes_before) result.affected_rows = sqlite3_changes64(db_);
    return result;
  }

  explicit SqliteSession(sqlite3* db) : db_(db) {}

  Status only_whitespace_after(const char* tail, const char* end) {
    while (tail != nullptr && tail < end) {
      sqlite3_stmt* raw = nullptr;
      const char* next = nullptr;
      const int rc = sqlite3_prepare_v3(db_, tail, static_cast<int>(end - tail), 0, &raw, &next);
      Statement extra(raw);
      if (rc != SQLITE_OK) return std::unexpected(sqlite_error(db_, rc, "prepare"));
      if (extra) {
        return fail(ErrorKind::kDatabase, "sqlite prepare: query() runs one statement; use execute_script");
      }
      if (next == tail) break;
      tail = next;
    }
    return {};
  }

  Status bind(sqlite3_stmt* stmt, int index, const Value& value) {
    int rc = SQLITE_OK;
    if (value.is_null()) {
      rc = sqlite3_bind_null(stmt, index);
    } else if (const auto* i = value.if_int()) {
      rc = sqlite3_bind_int64(stmt, index, *i);
    } else if (const auto* d = value.if_double()) {
      rc = sqlite3_bind_double(stmt, index, *d);
    } else if (const auto* t = value.if_text()) {
      // The parameters outlive the statement's execution, so SQLite need not copy them.
      rc = sqlite3_bind_text64(stmt, index, t->data(), t->size(), SQLITE_STATIC, SQLITE_UTF8);
    } else if (const auto* b = value.if_bytes()) {
      rc = sqlite3_bind_blob64(stmt, index, b->data.data(), b->data.size(), SQLITE_STATIC);
    }
    if (rc != SQLITE_OK) return std::unexpected(sqlite_error(db_, rc, "bind"));
    return {};
  }

  static Value column_value(sqlite3_stmt* stmt, int c) {
    switch (sqlite3_column_type(stmt, c)) {
      case SQLITE_INTEGER:
        return Value(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c)));
      case SQLITE_FLOAT:
        return Value(sqlite3_column_double(stmt, c));
      case SQLITE_TEXT: {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
        const int size = sqlite3_column_bytes(stmt, c);
        return Value(std::string(text != nullptr ? text : "", static_cast<std::size_t>(size)));
      }
      case SQLITE_BLOB: {
        const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, c));
        const int size = sqlite3_column_bytes(stmt, c);
        return Value(
            Bytes{data != nullptr ? std::string(data, static_cast<std::size_t>(size)) : std::string()});
      }
      default:
        return Value();
    }
  }

  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  sqlite3* db_;
  std::unordered_map<std::string, Statement, Hash, std::equal_to<>> cache_;
};

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(std::string redacted_url, std::size_t pool_size, std::chrono::milliseconds acquire_timeout,
                 Pool<SqliteSession>::Factory factory)
      : redacted_url_(std::move(redacted_url)), pool_(pool_size, acquire_timeout, std::move(factory)) {}

  [[nodiscard]] Dialect dialect() const noexcept override { return Dialect::kSqlite; }

  Status transaction(const std::function<Status(Connection&)>& body) override {
    return guarded("sqlite transaction", [&]() -> Status {
      auto lease = pool_.acquire();
      if (!lease) return std::unexpected(std::move(lease.error()));
      return run_transaction(**lease, body);
    });
  }

  Status ping() override {
    Result<QueryResult> r = query("SELECT 1");
    if (!r) return std::unexpected(std::move(r.error()));
    return {};
  }

  [[nodiscard]] const std::string& redacted_url() const noexcept override { return redacted_url_; }

 protected:
  Result<QueryResult> do_query(std::string_view sql, std::span<const Value> params) override {
    return guarded("sqlite query", [&]() -> Result<QueryResult> {
      auto lease = pool_.acquire();
      if (!lease) return std::unexpected(std::move(lease.error()));
      return (*lease)->query(sql, params);
    });
  }

 private:
  std::string redacted_url_;
  Pool<SqliteSession> pool_;
};

}  // namespace

Result<std::unique_ptr<Database>> open_sqlite(const DatabaseOptions& options, const std::string& path) {
  const bool memory = path == kMemoryPath;
  if (!memory && options.sqlite_create_parent_dir) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
      std::filesystem::create_directories(parent, ec);
      if (ec) {
        return fail(ErrorKind::kDatabase,
                    fmt::format("sqlite: cannot create directory '{}': {}", parent.string(), ec.message()));
      }
      std::filesystem::permissions(parent, std::filesystem::perms::owner_all, ec);
    }
  }
  // A private in-memory database lives in one connection, so the pool holds exactly one.
  const std::size_t pool_size = memory ? 1 : static_cast<std::size_t>(std::clamp(options.pool_size, 1, 64));
  auto db =
      std::make_unique<SqliteDatabase>(redact_database_url(options.url), pool_size, options.acquire_timeout,
                                       [path, options]() -> Result<std::unique_ptr<SqliteSession>> {
                                         return SqliteSession::open(path, options);
                                       });
  // Open one connection now so that a bad path fails at start-up, not at the first request.
  if (Status st = db->ping(); !st) return std::unexpected(std::move(st.error()));
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace parley::store::detail
