#include "services/group_commit.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <iterator>

namespace parley::services {

namespace asio = boost::asio;

// A write waiting for its commit. Its timer belongs to the caller's loop and never expires: the
// drainer posts the result there and cancels the timer to wake the caller.
struct GroupCommit::Entry {
  explicit Entry(const asio::any_io_executor& executor)
      : timer(executor, asio::steady_timer::time_point::max()) {}
  Write write;
  asio::steady_timer timer;
  Status result;
  bool done = false;  // touched only on the caller's loop
};

asio::awaitable<Status> GroupCommit::run(Write write) {
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  auto entry = std::make_shared<Entry>(executor);
  entry->write = std::move(write);
  bool lead = false;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(entry);
    lead = !draining_;
    draining_ = true;
  }
  // The drainer starts once this coroutine waits; it runs until the queue is empty.
  if (lead) asio::co_spawn(executor, drain(), asio::detached);
  // The result is posted to this loop: it either ran already (done) or runs after the wait began
  // (there is no suspension between the check and the wait).
  if (!entry->done) co_await entry->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return std::move(entry->result);
}

asio::awaitable<void> GroupCommit::drain() {
  for (;;) {
    std::vector<std::shared_ptr<Entry>> batch;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) {
        draining_ = false;
        break;
      }
      const auto take = static_cast<std::ptrdiff_t>(std::min(queue_.size(), max_batch_));
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + take));
      queue_.erase(queue_.begin(), queue_.begin() + take);
    }
    std::vector<Status> results(batch.size());
    const Status committed = co_await pool_.run([&] { return commit(batch, results); });
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Status result = committed ? std::move(results[i]) : Status(std::unexpected(committed.error()));
      std::shared_ptr<Entry> entry = batch[i];
      asio::post(entry->timer.get_executor(), [entry, result = std::move(result)]() mutable {
        entry->result = std::move(result);
        entry->done = true;
        entry->timer.cancel();
      });
    }
  }
}

Status GroupCommit::commit(const std::vector<std::shared_ptr<Entry>>& batch, std::vector<Status>& results) {
  Status committed = db_.transaction([&](store::Connection& c) -> Status {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      results[i] = c.transaction([&](store::Connection& inner) { return batch[i]->write(inner); });
    }
    return {};
  });
  std::lock_guard lock(mutex_);
  ++commits_;
  writes_ += batch.size();
  return committed;
}

std::size_t GroupCommit::commits() const {
  std::lock_guard lock(mutex_);
  return commits_;
}

std::size_t GroupCommit::writes() const {
  std::lock_guard lock(mutex_);
  return writes_;
}

}  // namespace parley::services
