// Internal to the store module: a bounded pool of driver sessions shared by both backends.
//
// At most `capacity` sessions exist at once; they are created lazily by the factory. acquire()
// hands out an idle session, creates one if below capacity, or waits (bounded) for one to be
// returned. A Lease returns its session on destruction; a session that is no longer healthy (lost
// connection, stuck in a transaction) is closed instead, so the next acquire() makes a new one.
// Thread-safe. The pool must outlive its leases.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace parley::store::detail {

// Session requirements: bool reusable() (cheap check before handing out an idle session; may read
// pending input to notice a closed socket) and bool healthy() (may it go back to the pool).
template <class Session>
class Pool {
 public:
  using Factory = std::function<Result<std::unique_ptr<Session>>()>;

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Session> session) : pool_(pool), session_(std::move(session)) {}
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), session_(std::move(other.session_)) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (pool_ != nullptr) pool_->release(std::move(session_));
    }

    Session& operator*() const noexcept { return *session_; }
    Session* operator->() const noexcept { return session_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Session> session_;
  };

  Pool(std::size_t capacity, std::chrono::milliseconds acquire_timeout, Factory factory)
      : capacity_(capacity), acquire_timeout_(acquire_timeout), factory_(std::move(factory)) {}
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  Result<Lease> acquire() {
    const auto deadline = std::chrono::steady_clock::now() + acquire_timeout_;
    std::unique_lock lock(mutex_);
    for (;;) {
      while (!idle_.empty()) {
        std::unique_ptr<Session> session = std::move(idle_.back());
        idle_.pop_back();
        if (session->reusable()) return Lease(this, std::move(session));
        // Closed while idle (server restart, idle timeout): drop it and make room for a new one.
        --open_;
        lock.unlock();
        session.reset();
        lock.lock();
      }
      if (open_ < capacity_) {
        ++open_;
        lock.unlock();
        Result<std::unique_ptr<Session>> created = factory_();
        if (!created) {
          lock.lock();
          --open_;
          cv_.notify_one();
          return std::unexpected(std::move(created.error()));
        }
        return Lease(this, std::move(*created));
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() && open_ >= capacity_) {
        return fail(ErrorKind::kUnavailable,
                    fmt::format("no database connection became free within {} ms (pool size {})",
                                acquire_timeout_.count(), capacity_));
      }
    }
  }

  // Sessions currently open (idle or leased). For tests and metrics.
  std::size_t open_count() const {
    std::lock_guard lock(mutex_);
    return open_;
  }

 private:
  void release(std::unique_ptr<Session> session) {
    const bool keep = session && session->healthy();
    if (!keep) session.reset();  // close before taking the lock: closing may touch the network
    std::lock_guard lock(mutex_);
    if (keep) {
      idle_.push_back(std::move(session));
    } else {
      --open_;
    }
    cv_.notify_one();
  }

  const std::size_t capacity_;
  const std::chrono::milliseconds acquire_timeout_;
  const Factory factory_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Session>> idle_;
  std::size_t open_ = 0;
};

}  // namespace parley::store::detail
