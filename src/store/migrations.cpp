#include "store/migrations.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include "store/detail.hpp"

namespace parley::store {

namespace detail {

namespace {

struct ParsedName {
  int version = 0;
  std::string name;
  std::optional<Dialect> only_for;  // set for .postgres.sql / .sqlite.sql overrides
};

std::optional<ParsedName> parse_file_name(std::string_view file) {
  if (!file.ends_with(".sql")) return std::nullopt;
  file.remove_suffix(4);
  ParsedName parsed;
  if (file.ends_with(".postgres")) {
    parsed.only_for = Dialect::kPostgres;
    file.remove_suffix(9);
  } else if (file.ends_with(".sqlite")) {
    parsed.only_for = Dialect::kSqlite;
    file.remove_suffix(7);
  }
  if (file.size() < 6 || file[4] != '_') return std::nullopt;
  for (int i = 0; i < 4; ++i) {
    if (file[i] < '0' || file[i] > '9') return std::nullopt;
    parsed.version = parsed.version * 10 + (file[i] - '0');
  }
  parsed.name = std::string(file.substr(5));
  const bool valid_name = std::all_of(parsed.name.begin(), parsed.name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (!valid_name || parsed.version == 0) return std::nullopt;
  return parsed;
}

}  // namespace

Result<std::vector<PlannedMigration>> plan_migrations(std::span<const MigrationSource> sources,
                                                      Dialect dialect) {
  struct Texts {
    std::string name;
    std::optional<std::string_view> common;
    std::optional<std::string_view> override_text;
  };
  std::map<int, Texts> by_version;
  for (const MigrationSource& source : sources) {
    std::optional<ParsedName> parsed = parse_file_name(source.file_name);
    if (!parsed) {
      return fail(
          ErrorKind::kInternal,
          fmt::format("migration file '{}' is not named NNNN_name[.postgres|.sqlite].sql", source.file_name));
    }
    Texts& texts = by_version[parsed->version];
    if (!texts.name.empty() && texts.name != parsed->name) {
      return fail(ErrorKind::kInternal, fmt::format("migration version {:04} has two names: '{}' and '{}'",
                                                    parsed->version, texts.name, parsed->name));
    }
    texts.name = parsed->name;
    std::optional<std::string_view>& slot = !parsed->only_for ? texts.common : texts.override_text;
    if (parsed->only_for && *parsed->only_for != dialect) continue;
    if (slot) {
      return fail(ErrorKind::kInternal, fmt::format("migration file '{}' is duplicated", source.file_name));
    }
    slot = source.sql;
  }
  std::vector<PlannedMigration> plan;
  for (const auto& [version, texts] : by_version) {
    std::optional<std::string_view> sql = texts.override_text ? texts.override_text : texts.common;
    if (!sql) {
      return fail(ErrorKind::kInternal, fmt::format("migration {:04}_{} has no SQL for {}", version,
                                                    texts.name, dialect_name(dialect)));
    }
    plan.push_back(PlannedMigration{version, texts.name, *sql});
  }
  return plan;
}

}  // namespace detail

namespace {

constexpr std::string_view kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " applied_at BIGINT NOT NULL)";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Serialises migrators. SQLite's BEGIN IMMEDIATE already holds the database's only write lock.
Status lock_for_migration(Connection& c) {
  if (c.dialect() == Dialect::kPostgres) {
    Result<QueryResult> locked = c.query(
        "SELECT pg_advisory_xact_lock(hashtext('parley.migrate.' || COALESCE(current_schema(), '')))");
    if (!locked) return std::unexpected(std::move(locked.error()));
  }
  return {};
}

Result<std::set<int>> applied_versions(Connection& c) {
  Result<QueryResult> r = c.query("SELECT version FROM schema_migrations");
  if (!r) return std::unexpected(std::move(r.error()));
  std::set<int> versions;
  for (const Row& row : r->rows) versions.insert(static_cast<int>(row.get_int(0)));
  return versions;
}

Status refuse_newer(const std::set<int>& applied, int latest) {
  if (!applied.empty() && *applied.rbegin() > latest) {
    return fail(ErrorKind::kDatabase,
                fmt::format("database schema version {} is newer than this parley ({}); "
                            "upgrade parley",
                            *applied.rbegin(), latest));
  }
  return {};
}

}  // namespace

Result<MigrationReport> migrate(Database& db) {
  return migrate(db, detail::embedded_migration_sources());
}

Result<MigrationReport> migrate(Database& db, std::span<const MigrationSource> sources) {
  return detail::guarded("migrate", [&]() -> Result<MigrationReport> {
    Result<std::vector<detail::PlannedMigration>> plan = detail::plan_migrations(sources, db.dialect());
    if (!plan) return std::unexpected(std::move(plan.error()));
    const int latest = plan->empty() ? 0 : plan->back().version;

    MigrationReport report;
    std::set<int> applied;
    Status inspected = db.transaction([&](Connection& c) -> Status {
      if (Status st = lock_for_migration(c); !st) return st;
      if (Result<QueryResult> created = c.query(kCreateMigrationsTable); !created) {
        return std::unexpected(std::move(created.error()));
      }
      Result<std::set<int>> versions = applied_versions(c);
      if (!versions) return std::unexpected(std::move(versions.error()));
      applied = std::move(*versions);
      return refuse_newer(applied, latest);
    });
    if (!inspected) return std::unexpected(std::move(inspected.error()));
    report.from_version = applied.empty() ? 0 : *applied.rbegin();
    report.to_version = report.from_version;

    for (const detail::PlannedMigration& m : *plan) {
      if (applied.contains(m.version)) continue;
      bool applied_here = false;
      Status st = db.transaction([&](Connection& c) -> Status {
        if (Status locked = lock_for_migration(c); !locked) return locked;
        // Another process may have applied it since we looked.
        Result<std::set<int>> now_applied = applied_versions(c);
        if (!now_applied) return std::unexpected(std::move(now_applied.error()));
        if (Status newer = refuse_newer(*now_applied, latest); !newer) return newer;
        if (now_applied->contains(m.version)) return {};
        if (Status ran = c.execute_script(m.sql); !ran) {
          return fail(ErrorKind::kDatabase,
                      fmt::format("migration {:04}_{} failed: {}", m.version, m.name, ran.error().message));
        }
        Result<QueryResult> recorded =
            c.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    {m.version, m.name, now_ms()});
        if (!recorded) return std::unexpected(std::move(recorded.error()));
        applied_here = true;
        return {};
      });
      if (!st) return std::unexpected(std::move(st.error()));
      if (applied_here) report.applied.push_back(MigrationInfo{m.version, m.name});
      report.to_version = std::max(report.to_version, m.version);
    }
    return report;
  });
}

Result<int> current_schema_version(Executor& db) {
  return detail::guarded("schema version", [&]() -> Result<int> {
    Result<QueryResult> exists =
        db.dialect() == Dialect::kSqlite
            ? db.query(
                  "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
            : db.query("SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0 ELSE 1 END");
    if (!exists) return std::unexpected(std::move(exists.error()));
    if (exists->rows.empty() || exists->rows[0].get_int(0) == 0) return 0;
    Result<QueryResult> max = db.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (!max) return std::unexpected(std::move(max.error()));
    return max->rows.empty() ? 0 : static_cast<int>(max->rows[0].get_int(0));
  });
}

int latest_known_version() noexcept {
  int latest = 0;
  for (const MigrationSource& source : detail::embedded_migration_sources()) {
    // Names were validated at build time; the first four characters are the version.
    int version = 0;
    for (std::size_t i = 0; i < 4 && i < source.file_name.size(); ++i)
      version = version * 10 + (source.file_name[i] - '0');
    latest = std::max(latest, version);
  }
  return latest;
}

std::vector<MigrationInfo> known_migrations() {
  std::vector<MigrationInfo> out;
  Result<std::vector<detail::PlannedMigration>> plan =
      detail::plan_migrations(detail::embedded_migration_sources(), Dialect::kSqlite);
  if (!plan) return out;
  for (const auto& m : *plan) out.push_back(MigrationInfo{m.version, m.name});
  return out;
}

}  // namespace parley::store
