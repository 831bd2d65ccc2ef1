// Refresh tokens (issue 3): opaque tokens stored only as a hash, rotated on every use. All tokens
// descending from one login share a family_id, so reuse of a rotated token can revoke the family.
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kConflict (param
// "token_hash" or "id") for a duplicate; kNotFound from create when the user does not exist;
// kDatabase/kUnavailable otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

struct RefreshTokenRecord {
  std::string id;
  std::string user_id;
  std::string family_id;
  std::string token_hash;       // SHA-256 of the token, hex
  std::int64_t expires_at = 0;  // unix ms
  std::int64_t created_at = 0;
  std::optional<std::int64_t> rotated_at;  // set when exchanged for its successor
  std::optional<std::int64_t> revoked_at;
};

class RefreshTokenStore {
 public:
  explicit RefreshTokenStore(Executor& db) : db_(db) {}

  Status create(const RefreshTokenRecord& token);
  Result<std::optional<RefreshTokenRecord>> find_by_hash(std::string_view token_hash);

  // Claims the token for rotation: sets rotated_at if it is neither rotated nor revoked yet.
  // Returns true for exactly one of any number of concurrent callers; false means the token was
  // already used (a replay) or revoked, or does not exist.
  Result<bool> mark_rotated(std::string_view id, std::int64_t now_ms);

  // Revoke every not yet revoked token of the family / the user; return how many changed.
  Result<std::int64_t> revoke_family(std::string_view family_id, std::int64_t now_ms);
  Result<std::int64_t> revoke_all_for_user(std::string_view user_id, std::int64_t now_ms);

  // Deletes tokens that expired before `before_ms`; returns how many.
  Result<std::int64_t> delete_expired(std::int64_t before_ms);

 private:
  Executor& db_;
};

}  // namespace parley::store
