// Service API keys (issue 3, seed 003). Only the key's SHA-256 (key_hash) and a display prefix are
// stored; the key itself never reaches the store. Revoking keeps the row (is_active = 0,
// revoked_at set) so listings and usage history still name it.
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kConflict (param
// "key_hash" or "id") for a duplicate; kNotFound from create when the owner does not exist;
// kDatabase/kUnavailable otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.hpp"
#include "store/database.hpp"
#include "store/page.hpp"

namespace parley::store {

struct ApiKeyRecord {
  std::string id;
  std::string user_id;
  std::string name;
  std::string key_hash;                               // SHA-256 of the key, hex
  std::string key_prefix;                             // for display ("ai_AbCd")
  std::optional<std::int64_t> rate_limit_per_minute;  // std::nullopt: the deployment's default
  bool is_active = true;
  std::optional<std::int64_t> expires_at;  // unix ms
  std::optional<std::int64_t> last_used_at;
  std::int64_t created_at = 0;
  std::optional<std::int64_t> revoked_at;
  // Limits beside rate_limit_per_minute (migration 0007; docs/LIMITS.md); nullopt: none.
  std::optional<std::int64_t> tokens_per_minute;  // nullopt: the deployment's default
  std::optional<std::int64_t> token_budget;
  std::optional<std::int64_t> spend_budget_nanos;
  std::string budget_period = "month";  // day | month | total
};

// Fields to change; unset fields keep their value. rate_limit_per_minute = std::optional(
// std::nullopt) returns the key to the deployment's default.
struct ApiKeyUpdate {
  std::optional<std::string> name;
  std::optional<bool> is_active;
  std::optional<std::optional<std::int64_t>> rate_limit_per_minute;
  std::optional<std::optional<std::int64_t>> tokens_per_minute;
  std::optional<std::optional<std::int64_t>> token_budget;
  std::optional<std::optional<std::int64_t>> spend_budget_nanos;
  std::optional<std::string> budget_period;
};

class ApiKeyStore {
 public:
  explicit ApiKeyStore(Executor& db) : db_(db) {}

  Result<ApiKeyRecord> create(const ApiKeyRecord& key);
  Result<std::optional<ApiKeyRecord>> get_by_id(std::string_view id);
  Result<std::optional<ApiKeyRecord>> get_by_hash(std::string_view key_hash);

  // Newest first (created_at descending, then id), with the total.
  Result<Page<ApiKeyRecord>> list_for_user(std::string_view user_id, PageRequest page);
  Result<Page<ApiKeyRecord>> list_all(PageRequest page);

  // std::nullopt when no key has this id.
  Result<std::optional<ApiKeyRecord>> update(std::string_view id, const ApiKeyUpdate& patch);

  // Deactivates the key and stamps revoked_at (the first revocation's time is kept). false when
  // no key has this id.
  Result<bool> revoke(std::string_view id, std::int64_t now_ms);

  // Writes buffered last-use times in one transaction: (key id, unix ms) pairs. A time never moves
  // last_used_at backwards; unknown ids are ignored.
  Status update_last_used(std::span<const std::pair<std::string, std::int64_t>> uses);

 private:
  Result<Page<ApiKeyRecord>> list_where(std::string_view where, std::span<const Value> where_params,
                                        PageRequest page);

  Executor& db_;
};

}  // namespace parley::store
