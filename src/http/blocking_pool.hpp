// A fixed pool of threads for work that blocks: database calls, password hashing, file I/O.
// run() moves a callable onto the pool and resumes the awaiting coroutine on its own executor with
// the result, so event-loop threads never block. An exception thrown by the callable is rethrown
// in the awaiting coroutine.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace parley::http {

class BlockingPool {
 public:
  explicit BlockingPool(std::size_t threads) : pool_(threads) {}
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;
  ~BlockingPool() { stop(); }

  template <class F>
  auto run(F fn) -> boost::asio::awaitable<std::invoke_result_t<F&>> {
    using R = std::invoke_result_t<F&>;
    co_return co_await boost::asio::co_spawn(
        pool_.get_executor(), [fn = std::move(fn)]() mutable -> boost::asio::awaitable<R> { co_return fn(); },
        boost::asio::use_awaitable);
  }

  // Lets queued work finish, then joins the threads. Idempotent.
  void stop() { pool_.join(); }

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace parley::http
