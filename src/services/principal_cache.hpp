// Recently seen users (role, active flag, username) keyed by id, so authenticating a request
// needs no database read once warm. Entries expire after `ttl`: that bounds how long a change made
// on another instance (deactivation, deletion, role change) takes to apply here. Changes made on
// this instance invalidate the entry at once. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/principal.hpp"
#include "core/limits.hpp"

namespace parley::services {

struct CachedUser {
  std::string username;
  auth::Role role = auth::Role::kUser;
  bool active = false;   // false also for a deleted user (negative entry)
  LimitSettings limits;  // the user's own limits (docs/LIMITS.md)
};

class PrincipalCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit PrincipalCache(std::chrono::milliseconds ttl, std::size_t max_entries = 100'000)
      : ttl_(ttl), max_entries_(max_entries) {}

  std::optional<CachedUser> get(std::string_view user_id, Clock::time_point now = Clock::now());
  void put(std::string_view user_id, CachedUser user, Clock::time_point now = Clock::now());
  // Drops the user here and tells the other instances (set_on_invalidate).
  void invalidate(std::string_view user_id);
  // Drops the user here only (a change another instance announced); clear(): everyone.
  void invalidate_local(std::string_view user_id);
  void clear();
  // Called after each invalidate(), e.g. to publish it to the other instances. Set once at start.
  void set_on_invalidate(std::function<void(std::string_view user_id)> listener) {
    on_invalidate_ = std::move(listener);
  }

  // For a value read from the database: take generation() before the read and pass it here; the
  // value is cached only if nothing was invalidated meanwhile, so a read that raced with a
  // deactivation or deletion cannot put the old state back.
  std::uint64_t generation();
  void put_if_unchanged(std::string_view user_id, CachedUser user, std::uint64_t generation,
                        Clock::time_point now = Clock::now());

 private:
  struct Entry {
    CachedUser user;
    Clock::time_point loaded;
  };
  std::chrono::milliseconds ttl_;
  std::size_t max_entries_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::uint64_t generation_ = 0;  // bumped by every invalidate()
  std::function<void(std::string_view)> on_invalidate_;
};

}  // namespace parley::services
