#include "store/refresh_token_store.hpp"

#include <fmt/format.h>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kColumns =
    "id, user_id, family_id, token_hash, expires_at, created_at, rotated_at, revoked_at";

RefreshTokenRecord from_row(const Row& row) {
  RefreshTokenRecord t;
  t.id = row.get_string(0);
  t.user_id = row.get_string(1);
  t.family_id = row.get_string(2);
  t.token_hash = row.get_string(3);
  t.expires_at = row.get_int(4);
  t.created_at = row.get_int(5);
  t.rotated_at = row.get_optional_int(6);
  t.revoked_at = row.get_optional_int(7);
  return t;
}

Result<std::int64_t> affected(Result<QueryResult>& r) {
  if (!r) return forward_error(r);
  return r->affected_rows;
}

}  // namespace

Status RefreshTokenStore::create(const RefreshTokenRecord& token) {
  if (token.id.empty()) return fail(ErrorKind::kInternal, "refresh token id is empty");
  Result<QueryResult> r = db_.query(
      fmt::format("INSERT INTO refresh_tokens ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", kColumns),
      {token.id, token.user_id, token.family_id, token.token_hash, token.expires_at, token.created_at,
       token.rotated_at, token.revoked_at});
  if (!r) {
    return std::unexpected(detail::name_conflict(
        std::move(r.error()),
        {{"token_hash", "token_hash"}, {"refresh_tokens.id", "id"}, {"refresh_tokens_pkey", "id"}}));
  }
  return {};
}

Result<std::optional<RefreshTokenRecord>> RefreshTokenStore::find_by_hash(std::string_view token_hash) {
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT {} FROM refresh_tokens WHERE token_hash = $1", kColumns), {token_hash});
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<RefreshTokenRecord>();
  return std::optional<RefreshTokenRecord>(from_row(r->rows.front()));
}

Result<bool> RefreshTokenStore::mark_rotated(std::string_view id, std::int64_t now_ms) {
  // One conditional UPDATE: on PostgreSQL a concurrent second UPDATE waits for the first to
  // commit and then re-checks rotated_at; on SQLite writers are serialised.
  Result<QueryResult> r = db_.query(
      "UPDATE refresh_tokens SET rotated_at = $2 WHERE id = $1 AND rotated_at IS NULL AND revoked_at IS NULL",
      {id, now_ms});
  if (!r) return forward_error(r);
  return r->affected_rows == 1;
}

Result<std::int64_t> RefreshTokenStore::revoke_family(std::string_view family_id, std::int64_t now_ms) {
  Result<QueryResult> r =
      db_.query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
                {family_id, now_ms});
  return affected(r);
}

Result<std::int64_t> RefreshTokenStore::revoke_all_for_user(std::string_view user_id, std::int64_t now_ms) {
  Result<QueryResult> r =
      db_.query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                {user_id, now_ms});
  return affected(r);
}

Result<std::int64_t> RefreshTokenStore::delete_expired(std::int64_t before_ms) {
  Result<QueryResult> r = db_.query("DELETE FROM refresh_tokens WHERE expires_at < $1", {before_ms});
  return affected(r);
}

}  // namespace parley::store
