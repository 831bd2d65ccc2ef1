#include "store/usage_store.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

Status UsageStore::append(std::span<const UsageEvent> events) {
  if (events.empty()) return {};
  // Multi-row INSERTs of up to 50 rows (700 parameters, under every engine's limit).
  constexpr std::size_t kRowsPerStatement = 50;
  return db_.transaction([&](Connection& c) -> Status {
    for (std::size_t start = 0; start < events.size(); start += kRowsPerStatement) {
      detail::Params params;
      std::string sql =
          "INSERT INTO usage_events (id, user_id, api_key_id, provider, model, endpoint, status, streamed, "
          "prompt_tokens, completion_tokens, total_tokens, latency_ms, request_id, created_at) VALUES ";
      for (std::size_t i = start; i < std::min(events.size(), start + kRowsPerStatement); ++i) {
        const UsageEvent& e = events[i];
        if (i != start) sql += ", ";
        sql += fmt::format("({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})", params.add(e.id),
                           params.add(e.user_id), params.add(e.api_key_id), params.add(e.provider),
                           params.add(e.model), params.add(e.endpoint), params.add(std::int64_t{e.status}),
                           params.add(std::int64_t{e.streamed ? 1 : 0}), params.add(e.prompt_tokens),
                           params.add(e.completion_tokens), params.add(e.total_tokens),
                           params.add(e.latency_ms), params.add(e.request_id), params.add(e.created_at));
      }
      Result<QueryResult> r = c.query(sql, params.span());
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
