#include "store/api_key_store.hpp"

#include <fmt/format.h>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kColumns =
    "id, user_id, name, key_hash, key_prefix, rate_limit_per_minute, is_active, expires_at, last_used_at, "
    "created_at, revoked_at, tokens_per_minute, token_budget, spend_budget_nanos, budget_period";

ApiKeyRecord from_row(const Row& row) {
  ApiKeyRecord k;
  k.id = row.get_string(0);
  k.user_id = row.get_string(1);
  k.name = row.get_string(2);
  k.key_hash = row.get_string(3);
  k.key_prefix = row.get_string(4);
  k.rate_limit_per_minute = row.get_optional_int(5);
  k.is_active = row.get_bool(6);
  k.expires_at = row.get_optional_int(7);
  k.last_used_at = row.get_optional_int(8);
  k.created_at = row.get_int(9);
  k.revoked_at = row.get_optional_int(10);
  k.tokens_per_minute = row.get_optional_int(11);
  k.token_budget = row.get_optional_int(12);
  k.spend_budget_nanos = row.get_optional_int(13);
  k.budget_period = row.get_string(14);
  return k;
}

Result<std::optional<ApiKeyRecord>> first(Result<QueryResult>& r) {
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<ApiKeyRecord>();
  return std::optional<ApiKeyRecord>(from_row(r->rows.front()));
}

}  // namespace

Result<ApiKeyRecord> ApiKeyStore::create(const ApiKeyRecord& key) {
  if (key.id.empty()) return fail(ErrorKind::kInternal, "api key id is empty");
  Result<QueryResult> r =
      db_.query(fmt::format("INSERT INTO api_keys ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                            "$12, $13, $14, $15) "
                            "RETURNING {}",
                            kColumns, kColumns),
                {key.id, key.user_id, key.name, key.key_hash, key.key_prefix, key.rate_limit_per_minute,
                 key.is_active, key.expires_at, key.last_used_at, key.created_at, key.revoked_at,
                 key.tokens_per_minute, key.token_budget, key.spend_budget_nanos, key.budget_period});
  if (!r) {
    return std::unexpected(detail::name_conflict(
        std::move(r.error()), {{"key_hash", "key_hash"}, {"api_keys.id", "id"}, {"api_keys_pkey", "id"}}));
  }
  if (r->rows.empty()) return fail(ErrorKind::kDatabase, "api key insert returned no row");
  return from_row(r->rows.front());
}

Result<std::optional<ApiKeyRecord>> ApiKeyStore::get_by_id(std::string_view id) {
  Result<QueryResult> r = db_.query(fmt::format("SELECT {} FROM api_keys WHERE id = $1", kColumns), {id});
  return first(r);
}

Result<std::optional<ApiKeyRecord>> ApiKeyStore::get_by_hash(std::string_view key_hash) {
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT {} FROM api_keys WHERE key_hash = $1", kColumns), {key_hash});
  return first(r);
}

Result<Page<ApiKeyRecord>> ApiKeyStore::list_where(std::string_view where,
                                                   std::span<const Value> where_params, PageRequest page) {
  page = detail::clamp_page(page);
  Result<QueryResult> total = db_.query(fmt::format("SELECT COUNT(*) FROM api_keys{}", where), where_params);
  if (!total) return forward_error(total);
  detail::Params params;
  for (const Value& v : where_params) params.add(v);
  const std::string limit = params.add(page.limit);
  const std::string offset = params.add(page.offset);
  Result<QueryResult> rows =
      db_.query(fmt::format("SELECT {} FROM api_keys{} ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}",
                            kColumns, where, limit, offset),
                params.span());
  if (!rows) return forward_error(rows);
  Page<ApiKeyRecord> out;
  out.total = total->rows.empty() ? 0 : total->rows.front().get_int(0);
  out.items.reserve(rows->rows.size());
  for (const Row& row : rows->rows) out.items.push_back(from_row(row));
  return out;
}

Result<Page<ApiKeyRecord>> ApiKeyStore::list_for_user(std::string_view user_id, PageRequest page) {
  const Value owner[] = {user_id};
  return list_where(" WHERE user_id = $1", owner, page);
}

Result<Page<ApiKeyRecord>> ApiKeyStore::list_all(PageRequest page) {
  return list_where("", {}, page);
}

Result<std::optional<ApiKeyRecord>> ApiKeyStore::update(std::string_view id, const ApiKeyUpdate& patch) {
  detail::Params params;
  std::string sets;
  auto set = [&](std::string_view column, Value v) {
    if (!sets.empty()) sets += ", ";
    sets += fmt::format("{} = {}", column, params.add(std::move(v)));
  };
  if (patch.name) set("name", *patch.name);
  if (patch.is_active) set("is_active", *patch.is_active);
  if (patch.rate_limit_per_minute) set("rate_limit_per_minute", *patch.rate_limit_per_minute);
  if (patch.tokens_per_minute) set("tokens_per_minute", *patch.tokens_per_minute);
  if (patch.token_budget) set("token_budget", *patch.token_budget);
  if (patch.spend_budget_nanos) set("spend_budget_nanos", *patch.spend_budget_nanos);
  if (patch.budget_period) set("budget_period", *patch.budget_period);
  if (sets.empty()) return get_by_id(id);
  const std::string id_param = params.add(id);
  Result<QueryResult> r =
      db_.query(fmt::format("UPDATE api_keys SET {} WHERE id = {} RETURNING {}", sets, id_param, kColumns),
                params.span());
  return first(r);
}

Result<bool> ApiKeyStore::revoke(std::string_view id, std::int64_t now_ms) {
  Result<QueryResult> r = db_.query(
      "UPDATE api_keys SET is_active = 0, revoked_at = COALESCE(revoked_at, $2) WHERE id = $1", {id, now_ms});
  if (!r) return forward_error(r);
  return r->affected_rows > 0;
}

Status ApiKeyStore::update_last_used(std::span<const std::pair<std::string, std::int64_t>> uses) {
  if (uses.empty()) return {};
  return db_.transaction([&](Connection& c) -> Status {
    for (const auto& [id, at] : uses) {
      Result<QueryResult> r = c.query(
          "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < "
          "$2)",
          {id, at});
      if (!r) return forward_error(r);
    }
    return {};
  });
}

}  // namespace parley::store
