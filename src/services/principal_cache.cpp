#include "services/principal_cache.hpp"

namespace parley::services {

std::optional<CachedUser> PrincipalCache::get(std::string_view user_id, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(std::string(user_id));
  if (it == entries_.end()) return std::nullopt;
  if (now - it->second.loaded >= ttl_) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.user;
}

void PrincipalCache::put(std::string_view user_id, CachedUser user, Clock::time_point now) {
  if (ttl_.count() == 0) return;
  std::lock_guard lock(mutex_);
  if (entries_.size() >= max_entries_) entries_.clear();  // bounded; refills from the database
  entries_[std::string(user_id)] = Entry{std::move(user), now};
}

void PrincipalCache::invalidate(std::string_view user_id) {
  invalidate_local(user_id);
  if (on_invalidate_) on_invalidate_(user_id);
}

void PrincipalCache::invalidate_local(std::string_view user_id) {
  std::lock_guard lock(mutex_);
  entries_.erase(std::string(user_id));
  ++generation_;
}

void PrincipalCache::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
  ++generation_;
}

std::uint64_t PrincipalCache::generation() {
  std::lock_guard lock(mutex_);
  return generation_;
}

void PrincipalCache::put_if_unchanged(std::string_view user_id, CachedUser user, std::uint64_t generation,
                                      Clock::time_point now) {
  if (ttl_.count() == 0) return;
  std::lock_guard lock(mutex_);
  if (generation != generation_) return;
  if (entries_.size() >= max_entries_) entries_.clear();
  entries_[std::string(user_id)] = Entry{std::move(user), now};
}

}  // namespace parley::services
