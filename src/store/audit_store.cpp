#include "store/audit_store.hpp"

#include <fmt/format.h>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kColumns =
    "id, actor_user_id, action, target_type, target_id, ip, request_id, detail, created_at";

AuditEvent from_row(const Row& row) {
  AuditEvent e;
  e.id = row.get_string(0);
  e.actor_user_id = row.get_optional_string(1);
  e.action = row.get_string(2);
  e.target_type = row.get_optional_string(3);
  e.target_id = row.get_optional_string(4);
  e.ip = row.get_optional_string(5);
  e.request_id = row.get_optional_string(6);
  e.detail = row.get_optional_string(7);
  e.created_at = row.get_int(8);
  return e;
}

}  // namespace

Status AuditStore::append(const AuditEvent& event) {
  if (event.id.empty()) return fail(ErrorKind::kInternal, "audit event id is empty");
  Result<QueryResult> r = db_.query(
      fmt::format("INSERT INTO audit_events ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", kColumns),
      {event.id, event.actor_user_id, event.action, event.target_type, event.target_id, event.ip,
       event.request_id, event.detail, event.created_at});
  if (!r) {
    return std::unexpected(detail::name_conflict(std::move(r.error()),
                                                 {{"audit_events.id", "id"}, {"audit_events_pkey", "id"}}));
  }
  return {};
}

Result<Page<AuditEvent>> AuditStore::list(const AuditQuery& query) {
  const PageRequest page = detail::clamp_page(query.page);
  detail::Params params;
  std::string where;
  auto add_filter = [&](std::string_view column, const std::optional<std::string>& value) {
    if (!value) return;
    where += where.empty() ? " WHERE " : " AND ";
    where += fmt::format("{} = {}", column, params.add(*value));
  };
  add_filter("actor_user_id", query.actor_user_id);
  add_filter("action", query.action);
  auto add_bound = [&](std::string_view op, const std::optional<std::int64_t>& value) {
    if (!value) return;
    where += where.empty() ? " WHERE " : " AND ";
    where += fmt::format("created_at {} {}", op, params.add(*value));
  };
  add_bound(">=", query.since_ms);
  add_bound("<", query.until_ms);

  Result<QueryResult> total = db_.query("SELECT COUNT(*) FROM audit_events" + where, params.span());
  if (!total) return forward_error(total);
  const std::string limit = params.add(page.limit);
  const std::string offset = params.add(page.offset);
  Result<QueryResult> rows = db_.query(
      fmt::format("SELECT {} FROM audit_events{} ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
                  kColumns, where, limit, offset),
      params.span());
  if (!rows) return forward_error(rows);
  Page<AuditEvent> out;
  out.total = total->rows.empty() ? 0 : total->rows.front().get_int(0);
  out.items.reserve(rows->rows.size());
  for (const Row& row : rows->rows) out.items.push_back(from_row(row));
  return out;
}

}  // namespace parley::store
