// PostgreSQL backend over libpq: a bounded, lazily filled pool of connections. Statements go out
// with PQexecParams (text parameters, bytea in binary), results come back as text and are converted
// by column type. A connection that the server closed while idle is noticed when it is next taken
// from the pool (PQconsumeInput reads the EOF without blocking) and replaced by a fresh one; one
// that breaks during a statement fails that statement and is closed when returned.
#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>

#include "store/detail.hpp"
#include "store/pool.hpp"

namespace parley::store::detail {

namespace {

// Built-in type OIDs (pg_type.dat); stable across PostgreSQL versions.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kOidOid = 26;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;
constexpr Oid kNumericOid = 1700;

struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

std::string trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return std::string(s);
}

struct PgConfig {
  std::string url;
  std::string redacted_url;
  std::vector<std::string> secrets;
  std::string connect_timeout_s;
  std::string server_options;  // libpq `options`: -c settings applied at connection start
};

bool parse_int(std::string_view text, std::int64_t& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty();
}

bool parse_double(std::string_view text, double& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty();
}

Value cell_value(const PGresult* res, int row, int col) {
  if (PQgetisnull(res, row, col) != 0) return Value();
  const char* data = PQgetvalue(res, row, col);
  const auto size = static_cast<std::size_t>(PQgetlength(res, row, col));
  const std::string_view text(data, size);
  switch (PQftype(res, col)) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kOidOid: {
      std::int64_t i = 0;
      if (parse_int(text, i)) return Value(i);
      break;
    }
    case kFloat4Oid:
    case kFloat8Oid: {
      double d = 0;
      if (parse_double(text, d)) return Value(d);
      break;
    }
    case kNumericOid: {  // SUM(bigint) is numeric: keep whole numbers integral
      std::int64_t i = 0;
      if (parse_int(text, i)) return Value(i);
      double d = 0;
      if (parse_double(text, d)) return Value(d);
      break;
    }
    case kBoolOid:
      return Value(text == "t");
    case kByteaOid: {
      std::size_t length = 0;
      unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(data), &length);
      if (bytes == nullptr) break;
      Bytes out{std::string(reinterpret_cast<const char*>(bytes), length)};
      PQfreemem(bytes);
      return Value(std::move(out));
    }
    default:
      break;
  }
  return Value(std::string(text));
}

std::string format_double(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, ec == std::errc() ? ptr : buf);
}

class PgSession final : public Connection {
 public:
  static Result<std::unique_ptr<PgSession>> connect(const PgConfig& config) {
    const char* keywords[] = {"connect_timeout", "application_name", "client_encoding",
                              "options",         "dbname",           nullptr};
    // With expand_dbname the URL in `dbname` is expanded in place, so its own settings win over
    // the defaults listed before it.
    const char* values[] = {config.connect_timeout_s.c_str(), "parley",           "UTF8",
                            config.server_options.c_str(),    config.url.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keywords, values, 1);
    if (conn == nullptr) return fail(ErrorKind::kDatabase, "postgresql: out of memory while connecting");
    auto session = std::unique_ptr<PgSession>(new PgSession(conn, &config.secrets));
    if (PQstatus(conn) != CONNECTION_OK) {
      return fail(ErrorKind::kDatabase, scrub(fmt::format("postgresql: cannot connect to {}: {}",
                                                          config.redacted_url, trim(PQerrorMessage(conn))),
                                              config.secrets));
    }
    PQsetNoticeReceiver(conn, &PgSession::on_notice, session.get());
    return session;
  }

  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;
  ~PgSession() override { PQfinish(conn_); }

  [[nodiscard]] Dialect dialect() const noexcept override { return Dialect::kPostgres; }

  Status execute_script(std::string_view sql) override {
    const std::string text(sql);
    PgResult res(PQexec(conn_, text.c_str()));
    Result<QueryResult> r = collect(res.get(), "script");
    if (!r) return std::unexpected(std::move(r.error()));
    return {};
  }

  Status begin() { return execute_script("BEGIN"); }
  Status commit() {
    PgResult res(PQexec(conn_, "COMMIT"));
    Result<QueryResult> r = collect(res.get(), "commit");
    if (!r) return std::unexpected(std::move(r.error()));
    // After an error inside the transaction the server answers COMMIT with ROLLBACK.
    if (std::string_view(PQcmdStatus(res.get())) != "COMMIT") {
      return fail(ErrorKind::kDatabase,
                  "postgresql commit: the transaction had failed and was rolled back by the server");
    }
    return {};
  }
  Status rollback() { return execute_script("ROLLBACK"); }

  // Reads whatever the server sent while the connection sat idle, without blocking (libpq's
  // sockets are non-blocking underneath). A server that ends a session sends a FATAL message and
  // then closes: one call reads the message, the next sees the EOF and marks the connection bad.
  [[nodiscard]] bool reusable() noexcept {
    for (int i = 0; i < 3; ++i) {
      if (PQstatus(conn_) != CONNECTION_OK || PQconsumeInput(conn_) == 0) return false;
    }
    // Parses what arrived; an error message received while idle reaches on_notice.
    (void)PQisBusy(conn_);
    return !server_ended_session_ && healthy();
  }
  [[nodiscard]] bool healthy() const noexcept {
    return !server_ended_session_ && PQstatus(conn_) == CONNECTION_OK &&
           PQtransactionStatus(conn_) == PQTRANS_IDLE;
  }

 protected:
  Result<QueryResult> do_query(std::string_view sql, std::span<const Value> params) override {
    const std::string text(sql);
    const std::size_t n = params.size();
    // The server tolerates typed parameters the statement never uses; SQLite does not. Require an
    // exact match on both so that a mistake shows on either backend.
    if (const int expected = highest_placeholder(sql); static_cast<std::size_t>(expected) != n) {
      return fail(ErrorKind::kDatabase,
                  fmt::format("postgresql bind: statement has {} parameters, {} given", expected, n));
    }
    std::vector<std::string> storage(n);
    std::vector<const char*> values(n, nullptr);
    std::vector<int> lengths(n, 0);
    std::vector<int> formats(n, 0);
    std::vector<Oid> types(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const Value& v = params[i];
      if (const auto* integer = v.if_int()) {
        storage[i] = std::to_string(*integer);
        values[i] = storage[i].c_str();
        types[i] = kInt8Oid;
      } else if (const auto* d = v.if_double()) {
        storage[i] = format_double(*d);
        values[i] = storage[i].c_str();
        types[i] = kFloat8Oid;
      } else if (const auto* t = v.if_text()) {
        if (t->find('\0') != std::string::npos) {
          return fail(ErrorKind::kDatabase,
                      fmt::format("postgresql bind: text parameter ${} contains a NUL byte", i + 1));
        }
        values[i] = t->c_str();  // untyped: the server infers the type from context
      } else if (const auto* b = v.if_bytes()) {
        values[i] = b->data.data();
        lengths[i] = static_cast<int>(b->data.size());
        formats[i] = 1;
        types[i] = kByteaOid;
      }
    }
    PgResult res(PQexecParams(conn_, text.c_str(), static_cast<int>(n), types.data(), values.data(),
                              lengths.data(), formats.data(), 0));
    return collect(res.get(), "query");
  }

 private:
  PgSession(PGconn* conn, const std::vector<std::string>* secrets) : conn_(conn), secrets_(secrets) {}

  // libpq hands the server's NOTICEs ("relation already exists, skipping") and any error message
  // that arrives while the connection is idle to this receiver instead of printing them. An idle
  // FATAL means the server is ending the session (shutdown, pg_terminate_backend, idle timeout),
  // possibly before the socket's EOF can be seen.
  static void on_notice(void* arg, const PGresult* res) {
    const char* severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (severity != nullptr &&
        (std::string_view(severity) == "FATAL" || std::string_view(severity) == "PANIC")) {
      static_cast<PgSession*>(arg)->server_ended_session_ = true;
    }
  }

  Result<QueryResult> collect(const PGresult* res, std::string_view context) {
    if (res == nullptr) {
      return fail(ErrorKind::kDatabase,
                  scrub(fmt::format("postgresql {}: {}", context, trim(PQerrorMessage(conn_))), *secrets_));
    }
    const ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY) {
      return std::unexpected(error_from(res, context));
    }
    QueryResult result;
    const int columns = PQnfields(res);
    const int rows = PQntuples(res);
    result.columns.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) result.columns.emplace_back(PQfname(res, c));
    result.rows.reserve(static_cast<std::size_t>(rows));
    for (int r = 0; r < rows; ++r) {
      std::vector<Value> values;
      values.reserve(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns; ++c) values.push_back(cell_value(res, r, c));
      result.rows.emplace_back(std::move(values));
    }
    const std::string_view command = PQcmdStatus(const_cast<PGresult*>(res));
    if (command.starts_with("INSERT") || command.starts_with("UPDATE") || command.starts_with("DELETE") ||
        command.starts_with("MERGE")) {
      std::int64_t affected = 0;
      if (parse_int(PQcmdTuples(const_cast<PGresult*>(res)), affected)) result.affected_rows = affected;
    }
    return result;
  }

  Error error_from(const PGresult* res, std::string_view context) const {
    const char* sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const std::string_view code = sqlstate != nullptr ? sqlstate : "";
    ErrorKind kind = ErrorKind::kDatabase;
    if (code == "23505") {
      kind = ErrorKind::kConflict;
    } else if (code == "23503") {
      kind = ErrorKind::kNotFound;
    }
    std::string message = primary != nullptr ? std::string(primary) : trim(PQresultErrorMessage(res));
    if (PQstatus(conn_) != CONNECTION_OK) message += " (connection lost; it is replaced on next use)";
    // DETAIL is left out on purpose: for constraint violations it quotes the offending values.
    return Error{kind,
                 scrub(code.empty() ? fmt::format("postgresql {}: {}", context, message)
                                    : fmt::format("postgresql {}: {} (SQLSTATE {})", context, message, code),
                       *secrets_)};
  }

  PGconn* conn_;
  bool server_ended_session_ = false;
  const std::vector<std::string>* secrets_;  // owned by the PgDatabase, which outlives its sessions
};

class PgDatabase final : public Database {
 public:
  PgDatabase(PgConfig config, std::size_t pool_size, std::chrono::milliseconds acquire_timeout)
      : config_(std::move(config)),
        pool_(pool_size, acquire_timeout,
              [this]() -> Result<std::unique_ptr<PgSession>> { return PgSession::connect(config_); }) {}

  [[nodiscard]] Dialect dialect() const noexcept override { return Dialect::kPostgres; }

  Status transaction(const std::function<Status(Connection&)>& body) override {
    return guarded("postgresql transaction", [&]() -> Status {
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

  [[nodiscard]] const std::string& redacted_url() const noexcept override { return config_.redacted_url; }

 protected:
  Result<QueryResult> do_query(std::string_view sql, std::span<const Value> params) override {
    return guarded("postgresql query", [&]() -> Result<QueryResult> {
      auto lease = pool_.acquire();
      if (!lease) return std::unexpected(std::move(lease.error()));
      return (*lease)->query(sql, params);
    });
  }

 private:
  const PgConfig config_;
  Pool<PgSession> pool_;
};

bool valid_schema_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

}  // namespace

Result<std::unique_ptr<Database>> open_postgres(const DatabaseOptions& options) {
  if (!options.pg_schema.empty() && !valid_schema_name(options.pg_schema)) {
    return fail(ErrorKind::kValidation,
                "PostgreSQL schema name must be 1-63 of [a-z0-9_], not starting with a digit", "pg_schema");
  }
  PgConfig config;
  config.url = options.url;
  config.redacted_url = redact_database_url(options.url);
  config.secrets = url_secrets(options.url);
  const std::int64_t timeout_ms = std::max<std::int64_t>(options.pg_connect_timeout.count(), 1);
  config.connect_timeout_s = std::to_string(std::max<std::int64_t>((timeout_ms + 999) / 1000, 2));
  if (options.pg_statement_timeout.count() > 0) {
    config.server_options = fmt::format("-c statement_timeout={}", options.pg_statement_timeout.count());
  }
  if (!options.pg_schema.empty()) {
    if (!config.server_options.empty()) config.server_options += ' ';
    config.server_options += fmt::format("-c search_path={}", options.pg_schema);
  }
  const auto pool_size = static_cast<std::size_t>(std::clamp(options.pool_size, 1, 64));
  auto db = std::make_unique<PgDatabase>(std::move(config), pool_size, options.acquire_timeout);
  // Connect now so that a wrong URL, password or unreachable server fails at start-up.
  if (!options.pg_schema.empty()) {
    Result<QueryResult> created =
        db->query(fmt::format("CREATE SCHEMA IF NOT EXISTS \"{}\"", options.pg_schema));
    if (!created) return std::unexpected(std::move(created.error()));
  } else if (Status st = db->ping(); !st) {
    return std::unexpected(std::move(st.error()));
  }
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace parley::store::detail
