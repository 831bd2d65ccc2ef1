// A fixed pool of threads for work that blocks: database calls, password hashing, file I/O.
// run() runs a callable on the pool and resumes the awaiting coroutine on its own executor with
// the result, so event-loop threads never block. An exception thrown by the callable is rethrown
// in the awaiting coroutine.
#pragma once

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

class BlockingPool {
 public:
  explicit BlockingPool(std::size_t threads) : pool_(threads) {}
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
      boost::asio::post(self->pool_, [handler = std::move(handler), work = std::move(work), fn]() mutable {
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
};

}  // namespace parley::http
