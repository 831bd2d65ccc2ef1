// The storage layer's one narrow SQL interface, with two implementations chosen by a URL:
// SQLite (the default, embedded) and PostgreSQL (libpq). Every domain store (users, keys, ...) is
// written once against this interface and runs unchanged on both.
//
// BLOCKING. Every call here waits on disk or network. Callers run it on a worker pool (see
// http::BlockingPool), never on an event-loop thread.
//
// Threads. A Database is safe to use from many threads at once: each call borrows a connection
// from a bounded pool and returns it before the call returns. A Connection (only ever handed to a
// transaction body) belongs to the one thread running that body and must not escape it.
//
// Errors. Nothing throws. Failures come back as parley::Error:
//   kConflict     a UNIQUE or PRIMARY KEY constraint was violated (SQLite CONSTRAINT_UNIQUE /
//                 CONSTRAINT_PRIMARYKEY, PostgreSQL SQLSTATE 23505). The message names the
//                 violated index/columns (never the offending values).
//   kNotFound     a FOREIGN KEY constraint was violated: a referenced row does not exist (SQLite
//                 CONSTRAINT_FOREIGNKEY, SQLSTATE 23503). Every foreign key in our schema cascades
//                 on delete, so this only arises when inserting a child of a missing parent.
//   kUnavailable  transient overload: no pooled connection became free within acquire_timeout,
//                 or SQLite stayed busy (locked by another writer) past busy_timeout.
//   kValidation   a bad DatabaseOptions (URL, schema name) at open time; param names the option.
//   kDatabase     everything else (syntax errors, I/O errors, lost connections, ...).
// Error messages and redacted_url() never contain a password: URLs are shown with the password
// replaced by "***" and any occurrence of the password is scrubbed from driver messages.
//
// SQL text. One SQL string serves both backends. Write parameters PostgreSQL-style as $1, $2, ...;
// the SQLite implementation rewrites them to ?1, ?2, ... outside string literals, quoted
// identifiers and comments (see to_sqlite_placeholders). Stick to the portable subset: TEXT,
// BIGINT, INTEGER 0/1 for booleans, INSERT ... ON CONFLICT ... DO UPDATE, RETURNING,
// LIMIT/OFFSET, CAST(x AS TEXT). Where a parameter's type cannot be inferred by PostgreSQL (e.g.
// `$1 IS NULL`), cast it explicitly. Integers are sent to PostgreSQL typed as int8, doubles as
// float8, text untyped (the server infers from context), bytes as bytea.
//
// Durability. SQLite runs in WAL mode. With synchronous = kFull (the default) a transaction is on
// stable storage when its commit returns, so neither kill -9 nor power loss loses an acknowledged
// write. kNormal is faster; it survives kill -9 but may lose the last transactions on power loss.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.hpp"

namespace parley::store {

enum class Dialect { kSqlite, kPostgres };

std::string_view dialect_name(Dialect dialect) noexcept;

// Binary data, kept apart from text so that PostgreSQL receives it as bytea.
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};

// One SQL value: NULL, a 64-bit integer, a double, text or bytes. Booleans are stored as 0/1.
// Constructors are implicit so that parameter lists read naturally: {id, name, 42, std::nullopt}.
class Value {
 public:
  using Storage = std::variant<std::monostate, std::int64_t, double, std::string, Bytes>;

  Value() = default;  // NULL
  Value(std::nullptr_t) {}
  Value(std::nullopt_t) {}
  Value(bool b) : v_(std::int64_t{b ? 1 : 0}) {}
  template <std::integral I>
  requires(!std::same_as<I, bool> && (std::signed_integral<I> || sizeof(I) < sizeof(std::int64_t))) Value(I i)
      : v_(static_cast<std::int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(Bytes b) : v_(std::move(b)) {}
  template <class T>
  Value(const std::optional<T>& o) {
    if (o) *this = Value(*o);
  }

  [[nodiscard]] bool is_null() const noexcept { return std::holds_alternative<std::monostate>(v_); }
  [[nodiscard]] const std::int64_t* if_int() const noexcept { return std::get_if<std::int64_t>(&v_); }
  [[nodiscard]] const double* if_double() const noexcept { return std::get_if<double>(&v_); }
  [[nodiscard]] const std::string* if_text() const noexcept { return std::get_if<std::string>(&v_); }
  [[nodiscard]] const Bytes* if_bytes() const noexcept { return std::get_if<Bytes>(&v_); }
  [[nodiscard]] const Storage& storage() const noexcept { return v_; }

  bool operator==(const Value&) const = default;

 private:
  Storage v_;
};

// One result row. Getters take a 0-based column index and convert leniently, because the schema
// (NOT NULL, CHECK) and not the reader guarantees types: an integer getter on a numeric text
// yields its value, on NULL or non-numeric text yields 0; a string getter on a number yields its
// decimal form, on NULL "". An index past the end reads as NULL.
class Row {
 public:
  Row() = default;
  explicit Row(std::vector<Value> values) : values_(std::move(values)) {}

  [[nodiscard]] std::size_t size() const noexcept { return values_.size(); }
  [[nodiscard]] const Value& at(std::size_t column) const noexcept;
  [[nodiscard]] bool is_null(std::size_t column) const noexcept { return at(column).is_null(); }

  [[nodiscard]] std::int64_t get_int(std::size_t column) const;
  [[nodiscard]] bool get_bool(std::size_t column) const { return get_int(column) != 0; }
  [[nodiscard]] double get_double(std::size_t column) const;
  [[nodiscard]] std::string get_string(std::size_t column) const;  // text, or the raw bytes
  [[nodiscard]] std::optional<std::int64_t> get_optional_int(std::size_t column) const;
  [[nodiscard]] std::optional<bool> get_optional_bool(std::size_t column) const;
  [[nodiscard]] std::optional<std::string> get_optional_string(std::size_t column) const;

 private:
  std::vector<Value> values_;
};

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  // Rows inserted, updated or deleted by an INSERT/UPDATE/DELETE; 0 for a plain SELECT.
  std::int64_t affected_rows = 0;
};

class Connection;

// What a domain store needs: run one statement, or group statements into a transaction. Both a
// Database (pooled, autocommit) and a Connection (inside a transaction) are Executors, so a store
// built on a Connection joins the caller's transaction.
class Executor {
 public:
  virtual ~Executor() = default;

  [[nodiscard]] virtual Dialect dialect() const noexcept = 0;

  // Runs one statement (no trailing second statement) with $N parameters bound from `params`
  // ($1 is params[0]). The number of parameters must match the statement.
  Result<QueryResult> query(std::string_view sql, std::span<const Value> params) {
    return do_query(sql, params);
  }
  Result<QueryResult> query(std::string_view sql, std::initializer_list<Value> params = {}) {
    return do_query(sql, std::span<const Value>(params.begin(), params.size()));
  }

  // Runs `body` atomically: everything it does through the Connection commits if it returns Ok,
  // and is rolled back if it returns an error (which is then returned). On a Database this opens
  // a transaction on a pooled connection (BEGIN IMMEDIATE on SQLite, so the write lock is taken
  // up front and the body never fails half-way for lack of it); on a Connection it nests as a
  // SAVEPOINT. Inside `body`, use only the Connection: a second pooled call would wait for the
  // lock the body holds.
  virtual Status transaction(const std::function<Status(Connection&)>& body) = 0;

 protected:
  virtual Result<QueryResult> do_query(std::string_view sql, std::span<const Value> params) = 0;
};

// A connection inside a transaction. Not thread-safe; valid only during the transaction body.
class Connection : public Executor {
 public:
  // Runs a script of several ';'-separated statements without parameters (migrations).
  virtual Status execute_script(std::string_view sql) = 0;

  // Nests as SAVEPOINT / RELEASE / ROLLBACK TO.
  Status transaction(const std::function<Status(Connection&)>& body) final;

 private:
  int savepoint_depth_ = 0;
};

class Database : public Executor {
 public:
  // Runs a trivial statement on a pooled connection: is the database reachable?
  virtual Status ping() = 0;

  // The URL this database was opened with, password replaced by "***". Safe to log.
  [[nodiscard]] virtual const std::string& redacted_url() const noexcept = 0;
};

enum class SqliteSynchronous { kFull, kNormal };

struct DatabaseOptions {
  // sqlite:///abs/path.db, sqlite://relative/path.db, sqlite:path.db, a plain path, or
  // sqlite::memory: (private in-memory database; the pool is then a single connection);
  // postgresql://user:pass@host:port/db or postgres://... (any libpq URI parameters allowed).
  std::string url;
  // Most connections held open at once. Clamped to [1, 64].
  int pool_size = 4;
  // Longest wait for a free pooled connection before kUnavailable.
  std::chrono::milliseconds acquire_timeout{5000};

  // SQLite: how long a statement waits for another connection's write lock before kUnavailable.
  std::chrono::milliseconds sqlite_busy_timeout{5000};
  SqliteSynchronous sqlite_synchronous = SqliteSynchronous::kFull;
  // SQLite: create the database file's parent directory (mode 0700) if it is missing.
  bool sqlite_create_parent_dir = true;

  // PostgreSQL: deadline for establishing a connection (libpq rounds to whole seconds, min 2 s).
  std::chrono::milliseconds pg_connect_timeout{5000};
  // PostgreSQL: server-side limit for one statement (0 = none), so a stuck query frees its worker.
  std::chrono::milliseconds pg_statement_timeout{30000};
  // PostgreSQL: if set, every connection uses this schema (search_path), created at open if
  // missing. Lower-case letters, digits and '_' only. Lets tests and tenants share a database.
  std::string pg_schema;
};

// Opens (and for SQLite creates) the database, configures it and checks one connection, so a bad
// URL, unreachable server or wrong password fails at start-up. Does not migrate (see migrate()).
Result<std::unique_ptr<Database>> open_database(const DatabaseOptions& options);

struct ParsedDatabaseUrl {
  Dialect dialect = Dialect::kSqlite;
  std::string target;  // SQLite: file path or ":memory:"; PostgreSQL: the URL itself
};

// Classifies a database URL; kValidation (param "url") when it is empty or has an unknown scheme.
Result<ParsedDatabaseUrl> parse_database_url(std::string_view url);

// `url` with the password of its user-info (user:password@) and any `password=` query parameter
// replaced by "***".
std::string redact_database_url(std::string_view url);

// Rewrites $1, $2, ... to ?1, ?2, ... for SQLite. Leaves '...' strings, "..." and `...`
// identifiers, -- and /* */ comments untouched, and a '$' that continues an identifier (a$1).
std::string to_sqlite_placeholders(std::string_view sql);

}  // namespace parley::store
