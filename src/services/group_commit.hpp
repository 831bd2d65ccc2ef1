// Concurrent writes share one commit. While a batch commits, the writes that arrive queue up, and
// the next commit takes them all: on SQLite with synchronous = full a commit is one fdatasync
// whatever it holds, so N writers at once pay for one sync instead of N (and on PostgreSQL one
// WAL flush). A caller still returns only once its write is committed, so what it acknowledges is
// on disk and readable at once.
//
// Each write runs in its own SAVEPOINT: one that fails is rolled back alone and returns its error;
// a commit that fails returns its error to every write of the batch. Writes of one batch commit in
// the order they arrived.
//
// Thread-safe. One batch commits at a time (on the blocking pool); each caller resumes on its own
// executor. The GroupCommit must outlive every call of run().
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/error.hpp"
#include "http/blocking_pool.hpp"
#include "store/database.hpp"

namespace parley::services {

class GroupCommit {
 public:
  using Write = std::function<Status(store::Connection&)>;

  GroupCommit(store::Database& db, http::BlockingPool& pool, std::size_t max_batch = 256)
      : db_(db), pool_(pool), max_batch_(max_batch) {}
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Runs `write` inside a transaction shared with the writes waiting at the same time; returns its
  // result once that transaction has committed.
  boost::asio::awaitable<Status> run(Write write);

  // Commits so far, and writes they held (for tests and metrics: writes / commits is the batching).
  [[nodiscard]] std::size_t commits() const;
  [[nodiscard]] std::size_t writes() const;

 private:
  struct Entry;
  boost::asio::awaitable<void> drain();
  Status commit(const std::vector<std::shared_ptr<Entry>>& batch, std::vector<Status>& results);

  store::Database& db_;
  http::BlockingPool& pool_;
  const std::size_t max_batch_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Entry>> queue_;
  bool draining_ = false;
  std::size_t commits_ = 0;
  std::size_t writes_ = 0;
};

}  // namespace parley::services
