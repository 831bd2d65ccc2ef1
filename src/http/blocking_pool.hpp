// A fixed pool of threads for work that blocks: database calls, password hashing, file I/O.
// run() moves a callable onto the pool and resumes the awaiting coroutine on its own executor with
// the result, so event-loop threads never block. An exception thrown by the callable is rethrown
// in the awaiting coroutine.
//
// A background pool runs its threads at the lowest CPU priority (Linux SCHED_IDLE): bookkeeping
// that may lag — usage rows, last-used times — then never delays an event loop the kernel would
// otherwise make wait for the end of the writer's time slice.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace parley::http {

enum class PoolPriority { kNormal, kBackground };

class BlockingPool {
 public:
  explicit BlockingPool(std::size_t threads, PoolPriority priority = PoolPriority::kNormal)
      : pool_(threads), background_(priority == PoolPriority::kBackground) {}
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;
  ~BlockingPool() { stop(); }

  template <class F>
  auto run(F fn) -> boost::asio::awaitable<std::invoke_result_t<F&>> {
    using R = std::invoke_result_t<F&>;
    co_return co_await boost::asio::co_spawn(
        pool_.get_executor(),
        [fn = std::move(fn), background = background_]() mutable -> boost::asio::awaitable<R> {
          if (background) enter_background_priority();
          co_return fn();
        },
        boost::asio::use_awaitable);
  }

  // Lets queued work finish, then joins the threads. Idempotent.
  void stop() { pool_.join(); }

 private:
  // Best effort, once per thread: without the policy the work still runs, at normal priority.
  static void enter_background_priority() noexcept {
    thread_local bool entered = false;
    if (entered) return;
    entered = true;
#ifdef SCHED_IDLE
    sched_param param{};
    (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
#endif
  }

  boost::asio::thread_pool pool_;
  bool background_;
};

}  // namespace parley::http
