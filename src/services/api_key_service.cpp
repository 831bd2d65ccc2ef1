#include "services/api_key_service.hpp"

#include "auth/policy.hpp"
#include "crypto/api_key.hpp"
#include "crypto/random.hpp"

namespace parley::services {

LimitSettings key_limits_of(const store::ApiKeyRecord& r) {
  LimitSettings l;
  l.rate_limit_per_minute = r.rate_limit_per_minute;
  l.tokens_per_minute = r.tokens_per_minute;
  l.token_budget = r.token_budget;
  l.spend_budget_nanos = r.spend_budget_nanos;
  l.budget_period = parse_budget_period(r.budget_period).value_or(BudgetPeriod::kMonth);
  return l;
}

ApiKeyService::ApiKeyService(store::Database& db, const Clock& clock, AuditLog& audit,
                             std::chrono::milliseconds cache_ttl)
    : db_(db), clock_(clock), audit_(audit), cache_ttl_(cache_ttl) {}

Result<CreatedApiKey> ApiKeyService::create(const auth::Principal& who, NewApiKey input,
                                            const RequestMeta& meta) {
  std::string owner = input.user_id.value_or(who.user_id);
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, owner); !s) return std::unexpected(s.error());
  if (input.expires_at_ms && *input.expires_at_ms <= clock_.now_ms()) {
    return validation("expires_at", "expires_at must be in the future");
  }
  CreatedApiKey out;
  out.key = crypto::generate_service_key();
  store::ApiKeyRecord& r = out.record;
  r.id = crypto::new_public_id();
  r.user_id = owner;
  r.name = input.name;
  r.key_hash = crypto::hash_service_key(out.key);
  r.key_prefix = crypto::service_key_display_prefix(out.key);
  r.rate_limit_per_minute = input.limits.rate_limit_per_minute;
  r.tokens_per_minute = input.limits.tokens_per_minute;
  r.token_budget = input.limits.token_budget;
  r.spend_budget_nanos = input.limits.spend_budget_nanos;
  r.budget_period = std::string(budget_period_name(input.limits.budget_period));
  r.is_active = true;
  r.expires_at = input.expires_at_ms;
  r.created_at = clock_.now_ms();
  store::ApiKeyStore keys(db_);
  auto created = keys.create(r);
  if (!created) {
    if (created.error().kind == ErrorKind::kNotFound) return fail(ErrorKind::kNotFound, "User not found");
    return std::unexpected(created.error());
  }
  out.record = *created;
  audit_.record(who.user_id, "api_key.created", "api_key", out.record.id, meta);
  return out;
}

Result<store::Page<store::ApiKeyRecord>> ApiKeyService::list(const auth::Principal& who, bool all_users,
                                                             store::PageRequest page) {
  store::ApiKeyStore keys(db_);
  if (all_users) {
    if (auto s = auth::authorize(who, auth::Operation::kListAllKeys); !s) return std::unexpected(s.error());
    return keys.list_all(page);
  }
  return keys.list_for_user(who.user_id, page);
}

Result<store::ApiKeyRecord> ApiKeyService::get(const auth::Principal& who, std::string_view key_id) {
  store::ApiKeyStore keys(db_);
  auto found = keys.get_by_id(key_id);
  if (!found) return std::unexpected(found.error());
  if (!*found) return fail(ErrorKind::kNotFound, "API key not found");
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, (*found)->user_id); !s) {
    return std::unexpected(s.error());
  }
  return std::move(**found);
}

Result<store::ApiKeyRecord> ApiKeyService::update(const auth::Principal& who, std::string_view key_id,
                                                  ApiKeyPatch patch, const RequestMeta& meta) {
  auto current = get(who, key_id);
  if (!current) return std::unexpected(current.error());
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, current->user_id); !s) {
    return std::unexpected(s.error());
  }
  if (current->revoked_at && patch.is_active.value_or(false)) {
    return fail(ErrorKind::kConflict, "A revoked key cannot be re-activated", std::string("is_active"));
  }
  store::ApiKeyStore keys(db_);
  store::ApiKeyUpdate update{patch.name, patch.is_active, patch.limits.rate_limit_per_minute};
  update.tokens_per_minute = patch.limits.tokens_per_minute;
  update.token_budget = patch.limits.token_budget;
  update.spend_budget_nanos = patch.limits.spend_budget_nanos;
  if (patch.limits.budget_period)
    update.budget_period = std::string(budget_period_name(*patch.limits.budget_period));
  auto updated = keys.update(key_id, update);
  if (!updated) return std::unexpected(updated.error());
  if (!*updated) return fail(ErrorKind::kNotFound, "API key not found");
  forget(key_id);
  if (patch.is_active && *patch.is_active != current->is_active) {
    audit_.record(who.user_id, *patch.is_active ? "api_key.activated" : "api_key.deactivated", "api_key",
                  std::string(key_id), meta);
  }
  return std::move(**updated);
}

Status ApiKeyService::revoke(const auth::Principal& who, std::string_view key_id, const RequestMeta& meta) {
  auto current = get(who, key_id);
  if (!current) return std::unexpected(current.error());
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, current->user_id); !s) return s;
  store::ApiKeyStore keys(db_);
  auto revoked = keys.revoke(key_id, clock_.now_ms());
  if (!revoked) return std::unexpected(revoked.error());
  if (!*revoked) return fail(ErrorKind::kNotFound, "API key not found");
  forget(key_id);
  audit_.record(who.user_id, "api_key.revoked", "api_key", std::string(key_id), meta);
  return {};
}

void ApiKeyService::forget(std::string_view key_id) {
  forget_local(key_id);
  if (on_forget_) on_forget_(key_id);
}

void ApiKeyService::forget_all() {
  std::lock_guard lock(mutex_);
  ++generation_;
  by_hash_.clear();
}

void ApiKeyService::forget_local(std::string_view key_id) {
  std::lock_guard lock(mutex_);
  ++generation_;
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    it = it->second.identity.key_id == key_id ? by_hash_.erase(it) : std::next(it);
  }
}

std::optional<KeyIdentity> ApiKeyService::cached(std::string_view key) {
  std::string hash = crypto::hash_service_key(key);
  std::lock_guard lock(mutex_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  if (std::chrono::steady_clock::now() - it->second.loaded >= cache_ttl_) {
    by_hash_.erase(it);
    return std::nullopt;
  }
  return it->second.identity;
}

Result<KeyIdentity> ApiKeyService::load(std::string_view key) {
  std::string hash = crypto::hash_service_key(key);
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    generation = generation_;
  }
  store::ApiKeyStore keys(db_);
  auto found = keys.get_by_hash(hash);
  if (!found) return std::unexpected(found.error());
  KeyIdentity id;
  if (*found) {
    const auto& r = **found;
    id.key_id = r.id;
    id.user_id = r.user_id;
    id.usable = r.is_active && !r.revoked_at;
    id.expires_at = r.expires_at;
    id.limits = key_limits_of(r);
  }
  std::lock_guard lock(mutex_);
  // A revocation or change on this instance while we read must not be undone by caching the old row.
  if (generation != generation_) return id;
  if (by_hash_.size() >= 100'000) by_hash_.clear();  // bounded: unknown keys cannot grow it forever
  by_hash_[hash] = CacheEntry{id, std::chrono::steady_clock::now()};
  return id;
}

void ApiKeyService::note_use(const std::string& key_id) {
  std::int64_t now = clock_.now_ms();
  std::lock_guard lock(mutex_);
  pending_uses_[key_id] = now;
}

Status ApiKeyService::flush_last_used() {
  std::vector<std::pair<std::string, std::int64_t>> uses;
  {
    std::lock_guard lock(mutex_);
    uses.assign(pending_uses_.begin(), pending_uses_.end());
    pending_uses_.clear();
  }
  if (uses.empty()) return {};
  store::ApiKeyStore keys(db_);
  return keys.update_last_used(uses);
}

}  // namespace parley::services
