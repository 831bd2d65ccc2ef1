// Base fixture of tests that run on both storage backends: each test gets a scratch database
// (SQLite in a temp file, or a fresh PostgreSQL database when PARLEY_TEST_POSTGRES_URL is set;
// PostgreSQL cases are skipped otherwise), migrated to the binary's schema unless told not to.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "store/database.hpp"
#include "store/migrations.hpp"
#include "store/scratch_database.hpp"

namespace parley::test {

class BackendTest : public ::testing::TestWithParam<store::Dialect> {
 protected:
  void SetUp() override { open_scratch(true); }

  // Subclasses with more set-up call this, then return if IsSkipped() || HasFatalFailure().
  void open_scratch(bool migrate) {
    if (GetParam() == store::Dialect::kPostgres) {
      const char* env = std::getenv("PARLEY_TEST_POSTGRES_URL");
      if (env == nullptr || *env == '\0') {
        GTEST_SKIP() << "PostgreSQL backend skipped: PARLEY_TEST_POSTGRES_URL is not set";
      }
      url_ = env;
    }
    auto scratch = store::ScratchDatabase::open(GetParam(), url_);
    ASSERT_TRUE(scratch) << scratch.error().message;
    scratch_ = std::move(*scratch);
    if (!migrate) return;
    auto migrated = store::migrate(db());
    ASSERT_TRUE(migrated) << migrated.error().message;
  }

  store::Database& db() { return scratch_->db(); }

  std::string url_;
  std::unique_ptr<store::ScratchDatabase> scratch_;
};

// Test-name suffix of a backend: "sqlite" or "postgres".
inline std::string backend_name(const ::testing::TestParamInfo<store::Dialect>& info) {
  return std::string(store::dialect_name(info.param));
}

}  // namespace parley::test
