#include "store/response_store.hpp"

#include <array>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kSelect =
    "SELECT id, user_id, previous_response_id, model, status, background, response, input_items, events, "
    "event_lengths, created_at, updated_at FROM responses WHERE id = $1";

ResponseRecord from_row(const Row& row) {
  ResponseRecord r;
  r.id = row.get_string(0);
  r.user_id = row.get_string(1);
  r.previous_response_id = row.get_optional_string(2);
  r.model = row.get_string(3);
  r.status = row.get_string(4);
  r.background = row.get_bool(5);
  r.response = row.get_string(6);
  r.input_items = row.get_string(7);
  r.events = row.get_optional_string(8);
  r.event_lengths = row.get_optional_string(9);
  r.created_at = row.get_int(10);
  r.updated_at = row.get_int(11);
  return r;
}

}  // namespace

Status ResponseStore::insert(const ResponseRecord& r) {
  if (r.id.empty()) return fail(ErrorKind::kInternal, "response id is empty");
  const std::array<Value, 12> values = {
      r.id,          r.user_id, r.previous_response_id, r.model,      r.status,    r.background, r.response,
      r.input_items, r.events,  r.event_lengths,        r.created_at, r.updated_at};
  Result<QueryResult> q = db_.query(
      "INSERT INTO responses (id, user_id, previous_response_id, model, status, background, response, "
      "input_items, events, event_lengths, created_at, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
      values);
  if (!q) {
    if (q.error().kind == ErrorKind::kNotFound)
      return fail(ErrorKind::kNotFound, "User not found", "user_id");
    return forward_error(q);
  }
  return {};
}

Result<std::optional<ResponseRecord>> ResponseStore::get(std::string_view id) {
  Result<QueryResult> q = db_.query(kSelect, {id});
  if (!q) return forward_error(q);
  if (q->rows.empty()) return std::optional<ResponseRecord>();
  return std::optional<ResponseRecord>(from_row(q->rows.front()));
}

Result<bool> ResponseStore::finish(std::string_view id, const ResponseUpdate& u) {
  const std::array<Value, 6> values = {u.status, u.response, u.events, u.event_lengths, u.now_ms, id};
  Result<QueryResult> q = db_.query(
      "UPDATE responses SET status = $1, response = $2, events = $3, event_lengths = $4, updated_at = $5 "
      "WHERE id = $6 AND status IN ('queued', 'in_progress')",
      values);
  if (!q) return forward_error(q);
  return q->affected_rows > 0;
}

Result<bool> ResponseStore::remove(std::string_view id, std::string_view user_id) {
  Result<QueryResult> q = db_.query("DELETE FROM responses WHERE id = $1 AND user_id = $2", {id, user_id});
  if (!q) return forward_error(q);
  return q->affected_rows > 0;
}

Result<std::int64_t> ResponseStore::fail_running(std::int64_t now_ms) {
  Result<QueryResult> q = db_.query(
      "UPDATE responses SET status = 'failed', updated_at = $1 WHERE status IN ('queued', 'in_progress')",
      {now_ms});
  if (!q) return forward_error(q);
  return q->affected_rows;
}

}  // namespace parley::store
