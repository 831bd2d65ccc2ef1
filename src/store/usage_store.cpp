#include "store/usage_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <vector>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

UsageAmounts& UsageAmounts::operator+=(const UsageAmounts& o) noexcept {
  requests += o.requests;
  errors += o.errors;
  prompt_tokens += o.prompt_tokens;
  completion_tokens += o.completion_tokens;
  total_tokens += o.total_tokens;
  cost_nanos += o.cost_nanos;
  latency_ms_sum += o.latency_ms_sum;
  return *this;
}

namespace {

constexpr std::size_t kColumnsPerRow = 14;
constexpr std::size_t kRollupColumns = 12;
constexpr std::size_t kModelRollupColumns = 10;

// "($1, …, $n), ($n+1, …)" for `rows` rows of `columns` parameters.
std::string values_list(std::size_t rows, std::size_t columns) {
  std::string sql;
  for (std::size_t r = 0; r < rows; ++r) {
    sql += r == 0 ? "(" : ", (";
    for (std::size_t c = 1; c <= columns; ++c) {
      if (c > 1) sql += ", ";
      sql += fmt::format("${}", r * columns + c);
    }
    sql += ')';
  }
  return sql;
}

// INSERT … VALUES ($1, …, $14), ($15, …) for `rows` rows.
std::string insert_sql(std::size_t rows) {
  return "INSERT INTO usage_events (user_id, api_key_id, provider, model, endpoint, status, streamed, "
         "prompt_tokens, completion_tokens, total_tokens, latency_ms, cost_nanos, request_id, created_at) "
         "VALUES " +
         values_list(rows, kColumnsPerRow);
}

// Adds `rows` rows to a rollup table (no two of them with the same key): the key columns, then
// the seven amounts.
std::string upsert_sql(std::string_view table, std::string_view key_columns, std::size_t key_count,
                       std::size_t rows) {
  std::string sql = fmt::format(
      "INSERT INTO {0} ({1}, requests, errors, prompt_tokens, completion_tokens, total_tokens, cost_nanos, "
      "latency_ms_sum) VALUES {2} ON CONFLICT ({1}) DO UPDATE SET ",
      table, key_columns, values_list(rows, key_count + 7));
  bool first = true;
  for (std::string_view column : {"requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens",
                                  "cost_nanos", "latency_ms_sum"}) {
    if (!first) sql += ", ";
    first = false;
    sql += fmt::format("{1} = {0}.{1} + excluded.{1}", table, column);
  }
  return sql;
}

constexpr std::string_view kDailyKey = "day, user_id, api_key_id, provider, model";
constexpr std::string_view kModelsKey = "day, provider, model";

void add_row(std::vector<Value>& params, const UsageEvent& e) {
  params.insert(params.end(),
                {Value(e.user_id), Value(e.api_key_id), Value(e.provider), Value(e.model), Value(e.endpoint),
                 Value(std::int64_t{e.status}), Value(std::int64_t{e.streamed ? 1 : 0}),
                 Value(e.prompt_tokens), Value(e.completion_tokens), Value(e.total_tokens),
                 Value(e.latency_ms), Value(e.cost_nanos), Value(e.request_id), Value(e.created_at)});
}

// day, user_id, api_key_id ('' for none), provider, model
using RollupKey = std::tuple<std::int64_t, std::string, std::string, std::string, std::string>;

std::map<RollupKey, UsageAmounts> rollups_of(std::span<const UsageEvent> events) {
  std::map<RollupKey, UsageAmounts> out;
  for (const UsageEvent& e : events) {
    UsageAmounts& a = out[RollupKey{utc_day_start(e.created_at), e.user_id, e.api_key_id.value_or(""),
                                    e.provider, e.model}];
    a.requests += 1;
    a.errors += e.status >= 400 ? 1 : 0;
    a.prompt_tokens += e.prompt_tokens;
    a.completion_tokens += e.completion_tokens;
    a.total_tokens += e.total_tokens;
    a.cost_nanos += e.cost_nanos;
    a.latency_ms_sum += e.latency_ms;
  }
  return out;
}

void add_amounts(std::vector<Value>& params, const UsageAmounts& a) {
  params.insert(params.end(),
                {Value(a.requests), Value(a.errors), Value(a.prompt_tokens), Value(a.completion_tokens),
                 Value(a.total_tokens), Value(a.cost_nanos), Value(a.latency_ms_sum)});
}

void add_rollup(std::vector<Value>& params, const RollupKey& k, const UsageAmounts& a) {
  params.insert(params.end(), {Value(std::get<0>(k)), Value(std::get<1>(k)), Value(std::get<2>(k)),
                               Value(std::get<3>(k)), Value(std::get<4>(k))});
  add_amounts(params, a);
}

// day, provider, model: the deployment's rollups.
using ModelRollupKey = std::tuple<std::int64_t, std::string, std::string>;

std::map<ModelRollupKey, UsageAmounts> model_rollups_of(const std::map<RollupKey, UsageAmounts>& rollups) {
  std::map<ModelRollupKey, UsageAmounts> out;
  for (const auto& [k, a] : rollups) out[ModelRollupKey{std::get<0>(k), std::get<3>(k), std::get<4>(k)}] += a;
  return out;
}

void add_model_rollup(std::vector<Value>& params, const ModelRollupKey& k, const UsageAmounts& a) {
  params.insert(params.end(), {Value(std::get<0>(k)), Value(std::get<1>(k)), Value(std::get<2>(k))});
  add_amounts(params, a);
}

// Runs `one` per item, `full` per `per_statement` items, as appending `add` fills the parameters.
template <class It, class Add>
Status run_chunked(Connection& c, It begin, It end, std::size_t per_statement, std::size_t columns,
                   const std::string& full, const std::string& one, Add add) {
  std::vector<Value> params;
  params.reserve(per_statement * columns);
  It it = begin;
  for (auto left = static_cast<std::size_t>(std::distance(begin, end)); left >= per_statement;
       left -= per_statement) {
    params.clear();
    for (std::size_t i = 0; i < per_statement; ++i, ++it) add(params, *it);
    Result<QueryResult> r = c.query(full, std::span<const Value>(params));
    if (!r) return forward_error(r);
  }
  for (; it != end; ++it) {
    params.clear();
    add(params, *it);
    Result<QueryResult> r = c.query(one, std::span<const Value>(params));
    if (!r) return forward_error(r);
  }
  return {};
}

UsageAmounts amounts_from(const Row& row, std::size_t first) {
  UsageAmounts a;
  a.requests = row.get_int(first);
  a.errors = row.get_int(first + 1);
  a.prompt_tokens = row.get_int(first + 2);
  a.completion_tokens = row.get_int(first + 3);
  a.total_tokens = row.get_int(first + 4);
  a.cost_nanos = row.get_int(first + 5);
  a.latency_ms_sum = row.get_int(first + 6);
  return a;
}

constexpr std::string_view kAmountSums =
    "COALESCE(SUM(requests), 0), COALESCE(SUM(errors), 0), COALESCE(SUM(prompt_tokens), 0), "
    "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_nanos), 0), "
    "COALESCE(SUM(latency_ms_sum), 0)";

void add_owner_filters(std::string& where, detail::Params& params, const std::optional<std::string>& key,
                       const std::optional<std::string>& user) {
  if (key) where += fmt::format(" AND api_key_id = {}", params.add(*key));
  if (user) where += fmt::format(" AND user_id = {}", params.add(*user));
}

}  // namespace

Status UsageStore::append(std::span<const UsageEvent> events) {
  if (events.empty()) return {};
  // Multi-row INSERTs of a fixed size (PostgreSQL 50 rows, one round trip each; SQLite 16), the
  // remainder one row per statement. Only two statement texts per backend: SQLite's per-connection
  // statement cache prepares each once and then only re-runs it (a VALUES list of a new length
  // would be compiled again, as a compound SELECT, at a cost above the inserts themselves). The
  // rollups likewise, 16 rows per upsert, after the batch has been summed in memory.
  const bool sqlite = db_.dialect() == Dialect::kSqlite;
  const std::size_t per_statement = sqlite ? 16 : 50;
  constexpr std::size_t kRollupsPerStatement = 16;
  static const std::string one_row = insert_sql(1);
  static const std::string sqlite_rows = insert_sql(16);
  static const std::string postgres_rows = insert_sql(50);
  static const std::string one_rollup = upsert_sql("usage_daily", kDailyKey, 5, 1);
  static const std::string full_rollups = upsert_sql("usage_daily", kDailyKey, 5, kRollupsPerStatement);
  static const std::string one_model = upsert_sql("usage_daily_models", kModelsKey, 3, 1);
  static const std::string full_models =
      upsert_sql("usage_daily_models", kModelsKey, 3, kRollupsPerStatement);
  const std::string& full = sqlite ? sqlite_rows : postgres_rows;
  const std::map<RollupKey, UsageAmounts> rollups = rollups_of(events);
  const std::map<ModelRollupKey, UsageAmounts> models = model_rollups_of(rollups);
  return db_.transaction([&](Connection& c) -> Status {
    if (auto s = run_chunked(c, events.begin(), events.end(), per_statement, kColumnsPerRow, full, one_row,
                             add_row);
        !s)
      return s;
    if (auto s = run_chunked(c, rollups.begin(), rollups.end(), kRollupsPerStatement, kRollupColumns,
                             full_rollups, one_rollup,
                             [](std::vector<Value>& params, const auto& entry) {
                               add_rollup(params, entry.first, entry.second);
                             });
        !s)
      return s;
    return run_chunked(c, models.begin(), models.end(), kRollupsPerStatement, kModelRollupColumns,
                       full_models, one_model, [](std::vector<Value>& params, const auto& entry) {
                         add_model_rollup(params, entry.first, entry.second);
                       });
  });
}

Result<UsageTotals> UsageStore::totals(const UsageFilter& filter) {
  // Whole days from the rollups; a since_ms inside a day adds that day's rest from the events.
  const std::int64_t first_day = utc_day_start(filter.since_ms);
  const std::int64_t whole_from = first_day == filter.since_ms ? first_day : first_day + kDayMs;
  UsageTotals t;
  {
    detail::Params params;
    std::string where = fmt::format(" WHERE day >= {}", params.add(whole_from));
    add_owner_filters(where, params, filter.api_key_id, filter.user_id);
    const bool whole_deployment = !filter.api_key_id && !filter.user_id;
    Result<QueryResult> r =
        db_.query(fmt::format("SELECT {} FROM {}{}", kAmountSums,
                              whole_deployment ? "usage_daily_models" : "usage_daily", where),
                  params.span());
    if (!r) return forward_error(r);
    if (!r->rows.empty()) {
      const UsageAmounts a = amounts_from(r->rows.front(), 0);
      t.requests = a.requests;
      t.prompt_tokens = a.prompt_tokens;
      t.completion_tokens = a.completion_tokens;
      t.total_tokens = a.total_tokens;
      t.cost_nanos = a.cost_nanos;
    }
  }
  if (whole_from != filter.since_ms) {
    detail::Params params;
    std::string where = fmt::format(" WHERE created_at >= {} AND created_at < {}",
                                    params.add(filter.since_ms), params.add(whole_from));
    add_owner_filters(where, params, filter.api_key_id, filter.user_id);
    Result<QueryResult> r = db_.query(
        "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
        "COALESCE(SUM(total_tokens), 0), COALESCE(SUM(cost_nanos), 0) FROM usage_events" +
            where,
        params.span());
    if (!r) return forward_error(r);
    if (!r->rows.empty()) {
      const Row& row = r->rows.front();
      t.requests += row.get_int(0);
      t.prompt_tokens += row.get_int(1);
      t.completion_tokens += row.get_int(2);
      t.total_tokens += row.get_int(3);
      t.cost_nanos += row.get_int(4);
    }
  }
  return t;
}

namespace {

std::string records_where(detail::Params& params, const UsageRecordQuery& query) {
  std::string where = " WHERE 1 = 1";
  add_owner_filters(where, params, query.api_key_id, query.user_id);
  if (query.since_ms) where += fmt::format(" AND created_at >= {}", params.add(*query.since_ms));
  if (query.until_ms) where += fmt::format(" AND created_at < {}", params.add(*query.until_ms));
  if (query.after) {
    // A plain range on created_at (which every index can use) and the tie-break on id.
    const std::string at = params.add(query.after->created_at);
    const std::string at_again = params.add(query.after->created_at);
    const std::string id = params.add(query.after->id);
    where += fmt::format(" AND created_at <= {} AND (created_at < {} OR id < {})", at, at_again, id);
  }
  return where;
}

}  // namespace

Result<std::vector<UsageCursor>> UsageStore::positions(const UsageRecordQuery& query, std::int64_t n) {
  detail::Params params;
  const std::string where = records_where(params, query);
  const std::string offset = params.add(std::max<std::int64_t>(n, 0));
  Result<QueryResult> r = db_.query(
      fmt::format(
          "SELECT created_at, id FROM usage_events{} ORDER BY created_at DESC, id DESC LIMIT 2 OFFSET {}",
          where, offset),
      params.span());
  if (!r) return forward_error(r);
  std::vector<UsageCursor> out;
  for (const Row& row : r->rows) out.push_back(UsageCursor{row.get_int(0), row.get_int(1)});
  return out;
}

Result<UsageRecordPage> UsageStore::records(const UsageRecordQuery& query) {
  const std::int64_t limit = std::clamp<std::int64_t>(query.limit, 1, kMaxUsagePage);
  detail::Params params;
  const std::string where = records_where(params, query);
  const std::string limit_param = params.add(limit + 1);
  Result<QueryResult> r = db_.query(
      fmt::format(
          "SELECT id, user_id, api_key_id, provider, model, endpoint, status, streamed, prompt_tokens, "
          "completion_tokens, total_tokens, latency_ms, cost_nanos, request_id, created_at "
          "FROM usage_events{} ORDER BY created_at DESC, id DESC LIMIT {}",
          where, limit_param),
      params.span());
  if (!r) return forward_error(r);
  UsageRecordPage page;
  page.has_more = static_cast<std::int64_t>(r->rows.size()) > limit;
  const std::size_t n = std::min<std::size_t>(r->rows.size(), static_cast<std::size_t>(limit));
  page.items.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Row& row = r->rows[i];
    UsageRecord u;
    u.id = row.get_int(0);
    u.user_id = row.get_string(1);
    u.api_key_id = row.get_optional_string(2);
    u.provider = row.get_string(3);
    u.model = row.get_string(4);
    u.endpoint = row.get_string(5);
    u.status = static_cast<int>(row.get_int(6));
    u.streamed = row.get_bool(7);
    u.prompt_tokens = row.get_int(8);
    u.completion_tokens = row.get_int(9);
    u.total_tokens = row.get_int(10);
    u.latency_ms = row.get_int(11);
    u.cost_nanos = row.get_int(12);
    u.request_id = row.get_optional_string(13);
    u.created_at = row.get_int(14);
    page.items.push_back(std::move(u));
  }
  return page;
}

Result<UsageSummary> UsageStore::summary(const UsageSummaryQuery& query) {
  // One pass over the rollup rows of the period, grouped by day and model; the per-day and
  // per-model sums are made from those groups here (days × models rows, a few hundred at most).
  // Nothing narrowing the read, the deployment's own rollups answer (a few rows a day).
  detail::Params params;
  std::string where = fmt::format(" WHERE day >= {}", params.add(query.from_day));
  add_owner_filters(where, params, query.api_key_id, query.user_id);
  const bool whole_deployment = !query.api_key_id && !query.user_id;
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT day, provider, model, {} FROM {}{} GROUP BY day, provider, model",
                            kAmountSums, whole_deployment ? "usage_daily_models" : "usage_daily", where),
                params.span());
  if (!r) return forward_error(r);
  std::map<std::int64_t, UsageAmounts> days;
  std::map<std::pair<std::string, std::string>, UsageAmounts> models;
  for (const Row& row : r->rows) {
    const UsageAmounts a = amounts_from(row, 3);
    days[row.get_int(0)] += a;
    models[{row.get_string(1), row.get_string(2)}] += a;
  }
  UsageSummary out;
  out.by_day.reserve(days.size());
  for (const auto& [day, amounts] : days) out.by_day.push_back(UsageDay{day, amounts});
  out.by_model.reserve(models.size());
  for (auto& [name, amounts] : models) out.by_model.push_back(UsageModel{name.first, name.second, amounts});
  std::sort(out.by_model.begin(), out.by_model.end(), [](const UsageModel& a, const UsageModel& b) {
    return std::tie(b.amounts.requests, a.provider, a.model) <
           std::tie(a.amounts.requests, b.provider, b.model);
  });
  return out;
}

}  // namespace parley::store
