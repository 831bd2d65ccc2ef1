// GroupCommit: concurrent writes share one commit, each in its own savepoint. Real databases: a
// SQLite file, and PostgreSQL when PARLEY_TEST_POSTGRES_URL is set.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <string>
#include <thread>
#include <vector>

#include "backend_fixture.hpp"
#include "http/blocking_pool.hpp"
#include "services/group_commit.hpp"

namespace parley::services {
namespace {

namespace asio = boost::asio;
using store::Dialect;

class GroupCommitTest : public test::BackendTest {
 protected:
  void SetUp() override {
    open_scratch(false);
    if (IsSkipped() || HasFatalFailure()) return;
    auto made = db().query("CREATE TABLE gc_items (id TEXT PRIMARY KEY, n BIGINT NOT NULL)");
    ASSERT_TRUE(made) << made.error().message;
  }

  std::int64_t rows() {
    auto q = db().query("SELECT COUNT(*) FROM gc_items");
    EXPECT_TRUE(q) << (q ? "" : q.error().message);
    return q ? q->rows.at(0).get_int(0) : -1;
  }
};

asio::awaitable<void> insert_one(GroupCommit& commits, Status& result, std::string id, std::int64_t n) {
  GroupCommit::Write write = [&id, n](store::Connection& c) -> Status {
    auto q = c.query("INSERT INTO gc_items (id, n) VALUES ($1, $2)", {id, n});
    if (!q) return std::unexpected(q.error());
    return {};
  };
  result = co_await commits.run(std::move(write));
}

// `writers` coroutines on each of `loops` event loops (one thread each) insert one row each, all at
// once; write 3 uses the id `duplicate_of` when one is given.
std::vector<Status> insert_all(GroupCommit& commits, std::size_t loops, std::size_t writers,
                               const std::string& duplicate_of = "") {
  std::vector<Status> results(loops * writers);
  std::vector<std::unique_ptr<asio::io_context>> ios;
  for (std::size_t l = 0; l < loops; ++l) {
    ios.push_back(std::make_unique<asio::io_context>());
    for (std::size_t w = 0; w < writers; ++w) {
      const std::size_t slot = l * writers + w;
      std::string id = slot == 3 && !duplicate_of.empty() ? duplicate_of : "row-" + std::to_string(slot);
      asio::co_spawn(*ios.back(),
                     insert_one(commits, results[slot], std::move(id), static_cast<std::int64_t>(slot)),
                     asio::detached);
    }
  }
  std::vector<std::thread> threads;
  threads.reserve(ios.size());
  for (auto& io : ios) threads.emplace_back([&io] { io->run(); });
  for (auto& t : threads) t.join();
  return results;
}

TEST_P(GroupCommitTest, EveryWriteIsCommittedAndConcurrentWritesShareCommits) {
  http::BlockingPool pool(2);
  GroupCommit commits(db(), pool);
  const std::vector<Status> out = insert_all(commits, 2, 100);
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_TRUE(out[i]) << "write " << i;
  EXPECT_EQ(rows(), 200);
  EXPECT_EQ(commits.writes(), 200u);
  // 200 writes arrive while the first commits: they cannot each have had a commit of their own.
  EXPECT_LT(commits.commits(), 100u) << commits.commits() << " commits";
  EXPECT_GE(commits.commits(), 1u);
}

TEST_P(GroupCommitTest, AFailingWriteIsRolledBackAloneAndReturnsItsError) {
  http::BlockingPool pool(2);
  GroupCommit commits(db(), pool);
  auto first = db().query("INSERT INTO gc_items (id, n) VALUES ('taken', 0)");
  ASSERT_TRUE(first) << first.error().message;
  const std::vector<Status> out = insert_all(commits, 1, 20, "taken");  // write 3 repeats a primary key
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i == 3) {
      ASSERT_FALSE(out[i]);
      EXPECT_EQ(out[i].error().kind, ErrorKind::kConflict);
    } else {
      EXPECT_TRUE(out[i]) << "write " << i << ": " << out[i].error().message;
    }
  }
  EXPECT_EQ(rows(), 1 + 19);
}

TEST_P(GroupCommitTest, OneWriteAloneCommitsAtOnce) {
  http::BlockingPool pool(1);
  GroupCommit commits(db(), pool);
  const std::vector<Status> out = insert_all(commits, 1, 1);
  ASSERT_TRUE(out[0]);
  EXPECT_EQ(rows(), 1);
  EXPECT_EQ(commits.commits(), 1u);
  // And again, after the drainer has gone: a later write starts a new one.
  const std::vector<Status> again = insert_all(commits, 1, 1, "");
  EXPECT_FALSE(again[0]) << "row-0 exists: the second insert of it is a conflict";
  EXPECT_EQ(commits.commits(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Backends, GroupCommitTest, ::testing::Values(Dialect::kSqlite, Dialect::kPostgres),
                         test::backend_name);

}  // namespace
}  // namespace parley::services
