// The provider key vault's table (issue 4): one Fernet token per (user, provider). The store only
// moves opaque tokens and display hints; encryption, validation and the cache are the vault
// service's job (services/vault_service.hpp), so no plaintext key ever reaches this layer.
//
// BLOCKING (see database.hpp); holds a reference to its Executor, which must outlive it. Errors:
// kNotFound from upsert/insert_if_absent when no user has this id; kDatabase/kUnavailable
// otherwise. Messages never contain tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

struct ProviderKeyRecord {
  std::string user_id;
  std::string provider;         // "openai", "mock", ...
  std::string token;            // Fernet token of the key
  std::string key_hint;         // masked form for display
  std::int64_t created_at = 0;  // unix ms, first time a key was set for this provider
  std::int64_t updated_at = 0;  // unix ms, last time the key was set
};

// Where a batch of list_tokens() starts: strictly after this (user_id, provider).
struct ProviderKeyCursor {
  std::string user_id;
  std::string provider;
};

class ProviderKeyStore {
 public:
  explicit ProviderKeyStore(Executor& db) : db_(db) {}

  Result<std::optional<ProviderKeyRecord>> get(std::string_view user_id, std::string_view provider);

  // Every provider key of one user, by provider name.
  Result<std::vector<ProviderKeyRecord>> list_for_user(std::string_view user_id);

  // Inserts the row, or replaces token, key_hint and updated_at of an existing one (created_at
  // is kept). Returns the row as stored.
  Result<ProviderKeyRecord> upsert(const ProviderKeyRecord& key);

  // Inserts the row unless one exists for (user_id, provider); true when inserted. Atomic.
  Result<bool> insert_if_absent(const ProviderKeyRecord& key);

  // false when there was no such row.
  Result<bool> remove(std::string_view user_id, std::string_view provider);

  // Up to `limit` rows (clamped to 1..1000) ordered by (user_id, provider), starting after
  // `after` (from the beginning when unset). Keyset pagination: rows updated or deleted meanwhile
  // never make a walk skip or repeat the others, so a walk can be interrupted and restarted.
  Result<std::vector<ProviderKeyRecord>> list_batch(const std::optional<ProviderKeyCursor>& after,
                                                    std::int64_t limit);

  // Compare-and-set for re-encryption: replaces the token only while it still equals
  // `old_token` (a concurrent set or delete wins). key_hint and updated_at are left alone (the key
  // is unchanged). true when the row was updated.
  Result<bool> update_token_if_unchanged(std::string_view user_id, std::string_view provider,
                                         std::string_view old_token, std::string_view new_token);

  Result<std::int64_t> count();

 private:
  Executor& db_;
};

}  // namespace parley::store
