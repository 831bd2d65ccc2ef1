// Usage accounting off the request path: handlers call record() (a mutex-guarded push, no I/O);
// flush() writes everything pending in one transaction; it runs four times a second on a
// background-priority thread (on the ordinary blocking pool while a backlog builds up) and once at
// shutdown. Bounded: past max_pending events, new ones are counted as dropped and
// logged instead of growing memory while the database is down. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/clock.hpp"
#include "services/usage_metrics.hpp"
#include "store/database.hpp"
#include "store/usage_store.hpp"

namespace parley::services {

class UsageRecorder {
 public:
  // `metrics` (may be null) sees every event as it is recorded.
  UsageRecorder(store::Database& db, const Clock& clock, std::size_t max_pending = 200'000,
                UsageMetrics* metrics = nullptr)
      : db_(db), clock_(clock), max_pending_(max_pending), metrics_(metrics) {}

  // Fills created_at; queues the event.
  void record(store::UsageEvent event);
  // BLOCKING: writes the queued events. On failure they are queued again (within the bound).
  Status flush();

  // Events waiting for flush().
  [[nodiscard]] std::size_t pending() const {
    std::lock_guard lock(mutex_);
    return pending_.size();
  }
  [[nodiscard]] std::uint64_t recorded() const { return recorded_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  store::Database& db_;
  const Clock& clock_;
  std::size_t max_pending_;
  UsageMetrics* metrics_;
  mutable std::mutex mutex_;
  std::vector<store::UsageEvent> pending_;
  std::atomic<std::uint64_t> recorded_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace parley::services
