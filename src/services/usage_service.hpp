// Reading usage (issue 14): records and summaries of one service key, one user, or the whole
// deployment. Who may read: a key's owner and a user themself; managers and admins read everyone's
// (and the deployment's); anyone else gets 404 NOT_FOUND for a key or a user (its existence is not
// revealed) and 403 FORBIDDEN for the deployment. BLOCKING; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "store/database.hpp"
#include "store/usage_store.hpp"

namespace parley::services {

// Whose usage: one key, one user, or everyone's (optionally narrowed to a key and/or a user, which
// need not exist any more: usage outlives them).
struct UsageScope {
  enum class Kind { kKey, kUser, kAll };
  Kind kind = Kind::kAll;
  std::string id;                         // the key or the user
  std::optional<std::string> api_key_id;  // kAll only
  std::optional<std::string> user_id;     // kAll only
};

inline constexpr int kMaxUsageSummaryDays = 366;

struct UsageSummaryReport {
  std::int64_t period_start = 0;  // UTC midnight of the first day
  std::int64_t period_end = 0;    // now
  store::UsageAmounts totals;
  std::vector<store::UsageDay> by_day;  // every day of the period, oldest first, days without usage at 0
  std::vector<store::UsageModel> by_model;
};

// A records query whose key and user filters were set by UsageService::authorize_records; the caller
// moves its cursor and page size from page to page (an export reads many pages, authorized once).
class AuthorizedRecords {
 public:
  void set_after(std::optional<store::UsageCursor> after) { query_.after = after; }
  void set_limit(std::int64_t limit) { query_.limit = limit; }
  [[nodiscard]] const store::UsageRecordQuery& query() const noexcept { return query_; }

 private:
  friend class UsageService;
  explicit AuthorizedRecords(store::UsageRecordQuery query) : query_(std::move(query)) {}
  store::UsageRecordQuery query_;
};

class UsageService {
 public:
  UsageService(store::Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  // Checks that `who` may read `scope`; query's api_key_id / user_id are set from the scope.
  Result<AuthorizedRecords> authorize_records(const auth::Principal& who, const UsageScope& scope,
                                              store::UsageRecordQuery query);
  Result<store::UsageRecordPage> records(const AuthorizedRecords& query);
  // See store::UsageStore::positions.
  Result<std::vector<store::UsageCursor>> positions(const AuthorizedRecords& query, std::int64_t n);
  // The last `days` UTC days, today included (1..kMaxUsageSummaryDays).
  Result<UsageSummaryReport> summary(const auth::Principal& who, const UsageScope& scope, int days);

 private:
  // Checks that `who` may read `scope`; the store's key and user filters for it.
  Result<std::pair<std::optional<std::string>, std::optional<std::string>>> filters(
      const auth::Principal& who, const UsageScope& scope);

  store::Database& db_;
  const Clock& clock_;
};

}  // namespace parley::services
