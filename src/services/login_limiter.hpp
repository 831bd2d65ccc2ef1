// Limits failed logins per username and per client address within a sliding window, so password
// guessing is slow whichever of the two an attacker varies. In memory, per instance.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace parley::services {

struct LoginLimits {
  std::size_t max_failures_per_user = 5;
  std::size_t max_failures_per_address = 20;
  std::chrono::seconds window{900};
  std::size_t max_tracked_keys = 100'000;  // memory bound; oldest entries are dropped beyond it
};

// Which counter stopped a login, and for how long.
struct LoginBlock {
  std::chrono::seconds retry_after;
  std::size_t limit;  // that counter's maximum (per username or per address)
};

class LoginLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LoginLimiter(LoginLimits limits) : limits_(limits) {}

  // When either counter is exhausted, how long until the next attempt is allowed.
  std::optional<std::chrono::seconds> blocked_for(std::string_view username, std::string_view address,
                                                  Clock::time_point now = Clock::now());
  // The same, naming the exhausted counter's limit (the longer wait when both are).
  std::optional<LoginBlock> block(std::string_view username, std::string_view address,
                                  Clock::time_point now = Clock::now());
  void record_failure(std::string_view username, std::string_view address,
                      Clock::time_point now = Clock::now());
  // A successful login clears the username's failures (not the address's).
  void record_success(std::string_view username);

 private:
  std::optional<std::chrono::seconds> check(const std::string& key, std::size_t max, Clock::time_point now);
  void prune(std::deque<Clock::time_point>& q, Clock::time_point now) const;

  LoginLimits limits_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::deque<Clock::time_point>> failures_;
};

}  // namespace parley::services
