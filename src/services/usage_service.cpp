#include "services/usage_service.hpp"

#include "auth/policy.hpp"
#include "store/api_key_store.hpp"
#include "store/user_store.hpp"

namespace parley::services {

Result<std::pair<std::optional<std::string>, std::optional<std::string>>> UsageService::filters(
    const auth::Principal& who, const UsageScope& scope) {
  using Filters = std::pair<std::optional<std::string>, std::optional<std::string>>;
  switch (scope.kind) {
    case UsageScope::Kind::kKey: {
      store::ApiKeyStore keys(db_);
      auto found = keys.get_by_id(scope.id);
      if (!found) return std::unexpected(found.error());
      if (!*found) return fail(ErrorKind::kNotFound, "API key not found");
      if (auto s = auth::authorize_owned(who, auth::Access::kRead, (*found)->user_id); !s) {
        return std::unexpected(s.error());
      }
      return Filters{scope.id, std::nullopt};
    }
    case UsageScope::Kind::kUser: {
      if (auto s = auth::authorize_owned(who, auth::Access::kRead, scope.id); !s)
        return std::unexpected(s.error());
      if (scope.id != who.user_id) {
        store::UserStore users(db_);
        auto found = users.get_by_id(scope.id);
        if (!found) return std::unexpected(found.error());
        if (!*found) return fail(ErrorKind::kNotFound, "User not found");
      }
      return Filters{std::nullopt, scope.id};
    }
    case UsageScope::Kind::kAll:
      if (auto s = auth::authorize(who, auth::Operation::kReadAnyUsage); !s)
        return std::unexpected(s.error());
      return Filters{scope.api_key_id, scope.user_id};
  }
  return fail(ErrorKind::kInternal, "unknown usage scope");
}

Result<AuthorizedRecords> UsageService::authorize_records(const auth::Principal& who, const UsageScope& scope,
                                                          store::UsageRecordQuery query) {
  auto f = filters(who, scope);
  if (!f) return std::unexpected(f.error());
  query.api_key_id = std::move(f->first);
  query.user_id = std::move(f->second);
  return AuthorizedRecords(std::move(query));
}

Result<store::UsageRecordPage> UsageService::records(const AuthorizedRecords& query) {
  store::UsageStore usage(db_);
  return usage.records(query.query());
}

Result<std::vector<store::UsageCursor>> UsageService::positions(const AuthorizedRecords& query,
                                                                std::int64_t n) {
  store::UsageStore usage(db_);
  return usage.positions(query.query(), n);
}

Result<UsageSummaryReport> UsageService::summary(const auth::Principal& who, const UsageScope& scope,
                                                 int days) {
  if (days < 1 || days > kMaxUsageSummaryDays) {
    return validation("days", "days must be between 1 and " + std::to_string(kMaxUsageSummaryDays));
  }
  auto f = filters(who, scope);
  if (!f) return std::unexpected(f.error());
  UsageSummaryReport report;
  report.period_end = clock_.now_ms();
  const std::int64_t today = store::utc_day_start(report.period_end);
  report.period_start = today - (days - 1) * store::kDayMs;
  store::UsageStore usage(db_);
  auto found = usage.summary({.api_key_id = f->first, .user_id = f->second, .from_day = report.period_start});
  if (!found) return std::unexpected(found.error());
  // Every day of the period, those without usage at zero. (A day after today, from a clock that
  // went back, is left out.)
  report.by_day.reserve(static_cast<std::size_t>(days));
  auto it = found->by_day.begin();
  for (std::int64_t day = report.period_start; day <= today; day += store::kDayMs) {
    store::UsageDay d{day, {}};
    if (it != found->by_day.end() && it->day == day) d.amounts = (it++)->amounts;
    report.totals += d.amounts;
    report.by_day.push_back(d);
  }
  report.by_model = std::move(found->by_model);
  return report;
}

}  // namespace parley::services
