// A small asynchronous Redis client on Boost.Asio: RESP commands written by us, replies parsed by
// hiredis's reader. One Connection lives on one event loop (not thread-safe; use it from its
// executor), pipelines commands, and never lets a caller wait longer than its timeout: a reply
// that does not come in time fails every command in flight and closes the connection (replies are
// ordered, so none after it could be matched). While a connection is down, commands fail at once
// until a backoff has passed; then the next command reconnects.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

struct redisReader;

namespace parley::redis {

struct Url {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string password;  // empty: no AUTH
  std::string username;  // Redis 6 ACL user; empty: the default user
  int db = 0;
};

// redis://[[user]:password@]host[:port][/db]
Result<Url> parse_url(std::string_view text);

struct Reply {
  enum class Type { kString, kStatus, kInteger, kNil, kArray, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  std::int64_t integer = 0;
  std::vector<Reply> elements;

  [[nodiscard]] bool is_error() const { return type == Type::kError; }
};

// The RESP encoding of one command.
std::string encode(const std::vector<std::string>& args);

// Parses RESP bytes with hiredis's reader.
class ReplyReader {
 public:
  ReplyReader();
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  void feed(const char* data, std::size_t size);
  // The next whole reply, nullopt when more bytes are needed; an error when the stream is not RESP.
  Result<std::optional<Reply>> next();

 private:
  redisReader* reader_;
};

// Shared by a deployment's connections: logs "unreachable" once when Redis goes away and "back"
// once when it returns, and counts failures.
struct Health {
  std::atomic<bool> up{true};
  std::atomic<std::uint64_t> errors{0};
  void failed(std::string_view why);
  void succeeded();
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Callback = std::function<void(Result<Reply>)>;

  Connection(boost::asio::any_io_executor executor, Url url, std::chrono::milliseconds timeout,
             std::shared_ptr<Health> health);
  ~Connection();

  // Sends a command and waits for its reply (an error reply is a Reply of type kError).
  // Errors: kUnavailable when Redis cannot be reached or does not answer in time.
  boost::asio::awaitable<Result<Reply>> command(std::vector<std::string> args);
  // Sends a command whose reply is not waited for (an error is logged at debug level).
  void send(const std::vector<std::string>& args);
  // Closes the socket; commands in flight fail.
  void close();

  [[nodiscard]] const boost::asio::any_io_executor& executor() const { return executor_; }
  [[nodiscard]] std::chrono::milliseconds timeout() const { return timeout_; }
  // Redis's clock minus ours (ms), measured with TIME at each connection; nullopt before.
  [[nodiscard]] std::optional<std::int64_t> clock_offset_ms() const { return clock_offset_ms_; }

 private:
  enum class State { kIdle, kConnecting, kReady, kDown };
  struct Pending {
    Callback done;  // empty: nobody waits
    std::chrono::steady_clock::time_point deadline;
  };

  void submit(const std::vector<std::string>& args, Callback done);
  void connect();
  void write_some();
  void read_some();
  void arm_timer();
  void fail_all(const Error& e);
  void broken(std::string_view why);

  boost::asio::any_io_executor executor_;
  Url url_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<Health> health_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  State state_ = State::kIdle;
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{100};
  std::deque<Pending> pending_;
  std::string out_;      // encoded commands waiting to be written
  std::string writing_;  // being written
  bool write_busy_ = false;
  std::array<char, 16384> in_{};
  std::unique_ptr<ReplyReader> reader_ = std::make_unique<ReplyReader>();
  std::uint64_t epoch_ = 0;  // bumped by each close: completions of an older socket are ignored
  std::optional<std::int64_t> clock_offset_ms_;
};

// A subscription to one channel on a connection of its own, kept up across outages: `on_message`
// gets each message's payload; `on_resubscribed` is called after a reconnection (messages may
// have been missed meanwhile).
class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  Subscriber(boost::asio::any_io_executor executor, Url url, std::string channel,
             std::function<void(std::string_view)> on_message, std::function<void()> on_resubscribed);
  void start();
  void stop();

 private:
  boost::asio::awaitable<void> run();

  boost::asio::any_io_executor executor_;
  Url url_;
  std::string channel_;
  std::function<void(std::string_view)> on_message_;
  std::function<void()> on_resubscribed_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace parley::redis
