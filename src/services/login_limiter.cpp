#include "services/login_limiter.hpp"

#include <algorithm>
#include <cctype>

namespace parley::services {
namespace {
std::string pair_key(std::string_view username, std::string_view address) {
  std::string key = "p:";
  key.append(address).push_back('\n');
  for (char c : username) key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return key;
}
std::string address_key(std::string_view address) {
  return "a:" + std::string(address);
}
std::string registration_key(std::string_view address) {
  return "r:" + std::string(address);
}
}  // namespace

void LoginLimiter::prune(std::deque<Clock::time_point>& q, Clock::time_point now,
                         std::chrono::seconds window) {
  while (!q.empty() && now - q.front() >= window) q.pop_front();
}

void LoginLimiter::make_room(Clock::time_point now) {
  if (failures_.size() < limits_.max_tracked_keys) return;
  // Drop entries whose window has passed; if that is not enough, start over (fail open on memory
  // pressure rather than grow without bound).
  const auto longest = std::max(limits_.window, limits_.registration_window);
  for (auto it = failures_.begin(); it != failures_.end();) {
    prune(it->second, now, longest);
    it = it->second.empty() ? failures_.erase(it) : std::next(it);
  }
  if (failures_.size() >= limits_.max_tracked_keys) failures_.clear();
}

std::optional<std::chrono::seconds> LoginLimiter::check(const std::string& key, std::size_t max,
                                                        Clock::time_point now) {
  auto it = failures_.find(key);
  if (it == failures_.end()) return std::nullopt;
  prune(it->second, now, limits_.window);
  max = std::max<std::size_t>(max, 1);
  const std::size_t count = it->second.size();
  if (count < max) return std::nullopt;
  // 1 s after the last failure at `max` failures, doubling with each one past it, at most until
  // enough failures leave the window to bring the count below `max`.
  const std::size_t doublings = std::min<std::size_t>(count - max, 20);
  const auto growing = std::chrono::seconds(std::int64_t{1} << doublings);
  const auto until_window = it->second[count - max] + limits_.window;
  const auto until = std::min(it->second.back() + growing, until_window);
  if (until <= now) return std::nullopt;
  return std::max(std::chrono::ceil<std::chrono::seconds>(until - now), std::chrono::seconds(1));
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
  auto a = check(pair_key(username, address), limits_.max_failures_per_user, now);
  auto b = check(address_key(address), limits_.max_failures_per_address, now);
  if (a && (!b || *a >= *b)) return LoginBlock{*a, limits_.max_failures_per_user};
  if (b) return LoginBlock{*b, limits_.max_failures_per_address};
  return std::nullopt;
}

void LoginLimiter::record_failure(std::string_view username, std::string_view address,
                                  Clock::time_point now) {
  std::lock_guard lock(mutex_);
  make_room(now);
  for (const std::string& key : {pair_key(username, address), address_key(address)}) {
    auto& q = failures_[key];
    prune(q, now, limits_.window);
    q.push_back(now);
  }
}

std::optional<LoginBlock> LoginLimiter::admit_registration(std::string_view address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const std::size_t max = std::max<std::size_t>(limits_.max_registrations_per_address, 1);
  auto it = failures_.find(registration_key(address));
  if (it != failures_.end()) {
    prune(it->second, now, limits_.registration_window);
    if (it->second.size() >= max) {
      const auto until = it->second[it->second.size() - max] + limits_.registration_window;
      return LoginBlock{
          std::max(std::chrono::ceil<std::chrono::seconds>(until - now), std::chrono::seconds(1)), max};
    }
  }
  make_room(now);
  failures_[registration_key(address)].push_back(now);
  return std::nullopt;
}

void LoginLimiter::record_success(std::string_view username, std::string_view address) {
  std::lock_guard lock(mutex_);
  failures_.erase(pair_key(username, address));
}

}  // namespace parley::services
