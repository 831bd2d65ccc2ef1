#include "services/login_limiter.hpp"

#include <algorithm>
#include <cctype>

namespace parley::services {
namespace {
std::string user_key(std::string_view username) {
  std::string key = "u:";
  for (char c : username) key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return key;
}
std::string address_key(std::string_view address) {
  return "a:" + std::string(address);
}
}  // namespace

void LoginLimiter::prune(std::deque<Clock::time_point>& q, Clock::time_point now) const {
  while (!q.empty() && now - q.front() >= limits_.window) q.pop_front();
}

std::optional<std::chrono::seconds> LoginLimiter::check(const std::string& key, std::size_t max,
                                                        Clock::time_point now) {
  auto it = failures_.find(key);
  if (it == failures_.end()) return std::nullopt;
  prune(it->second, now);
  max = std::max<std::size_t>(max, 1);
  if (it->second.size() < max) return std::nullopt;
  // Allowed again once enough failures have left the window to bring the count below `max` (more
  // than `max` can be recorded when attempts race); the oldest leaving may not be enough.
  auto wait =
      std::chrono::ceil<std::chrono::seconds>(it->second[it->second.size() - max] + limits_.window - now);
  return std::max(wait, std::chrono::seconds(1));
}

std::optional<std::chrono::seconds> LoginLimiter::blocked_for(std::string_view username,
                                                              std::string_view address,
                                                              Clock::time_point now) {
  auto b = block(username, address, now);
  if (!b) return std::nullopt;
  return b->retry_after;
}

std::optional<LoginBlock> LoginLimiter::block(std::string_view username, std::string_view address,
                                              Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto a = check(user_key(username), limits_.max_failures_per_user, now);
  auto b = check(address_key(address), limits_.max_failures_per_address, now);
  if (a && (!b || *a >= *b)) return LoginBlock{*a, limits_.max_failures_per_user};
  if (b) return LoginBlock{*b, limits_.max_failures_per_address};
  return std::nullopt;
}

void LoginLimiter::record_failure(std::string_view username, std::string_view address,
                                  Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (failures_.size() >= limits_.max_tracked_keys) {
    // Drop entries whose window has passed; if that is not enough, start over (fail open on memory
    // pressure rather than grow without bound).
    for (auto it = failures_.begin(); it != failures_.end();) {
      prune(it->second, now);
      it = it->second.empty() ? failures_.erase(it) : std::next(it);
    }
    if (failures_.size() >= limits_.max_tracked_keys) failures_.clear();
  }
  for (const std::string& key : {user_key(username), address_key(address)}) {
    auto& q = failures_[key];
    prune(q, now);
    q.push_back(now);
  }
}

void LoginLimiter::record_success(std::string_view username) {
  std::lock_guard lock(mutex_);
  failures_.erase(user_key(username));
}

}  // namespace parley::services
