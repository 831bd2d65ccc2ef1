#include "store/usage_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::size_t kColumnsPerRow = 13;

// INSERT … VALUES ($1, …, $13), ($14, …) for `rows` rows.
std::string insert_sql(std::size_t rows) {
  std::string sql =
      "INSERT INTO usage_events (user_id, api_key_id, provider, model, endpoint, status, streamed, "
      "prompt_tokens, completion_tokens, total_tokens, latency_ms, request_id, created_at) VALUES ";
  for (std::size_t r = 0; r < rows; ++r) {
    sql += r == 0 ? "(" : ", (";
    for (std::size_t c = 1; c <= kColumnsPerRow; ++c) {
      if (c > 1) sql += ", ";
      sql += fmt::format("${}", r * kColumnsPerRow + c);
    }
    sql += ')';
  }
  return sql;
}

void add_row(std::vector<Value>& params, const UsageEvent& e) {
  params.insert(params.end(),
                {Value(e.user_id), Value(e.api_key_id), Value(e.provider), Value(e.model),
                 Value(e.endpoint), Value(std::int64_t{e.status}), Value(std::int64_t{e.streamed ? 1 : 0}),
                 Value(e.prompt_tokens), Value(e.completion_tokens), Value(e.total_tokens),
                 Value(e.latency_ms), Value(e.request_id), Value(e.created_at)});
}

}  // namespace

Status UsageStore::append(std::span<const UsageEvent> events) {
  if (events.empty()) return {};
  // PostgreSQL: multi-row INSERTs of up to 50 rows (650 parameters), one round trip each. SQLite:
  // one row per statement — the same statement, prepared once per connection and only re-run;
  // SQLite compiles a multi-row VALUES list as a compound SELECT, whose preparation cost more than
  // the inserts themselves.
  const std::size_t per_statement = db_.dialect() == Dialect::kSqlite ? 1 : 50;
  static const std::string one_row = insert_sql(1);
  static const std::string full = insert_sql(50);
  return db_.transaction([&](Connection& c) -> Status {
    std::vector<Value> params;
    params.reserve(per_statement * kColumnsPerRow);
    for (std::size_t start = 0; start < events.size(); start += per_statement) {
      const std::size_t rows = std::min(events.size() - start, per_statement);
      params.clear();
      for (std::size_t i = start; i < start + rows; ++i) add_row(params, events[i]);
      Result<QueryResult> r = c.query(rows == 1    ? one_row
                                      : rows == 50 ? full
                                                   : insert_sql(rows),
                                      std::span<const Value>(params));
      if (!r) return forward_error(r);
    }
    return {};
  });
}

Result<UsageTotals> UsageStore::totals(const UsageFilter& filter) {
  detail::Params params;
  std::string where = fmt::format(" WHERE created_at >= {}", params.add(filter.since_ms));
  if (filter.api_key_id) where += fmt::format(" AND api_key_id = {}", params.add(*filter.api_key_id));
  if (filter.user_id) where += fmt::format(" AND user_id = {}", params.add(*filter.user_id));
  Result<QueryResult> r = db_.query(
      "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
      "COALESCE(SUM(total_tokens), 0) FROM usage_events" +
          where,
      params.span());
  if (!r) return forward_error(r);
  UsageTotals t;
  if (!r->rows.empty()) {
    const Row& row = r->rows.front();
    t.requests = row.get_int(0);
    t.prompt_tokens = row.get_int(1);
    t.completion_tokens = row.get_int(2);
    t.total_tokens = row.get_int(3);
  }
  return t;
}

}  // namespace parley::store
