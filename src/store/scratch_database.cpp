#include "store/scratch_database.hpp"

#include <fmt/format.h>
#include <stdlib.h>

#include <random>
#include <system_error>

namespace parley::store {

Result<std::unique_ptr<ScratchDatabase>> ScratchDatabase::open(Dialect dialect, std::string_view postgres_url,
                                                               DatabaseOptions base) {
  auto scratch = std::unique_ptr<ScratchDatabase>(new ScratchDatabase());
  scratch->options_ = std::move(base);
  if (dialect == Dialect::kSqlite) {
    std::error_code ec;
    std::string pattern = (std::filesystem::temp_directory_path(ec) / "parley-store-XXXXXX").string();
    if (ec || ::mkdtemp(pattern.data()) == nullptr) {
      return fail(ErrorKind::kDatabase, "cannot create a temporary directory for a scratch database");
    }
    scratch->temp_dir_ = pattern;
    scratch->options_.url = "sqlite://" + (scratch->temp_dir_ / "parley.db").string();
    scratch->options_.pg_schema.clear();
  } else {
    if (postgres_url.empty())
      return fail(ErrorKind::kValidation, "no PostgreSQL URL for a scratch database", "url");
    std::random_device random;
    scratch->options_.url = std::string(postgres_url);
    scratch->options_.pg_schema = fmt::format("parley_t_{:08x}{:08x}", random(), random());
  }
  Result<std::unique_ptr<Database>> db = open_database(scratch->options_);
  if (!db) return std::unexpected(std::move(db.error()));
  scratch->db_ = std::move(*db);
  return scratch;
}

ScratchDatabase::~ScratchDatabase() {
  if (db_ && !options_.pg_schema.empty()) {
    (void)db_->query(fmt::format("DROP SCHEMA IF EXISTS \"{}\" CASCADE", options_.pg_schema));
  }
  db_.reset();
  if (!temp_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir_, ec);
  }
}

}  // namespace parley::store
