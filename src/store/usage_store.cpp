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
                {Value(e.user_id), Value(e.api_key_id), Value(e.provider), Value(e.model), Value(e.endpoint),
                 Value(std::int64_t{e.status}), Value(std::int64_t{e.streamed ? 1 : 0}),
                 Value(e.prompt_tokens), Value(e.completion_tokens), Value(e.total_tokens),
                 Value(e.latency_ms), Value(e.request_id), Value(e.created_at)});
}

}  // namespace

Status UsageStore::append(std::span<const UsageEvent> events) {
  if (events.empty()) return {};
  // Multi-row INSERTs of a fixed size (PostgreSQL 50 rows, one round trip each; SQLite 16), the
  // remainder one row per statement. Only two statement texts per backend: SQLite's per-connection
  // statement cache prepares each once and then only re-runs it (a VALUES list of a new length
  // would be compiled again, as a compound SELECT, at a cost above the inserts themselves).
  const std::size_t per_statement = db_.dialect() == Dialect::kSqlite ? 16 : 50;
  static const std::string one_row = insert_sql(1);
  static const std::string sqlite_rows = insert_sql(16);
  static const std::string postgres_rows = insert_sql(50);
  const std::string& full = db_.dialect() == Dialect::kSqlite ? sqlite_rows : postgres_rows;
  return db_.transaction([&](Connection& c) -> Status {
    std::vector<Value> params;
    params.reserve(per_statement * kColumnsPerRow);
    std::size_t start = 0;
    for (; start + per_statement <= events.size(); start += per_statement) {
      params.clear();
      for (std::size_t i = start; i < start + per_statement; ++i) add_row(params, events[i]);
      Result<QueryResult> r = c.query(full, std::span<const Value>(params));
      if (!r) return forward_error(r);
    }
    for (; start < events.size(); ++start) {
      params.clear();
      add_row(params, events[start]);
      Result<QueryResult> r = c.query(one_row, std::span<const Value>(params));
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
