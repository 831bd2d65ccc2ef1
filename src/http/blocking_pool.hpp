// A fixed pool of threads for work that blocks: database calls, password hashing, file I/O.
// run() runs a callable on the pool and resumes the awaiting coroutine on its own executor with
// the result, so event-loop threads never block. An exception thrown by the callable is rethrown
// in the awaiting coroutine.
//
// A background pool runs its threads at the lowest nice level (19): bookkeeping that may lag —
// usage rows, last-used times — then rarely delays an event loop the kernel would otherwise make
// wait for the end of the writer's time slice. Not SCHED_IDLE: a thread of that class gets no CPU
// at all while the machine is busy, and one starved inside a database write holds the write lock
// that every other writer then waits for (a usage batch stuck for seconds under load).
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <exception>
#include <optional>
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

  // `fn` captures by reference (the awaiting coroutine's frame outlives the call) or holds only
  // trivially destructible state: GCC 12 destroys twice a lambda with by-value captures of, say, a
  // std::string that is created inside a co_await expression (docs/ARCHITECTURE.md, "Coroutines").
  // The static_assert keeps such a call from compiling.
  template <class F>
  auto run(F fn) -> boost::asio::awaitable<std::invoke_result_t<F&>> {
    static_assert(std::is_trivially_destructible_v<F>,
                  "BlockingPool::run: capture by reference; by-value captures with destructors are "
                  "miscompiled by GCC 12 inside co_await (docs/ARCHITECTURE.md, Coroutines)");
    using R = std::invoke_result_t<F&>;
    Start<F, R> start{this};
    std::optional<R> result =
        co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                             void(std::exception_ptr, std::optional<R>)>(
            start, boost::asio::use_awaitable, &fn);
    co_return std::move(*result);
  }

  // Lets queued work finish, then joins the threads. Idempotent.
  void stop() { pool_.join(); }

 private:
  // Best effort, once per thread: without the policy the work still runs, at normal priority.
  static void enter_background_priority() noexcept {
    thread_local bool entered = false;
    if (entered) return;
    entered = true;
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
  }

  // Runs *fn on a pool thread, then completes the awaiting coroutine's handler on that coroutine's
  // own executor (never on the pool thread). The work guard keeps its event loop from running out
  // of work meanwhile. No coroutine here: plain callbacks, nothing for GCC 12 to miscompile.
  template <class F, class R>
  struct Start {
    BlockingPool* self;
    template <class Handler>
    void operator()(Handler handler, F* fn) const {
      auto home = boost::asio::get_associated_executor(handler);
      auto work = boost::asio::prefer(home, boost::asio::execution::outstanding_work.tracked);
      boost::asio::post(self->pool_, [handler = std::move(handler), work = std::move(work), fn,
                                      background = self->background_]() mutable {
        if (background) enter_background_priority();
        std::exception_ptr error;
        std::optional<R> result;
        try {
          result.emplace((*fn)());
        } catch (...) {
          error = std::current_exception();
        }
        auto target = work;
        boost::asio::post(
            target, [handler = std::move(handler), work = std::move(work), error,
                     result = std::move(result)]() mutable { std::move(handler)(error, std::move(result)); });
      });
    }
  };

  boost::asio::thread_pool pool_;
  bool background_;
};

}  // namespace parley::http
