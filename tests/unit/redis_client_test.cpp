// The Redis client (redis/redis.hpp): URLs, the RESP encoding of commands, the reply reader fed
// in fragments, and a Connection against a private redis-server (skipped when there is none):
// pipelining, an unreachable port, the backoff, and a paused server.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redis/redis.hpp"
#include "redis_test_server.hpp"

namespace parley::redis {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// ---- parse_url ----

TEST(RedisUrlTest, HostAlone) {
  auto u = parse_url("redis://cache.internal");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->host, "cache.internal");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->db, 0);
  EXPECT_EQ(u->password, "");
  EXPECT_EQ(u->username, "");
}

TEST(RedisUrlTest, PortAndDb) {
  auto u = parse_url("redis://127.0.0.1:6380/3");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 3);
  auto d = parse_url("redis://h/15");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->port, 6379);
  EXPECT_EQ(d->db, 15);
  auto empty_db = parse_url("redis://h:1/");
  ASSERT_TRUE(empty_db);
  EXPECT_EQ(empty_db->db, 0);
  EXPECT_EQ(empty_db->port, 1);
  auto top = parse_url("redis://h:65535");
  ASSERT_TRUE(top);
  EXPECT_EQ(top->port, 65535);
}

TEST(RedisUrlTest, PasswordOnly) {
  auto u = parse_url("redis://:s3cret@host:7000/2");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->username, "");
  EXPECT_EQ(u->password, "s3cret");
  EXPECT_EQ(u->host, "host");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->db, 2);
}

TEST(RedisUrlTest, UserAndPassword) {
  auto u = parse_url("redis://app:pa:ss@host");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->username, "app");
  EXPECT_EQ(u->password, "pa:ss");  // the first colon splits
  EXPECT_EQ(u->host, "host");
  EXPECT_EQ(u->port, 6379);
}

TEST(RedisUrlTest, PasswordWithAnAt) {
  auto u = parse_url("redis://:p@ss@host:1234");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->password, "p@ss");  // the last @ ends the user info
  EXPECT_EQ(u->host, "host");
  EXPECT_EQ(u->port, 1234);
}

TEST(RedisUrlTest, Ipv6) {
  auto u = parse_url("redis://[::1]:6380");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 6380);
  auto bare = parse_url("redis://[::1]");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->host, "::1");
  EXPECT_EQ(bare->port, 6379);
  auto full = parse_url("redis://u:p@[fe80::1]:7000/4");
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->host, "fe80::1");
  EXPECT_EQ(full->port, 7000);
  EXPECT_EQ(full->db, 4);
  EXPECT_EQ(full->username, "u");
  EXPECT_EQ(full->password, "p");
}

TEST(RedisUrlTest, BadUrlsAreValidationErrorsOnRedisUrl) {
  for (const char* bad : {
           "http://host",      "rediss://host",   "host:6379",          "REDIS://host",    "",
           "redis://host:abc", "redis://host:0",  "redis://host:65536", "redis://host:-1", "redis://host:80x",
           "redis://host/abc", "redis://host/-1", "redis://host/1001",  "redis://host/1x", "redis://",
           "redis://:6379",    "redis://[::1",    "redis://:pw@",       "redis://[]:6379", "redis://host:",
           "redis://[::1]:",   "redis://[::1]x",  "redis://[::1]6379",
       }) {
    auto u = parse_url(bad);
    EXPECT_FALSE(u) << "accepted: " << bad;
    if (!u) {
      EXPECT_EQ(u.error().kind, ErrorKind::kValidation) << bad;
      EXPECT_EQ(u.error().param, "redis.url") << bad;
    }
  }
}

// ---- encode ----

TEST(RedisEncodeTest, ACommandIsAnArrayOfBulkStrings) {
  EXPECT_EQ(encode({"SET", "k", "hello"}), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
  EXPECT_EQ(encode({"PING"}), "*1\r\n$4\r\nPING\r\n");
}

TEST(RedisEncodeTest, EmptyAndBinaryArgumentsAreLengthPrefixed) {
  EXPECT_EQ(encode({"SET", "k", ""}), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
  const std::string binary("a\r\nb\0c", 6);
  EXPECT_EQ(encode({"ECHO", binary}), std::string("*2\r\n$4\r\nECHO\r\n$6\r\na\r\nb\0c\r\n", 26));
  EXPECT_EQ(encode({}), "*0\r\n");
  const std::string big(1000, 'x');
  EXPECT_EQ(encode({big}), "*1\r\n$1000\r\n" + big + "\r\n");
}

TEST(RedisEncodeTest, AnEncodedCommandReadsBackAsTheSameArray) {
  // RESP commands are arrays of bulk strings: the reply reader parses them too.
  ReplyReader reader;
  const std::string wire = encode({"EVALSHA", "abc", "2", "k1", "k2", ""});
  reader.feed(wire.data(), wire.size());
  auto r = reader.next();
  ASSERT_TRUE(r);
  ASSERT_TRUE(*r);
  const Reply& reply = **r;
  ASSERT_EQ(reply.type, Reply::Type::kArray);
  ASSERT_EQ(reply.elements.size(), 6u);
  EXPECT_EQ(reply.elements[0].str, "EVALSHA");
  EXPECT_EQ(reply.elements[4].str, "k2");
  EXPECT_EQ(reply.elements[5].type, Reply::Type::kString);
  EXPECT_EQ(reply.elements[5].str, "");
}

// ---- ReplyReader ----

std::vector<Reply> read_byte_by_byte(const std::string& wire) {
  ReplyReader reader;
  std::vector<Reply> replies;
  for (char c : wire) {
    reader.feed(&c, 1);
    for (;;) {
      auto r = reader.next();
      if (!r) throw std::runtime_error(r.error().message);
      if (!*r) break;
      replies.push_back(std::move(**r));
    }
  }
  return replies;
}

TEST(ReplyReaderTest, EveryKindFedOneByteAtATime) {
  const std::string wire =
      "+OK\r\n"
      "-ERR wrong number of arguments\r\n"
      ":42\r\n"
      ":-7\r\n"
      "$5\r\nhe\r\no\r\n"
      "$0\r\n\r\n"
      "$-1\r\n"
      "*3\r\n*2\r\n:1\r\n$1\r\nx\r\n$-1\r\n+in\r\n"
      "*0\r\n"
      "*-1\r\n";
  const auto r = read_byte_by_byte(wire);
  ASSERT_EQ(r.size(), 10u);
  EXPECT_EQ(r[0].type, Reply::Type::kStatus);
  EXPECT_EQ(r[0].str, "OK");
  EXPECT_EQ(r[1].type, Reply::Type::kError);
  EXPECT_TRUE(r[1].is_error());
  EXPECT_EQ(r[1].str, "ERR wrong number of arguments");
  EXPECT_EQ(r[2].type, Reply::Type::kInteger);
  EXPECT_EQ(r[2].integer, 42);
  EXPECT_EQ(r[3].integer, -7);
  EXPECT_EQ(r[4].type, Reply::Type::kString);
  EXPECT_EQ(r[4].str, "he\r\no");  // a bulk string's length, not its CRLF, ends it
  EXPECT_EQ(r[5].type, Reply::Type::kString);
  EXPECT_EQ(r[5].str, "");
  EXPECT_EQ(r[6].type, Reply::Type::kNil);
  ASSERT_EQ(r[7].type, Reply::Type::kArray);
  ASSERT_EQ(r[7].elements.size(), 3u);
  ASSERT_EQ(r[7].elements[0].type, Reply::Type::kArray);
  ASSERT_EQ(r[7].elements[0].elements.size(), 2u);
  EXPECT_EQ(r[7].elements[0].elements[0].integer, 1);
  EXPECT_EQ(r[7].elements[0].elements[1].str, "x");
  EXPECT_EQ(r[7].elements[1].type, Reply::Type::kNil);
  EXPECT_EQ(r[7].elements[2].type, Reply::Type::kStatus);
  EXPECT_EQ(r[7].elements[2].str, "in");
  EXPECT_EQ(r[8].type, Reply::Type::kArray);
  EXPECT_TRUE(r[8].elements.empty());
  EXPECT_EQ(r[9].type, Reply::Type::kNil);
}

TEST(ReplyReaderTest, NothingUntilAReplyIsWhole) {
  ReplyReader reader;
  auto empty = reader.next();
  ASSERT_TRUE(empty);
  EXPECT_FALSE(*empty);
  reader.feed("$5\r\nhel", 7);
  auto partial = reader.next();
  ASSERT_TRUE(partial);
  EXPECT_FALSE(*partial);
  reader.feed("lo\r\n:1\r\n", 8);
  auto first = reader.next();
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->str, "hello");
  auto second = reader.next();
  ASSERT_TRUE(second && *second);
  EXPECT_EQ((*second)->integer, 1);
  auto none = reader.next();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
}

TEST(ReplyReaderTest, GarbageIsAnError) {
  ReplyReader reader;
  reader.feed("?what\r\n", 7);
  auto r = reader.next();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kUnavailable);
  EXPECT_THROW(read_byte_by_byte("+OK\r\n!!\r\n"), std::runtime_error);
}

// ---- Connection against a private redis-server ----

using test::have_redis_server;
using test::run_on;

// A port on 127.0.0.1 where nothing listens (bound, then released).
std::uint16_t free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

class RedisConnectionTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& c : connections_) c->close();
    io_.restart();
    io_.poll();
    connections_.clear();
    server_.stop();
  }

  // Starts redis-server; skips the test when there is none.
  void start_server() {
    if (!have_redis_server()) GTEST_SKIP() << "redis-server is not on PATH";
    server_.start();
    if (HasFatalFailure()) return;
    url_ = server_.url();
    pid_ = server_.pid();
  }

  std::shared_ptr<Connection> connect(Url url, std::chrono::milliseconds timeout) {
    auto c = std::make_shared<Connection>(io_.get_executor(), std::move(url), timeout, health_);
    connections_.push_back(c);
    return c;
  }

  Result<Reply> command(Connection& c, std::vector<std::string> args) {
    return run_on(io_, c.command(std::move(args)));
  }

  asio::io_context io_;
  std::shared_ptr<Health> health_ = std::make_shared<Health>();
  std::vector<std::shared_ptr<Connection>> connections_;
  test::RedisTestServer server_;
  Url url_;
  pid_t pid_ = 0;
};

TEST_F(RedisConnectionTest, Ping) {
  start_server();
  auto c = connect(url_, 2000ms);
  auto r = command(*c, {"PING"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->type, Reply::Type::kStatus);
  EXPECT_EQ(r->str, "PONG");
  // The clock offset was measured with TIME at the connection: the same machine, so small.
  ASSERT_TRUE(c->clock_offset_ms());
  EXPECT_LT(std::abs(*c->clock_offset_ms()), 5000);
  auto err = command(*c, {"NOSUCHCOMMAND"});
  ASSERT_TRUE(err);
  EXPECT_TRUE(err->is_error());  // an error reply is a reply, not a failure
  auto after = command(*c, {"ECHO", "still here"});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->str, "still here");
  EXPECT_TRUE(health_->up.load());
}

asio::awaitable<void> incr(std::shared_ptr<Connection> c, std::int64_t* out, int* done) {
  std::vector<std::string> args{"INCR", "pipelined"};
  auto r = co_await c->command(std::move(args));
  if (r && r->type == Reply::Type::kInteger) *out = r->integer;
  ++*done;
}

asio::awaitable<void> echo(std::shared_ptr<Connection> c, std::string text, std::string* out, int* done) {
  std::vector<std::string> args{"ECHO", std::move(text)};
  auto r = co_await c->command(std::move(args));
  if (r) *out = r->str;
  ++*done;
}

asio::awaitable<void> command_into(std::shared_ptr<Connection> c, std::vector<std::string> args,
                                   std::optional<Result<Reply>>* out) {
  *out = co_await c->command(std::move(args));
}

TEST_F(RedisConnectionTest, PipelinedCommandsAnswerInOrder) {
  start_server();
  auto c = connect(url_, 2000ms);
  constexpr int kN = 50;
  std::vector<std::int64_t> counts(kN, -1);
  std::vector<std::string> echoes(kN);
  int done = 0;
  for (int i = 0; i < kN; ++i) {
    asio::co_spawn(io_, incr(c, &counts[i], &done), asio::detached);
    asio::co_spawn(io_, echo(c, "m" + std::to_string(i), &echoes[i], &done), asio::detached);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (done < 2 * kN && std::chrono::steady_clock::now() < deadline) io_.run_one_for(50ms);
  ASSERT_EQ(done, 2 * kN);
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(counts[i], i + 1) << i;
    EXPECT_EQ(echoes[i], "m" + std::to_string(i)) << i;
  }
}

TEST_F(RedisConnectionTest, SelectsTheDatabaseOfTheUrl) {
  start_server();
  Url db5 = url_;
  db5.db = 5;
  auto c5 = connect(db5, 2000ms);
  ASSERT_TRUE(command(*c5, {"SET", "where", "five"}));
  auto c0 = connect(url_, 2000ms);
  auto in0 = command(*c0, {"GET", "where"});
  ASSERT_TRUE(in0);
  EXPECT_EQ(in0->type, Reply::Type::kNil);
  auto in5 = command(*c5, {"GET", "where"});
  ASSERT_TRUE(in5);
  EXPECT_EQ(in5->str, "five");
}

TEST_F(RedisConnectionTest, NothingListeningFailsQuicklyThenFastUntilTheBackoffPasses) {
  Url url;
  url.host = "127.0.0.1";
  url.port = free_port();
  auto c = connect(url, 2000ms);
  auto t0 = std::chrono::steady_clock::now();
  auto first = command(*c, {"PING"});
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(first.error().message.find("cannot connect"), std::string::npos) << first.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1000ms);  // refused, not timed out
  EXPECT_FALSE(health_->up.load());

  // Within the backoff: failed at once, without a connection attempt.
  t0 = std::chrono::steady_clock::now();
  auto fast = command(*c, {"PING"});
  ASSERT_FALSE(fast);
  EXPECT_EQ(fast.error().kind, ErrorKind::kUnavailable);
  EXPECT_EQ(fast.error().message, "Redis is unreachable");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms);

  // After it (100 ms the first time): a real attempt again.
  std::this_thread::sleep_for(150ms);
  auto again = command(*c, {"PING"});
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("cannot connect"), std::string::npos) << again.error().message;
  EXPECT_GE(health_->errors.load(), 2u);
}

TEST_F(RedisConnectionTest, APausedServerFailsWithinTheTimeoutAndTheConnectionRecovers) {
  start_server();
  auto c = connect(url_, 200ms);
  auto ok = command(*c, {"PING"});
  ASSERT_TRUE(ok) << ok.error().message;

  ASSERT_EQ(::kill(pid_, SIGSTOP), 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto stalled = command(*c, {"PING"});
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(stalled);
  EXPECT_EQ(stalled.error().kind, ErrorKind::kUnavailable);
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 1000ms);
  EXPECT_FALSE(health_->up.load());
  // Down: the next command fails at once.
  auto fast = command(*c, {"PING"});
  ASSERT_FALSE(fast);
  EXPECT_EQ(fast.error().message, "Redis is unreachable");

  ASSERT_EQ(::kill(pid_, SIGCONT), 0);
  std::this_thread::sleep_for(300ms);  // past the backoff
  auto back = command(*c, {"PING"});
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->str, "PONG");
  EXPECT_TRUE(health_->up.load());
  auto echo = command(*c, {"ECHO", "after"});
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->str, "after");  // replies are matched to the new commands, not the old PING
}

TEST_F(RedisConnectionTest, CloseFailsCommandsInFlight) {
  start_server();
  auto c = connect(url_, 2000ms);
  ASSERT_TRUE(command(*c, {"PING"}));
  std::optional<Result<Reply>> got;
  asio::co_spawn(io_, command_into(c, {"BLPOP", "nothing", "1"}, &got), asio::detached);
  io_.poll();  // submitted
  c->close();
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!got && std::chrono::steady_clock::now() < deadline) io_.run_one_for(20ms);
  ASSERT_TRUE(got);
  ASSERT_FALSE(*got);
  EXPECT_EQ(got->error().kind, ErrorKind::kUnavailable);
}

}  // namespace
}  // namespace parley::redis
