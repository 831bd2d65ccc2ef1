#include "store/provider_key_store.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kColumns = "user_id, provider, token, key_hint, created_at, updated_at";

ProviderKeyRecord from_row(const Row& row) {
  ProviderKeyRecord k;
  k.user_id = row.get_string(0);
  k.provider = row.get_string(1);
  k.token = row.get_string(2);
  k.key_hint = row.get_string(3);
  k.created_at = row.get_int(4);
  k.updated_at = row.get_int(5);
  return k;
}

Result<std::vector<ProviderKeyRecord>> all_rows(Result<QueryResult>& r) {
  if (!r) return forward_error(r);
  std::vector<ProviderKeyRecord> out;
  out.reserve(r->rows.size());
  for (const Row& row : r->rows) out.push_back(from_row(row));
  return out;
}

// A missing owner surfaces as a foreign-key violation (kNotFound); say which object is missing.
Error owner_error(Error error) {
  if (error.kind == ErrorKind::kNotFound) error.message = "User not found";
  return error;
}

}  // namespace

Result<std::optional<ProviderKeyRecord>> ProviderKeyStore::get(std::string_view user_id,
                                                               std::string_view provider) {
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT {} FROM provider_keys WHERE user_id = $1 AND provider = $2", kColumns),
                {user_id, provider});
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<ProviderKeyRecord>();
  return std::optional<ProviderKeyRecord>(from_row(r->rows.front()));
}

Result<std::vector<ProviderKeyRecord>> ProviderKeyStore::list_for_user(std::string_view user_id) {
  Result<QueryResult> r = db_.query(
      fmt::format("SELECT {} FROM provider_keys WHERE user_id = $1 ORDER BY provider", kColumns), {user_id});
  return all_rows(r);
}

Result<ProviderKeyRecord> ProviderKeyStore::upsert(const ProviderKeyRecord& key) {
  Result<QueryResult> r =
      db_.query(fmt::format("INSERT INTO provider_keys ({}) VALUES ($1, $2, $3, $4, $5, $6) "
                            "ON CONFLICT (user_id, provider) DO UPDATE SET token = excluded.token, "
                            "key_hint = excluded.key_hint, updated_at = excluded.updated_at RETURNING {}",
                            kColumns, kColumns),
                {key.user_id, key.provider, key.token, key.key_hint, key.created_at, key.updated_at});
  if (!r) return std::unexpected(owner_error(std::move(r.error())));
  if (r->rows.empty()) return fail(ErrorKind::kDatabase, "provider key upsert returned no row");
  return from_row(r->rows.front());
}

Result<bool> ProviderKeyStore::insert_if_absent(const ProviderKeyRecord& key) {
  Result<QueryResult> r =
      db_.query(fmt::format("INSERT INTO provider_keys ({}) VALUES ($1, $2, $3, $4, $5, $6) "
                            "ON CONFLICT (user_id, provider) DO NOTHING",
                            kColumns),
                {key.user_id, key.provider, key.token, key.key_hint, key.created_at, key.updated_at});
  if (!r) return std::unexpected(owner_error(std::move(r.error())));
  return r->affected_rows > 0;
}

Result<bool> ProviderKeyStore::remove(std::string_view user_id, std::string_view provider) {
  Result<QueryResult> r =
      db_.query("DELETE FROM provider_keys WHERE user_id = $1 AND provider = $2", {user_id, provider});
  if (!r) return forward_error(r);
  return r->affected_rows > 0;
}

Result<std::vector<ProviderKeyRecord>> ProviderKeyStore::list_batch(
    const std::optional<ProviderKeyCursor>& after, std::int64_t limit) {
  limit = std::clamp<std::int64_t>(limit, 1, kMaxPageLimit);
  Result<QueryResult> r =
      after ? db_.query(fmt::format("SELECT {} FROM provider_keys WHERE user_id > $1 OR (user_id = $1 AND "
                                    "provider > $2) ORDER BY user_id, provider LIMIT $3",
                                    kColumns),
                        {after->user_id, after->provider, limit})
            : db_.query(
                  fmt::format("SELECT {} FROM provider_keys ORDER BY user_id, provider LIMIT $1", kColumns),
                  {limit});
  return all_rows(r);
}

Result<bool> ProviderKeyStore::update_token_if_unchanged(std::string_view user_id, std::string_view provider,
                                                         std::string_view old_token,
                                                         std::string_view new_token) {
  Result<QueryResult> r =
      db_.query("UPDATE provider_keys SET token = $4 WHERE user_id = $1 AND provider = $2 AND token = $3",
                {user_id, provider, old_token, new_token});
  if (!r) return forward_error(r);
  return r->affected_rows > 0;
}

Result<std::int64_t> ProviderKeyStore::count() {
  Result<QueryResult> r = db_.query("SELECT COUNT(*) FROM provider_keys");
  if (!r) return forward_error(r);
  return r->rows.empty() ? 0 : r->rows.front().get_int(0);
}

}  // namespace parley::store
