// Service API keys (seed 003): "ai_" + 40 base62 characters (≈238 random bits), returned once at
// creation, stored as SHA-256 with a display prefix. Authentication looks keys up in an in-memory
// cache (no database read per request once warm); a key revoked or changed on this instance is
// dropped from the cache at once; entries are re-read after `cache_ttl` so changes made on another
// instance apply within that bound. last_used_at is kept in memory and written in batches by
// flush_last_used() (called periodically), never once per request. Thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "services/audit_log.hpp"
#include "services/context.hpp"
#include "store/api_key_store.hpp"
#include "store/database.hpp"

namespace parley::services {

struct NewApiKey {
  std::string name;
  LimitSettings limits;
  std::optional<std::int64_t> expires_at_ms;
  std::optional<std::string> user_id;  // admin creating a key for someone else
};

struct CreatedApiKey {
  store::ApiKeyRecord record;
  std::string key;  // shown once
};

struct ApiKeyPatch {
  std::optional<std::string> name;
  std::optional<bool> is_active;
  LimitsPatch limits;
};

// What authentication needs of a key; kept in the cache.
struct KeyIdentity {
  std::string key_id;
  std::string user_id;
  bool usable = false;  // active, not revoked, not expired (expiry re-checked on each use)
  std::optional<std::int64_t> expires_at;
  LimitSettings limits;  // as stored: nullopt rpm/tpm fall back to the deployment's defaults
};

// A stored key's limits as one value.
LimitSettings key_limits_of(const store::ApiKeyRecord& r);

class ApiKeyService {
 public:
  ApiKeyService(store::Database& db, const Clock& clock, AuditLog& audit,
                std::chrono::milliseconds cache_ttl);

  Result<CreatedApiKey> create(const auth::Principal& who, NewApiKey input, const RequestMeta& meta);
  Result<store::Page<store::ApiKeyRecord>> list(const auth::Principal& who, bool all_users,
                                                store::PageRequest page);
  Result<store::ApiKeyRecord> get(const auth::Principal& who, std::string_view key_id);
  Result<store::ApiKeyRecord> update(const auth::Principal& who, std::string_view key_id, ApiKeyPatch patch,
                                     const RequestMeta& meta);
  Status revoke(const auth::Principal& who, std::string_view key_id, const RequestMeta& meta);

  // Cache-only lookup: nullopt on a miss (then call load()). Never blocks on I/O.
  std::optional<KeyIdentity> cached(std::string_view key);
  // BLOCKING: reads the key from the database and caches the answer (also a negative one).
  Result<KeyIdentity> load(std::string_view key);
  // Records a use for last_used_at (memory only).
  void note_use(const std::string& key_id);
  // BLOCKING: writes pending last-use times in one transaction.
  Status flush_last_used();

  // Drops a key from the cache here only (a change another instance announced); all of them.
  void forget_local(std::string_view key_id);
  void forget_all();
  // Called after a key changes here, e.g. to publish it to the other instances. Set once at start.
  void set_on_forget(std::function<void(std::string_view key_id)> listener) {
    on_forget_ = std::move(listener);
  }

 private:
  void forget(std::string_view key_id);
  std::function<void(std::string_view)> on_forget_;

  store::Database& db_;
  const Clock& clock_;
  AuditLog& audit_;
  std::chrono::milliseconds cache_ttl_;

  struct CacheEntry {
    KeyIdentity identity;
    std::chrono::steady_clock::time_point loaded;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, CacheEntry> by_hash_;         // key hash → identity
  std::unordered_map<std::string, std::int64_t> pending_uses_;  // key id → last use (ms)
  std::uint64_t generation_ = 0;  // bumped by forget(): a load() that raced with it is not cached
};

}  // namespace parley::services
