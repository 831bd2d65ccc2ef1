// Throwaway databases for tests of the store and of the modules above it: a fresh SQLite file in a
// new temporary directory, or a fresh schema inside the PostgreSQL database a URL names (so test
// runs against one server stay independent). Both disappear when the ScratchDatabase is destroyed.
// Not for production use. BLOCKING.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

class ScratchDatabase {
 public:
  // `base` supplies pool and timeout settings; its url and pg_schema are replaced. For kPostgres,
  // `postgres_url` names the server database to create the schema in.
  static Result<std::unique_ptr<ScratchDatabase>> open(Dialect dialect, std::string_view postgres_url = {},
                                                       DatabaseOptions base = {});

  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;
  ~ScratchDatabase();

  [[nodiscard]] Database& db() const noexcept { return *db_; }
  // Options that open the same data again (e.g. a second Database, as another process would).
  [[nodiscard]] const DatabaseOptions& options() const noexcept { return options_; }

 private:
  ScratchDatabase() = default;

  std::unique_ptr<Database> db_;
  DatabaseOptions options_;
  std::filesystem::path temp_dir_;
};

}  // namespace parley::store
