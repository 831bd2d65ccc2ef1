// Slows failed logins down per (username, client address) pair and per client address, within a
// sliding window (OWASP's guidance against both guessing and lock-out): past `max` failures in the
// window a counter asks the client to wait 1 s after its last failure, doubling with each further
// failure up to the window. A name is never locked as such: its owner logs in from an address that
// did not fail, so nobody can lock anyone out by failing on purpose. Registrations are counted per
// client address in a window of their own (every attempt, taken names included, so that neither
// account farming nor probing which names exist is free). In memory, per instance. Thread-safe.
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
  std::size_t max_failures_per_user = 5;  // per (username, address) pair
  std::size_t max_failures_per_address = 20;
  std::chrono::seconds window{900};
  std::size_t max_registrations_per_address = 20;
  std::chrono::seconds registration_window{3600};
  std::size_t max_tracked_keys = 100'000;  // memory bound; oldest entries are dropped beyond it
};

// Which counter stopped a login, and for how long.
struct LoginBlock {
  std::chrono::seconds retry_after;
  std::size_t limit;  // that counter's maximum (per username and address, or per address)
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
  // Counts a registration attempt from `address` unless the address has used its allowance, in
  // which case nothing is counted and the answer says when the oldest attempt leaves the window.
  std::optional<LoginBlock> admit_registration(std::string_view address,
                                               Clock::time_point now = Clock::now());
  // A successful login clears that pair's failures (not the address's).
  void record_success(std::string_view username, std::string_view address);

 private:
  std::optional<std::chrono::seconds> check(const std::string& key, std::size_t max, Clock::time_point now);
  static void prune(std::deque<Clock::time_point>& q, Clock::time_point now, std::chrono::seconds window);
  void make_room(Clock::time_point now);

  LoginLimits limits_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::deque<Clock::time_point>> failures_;
};

}  // namespace parley::services
