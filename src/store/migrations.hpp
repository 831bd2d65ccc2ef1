// Versioned schema migrations, embedded in the binary at build time.
//
// Files live in src/store/migrations/ as NNNN_name.sql: portable SQL for both backends (TEXT ids,
// BIGINT unix-millisecond timestamps, INTEGER 0/1 booleans, no AUTOINCREMENT/SERIAL; the one
// exception is usage_events, an append-only log whose ids the database assigns, see 0004). Where one
// backend truly needs different text, NNNN_name.postgres.sql or NNNN_name.sqlite.sql replaces the
// common file for that backend. A file is never edited once released; changes are new versions.
// On SQLite a migration runs inside a transaction, where PRAGMA foreign_keys cannot change.
//
// migrate() applies each pending migration in its own transaction and records it in
// schema_migrations(version, name, applied_at). It is idempotent, and safe when several processes
// start at once: each migration transaction first takes a lock (BEGIN IMMEDIATE on SQLite,
// pg_advisory_xact_lock keyed by the current schema on PostgreSQL) and re-checks what is applied,
// so nothing is applied twice. A database migrated by a newer parley is refused, never touched.
//
// BLOCKING, like everything in the store: run it at start-up or on a worker pool.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

// One migration file: its name (e.g. "0001_identity.sql") and its text.
struct MigrationSource {
  std::string_view file_name;
  std::string_view sql;
};

struct MigrationInfo {
  int version = 0;
  std::string name;  // "identity" for 0001_identity.sql
};

struct MigrationReport {
  int from_version = 0;                // schema version before migrate()
  int to_version = 0;                  // schema version after
  std::vector<MigrationInfo> applied;  // what this call applied, in order (empty when up to date)
};

// Applies the embedded migrations. Errors: kDatabase when a migration fails (that migration is
// rolled back; earlier ones stay applied) or when the database's schema is newer than this build
// ("database schema version N is newer than this parley (M); upgrade parley").
Result<MigrationReport> migrate(Database& db);

// Same, with an explicit set of migration files (tests, tools). Malformed names, duplicate
// versions or a version without SQL for this backend → kInternal.
Result<MigrationReport> migrate(Database& db, std::span<const MigrationSource> sources);

// The highest applied version; 0 for a database never migrated.
Result<int> current_schema_version(Executor& db);

// The newest version embedded in this build.
int latest_known_version() noexcept;

// The embedded migrations, in version order.
std::vector<MigrationInfo> known_migrations();

namespace detail {

// Generated at build time from src/store/migrations/*.sql.
std::span<const MigrationSource> embedded_migration_sources() noexcept;

struct PlannedMigration {
  int version = 0;
  std::string name;
  std::string_view sql;  // the text for the requested dialect
};

// Orders and validates migration files and picks the text for `dialect` (override first).
Result<std::vector<PlannedMigration>> plan_migrations(std::span<const MigrationSource> sources,
                                                      Dialect dialect);

}  // namespace detail

}  // namespace parley::store
