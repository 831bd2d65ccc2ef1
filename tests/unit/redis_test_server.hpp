// A private redis-server for unit tests (tests/harness/redis.sh in a temporary directory), and a
// way to run a coroutine on a test's io_context until it completes. Tests skip when redis-server
// is not installed.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <stdexcept>
#include <string>
#include <system_error>

#include "redis/redis.hpp"

namespace parley::test {

inline bool have_redis_server() {
  return std::system("command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1") == 0;
}

// Runs `task` on `io` until it completes; the connections it opens stay open.
template <class T>
T run_on(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  auto done = boost::asio::co_spawn(io, std::move(task), boost::asio::use_future);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("the coroutine did not finish");
    if (io.stopped()) io.restart();
    io.run_one_for(std::chrono::milliseconds(50));
  }
  return done.get();
}

class RedisTestServer {
 public:
  RedisTestServer() = default;
  RedisTestServer(const RedisTestServer&) = delete;
  RedisTestServer& operator=(const RedisTestServer&) = delete;
  ~RedisTestServer() { stop(); }

  // Starts the server; a failure is reported with ASSERT (check HasFatalFailure()).
  void start() {
    const auto root = source_dir();
    ASSERT_FALSE(root.empty()) << "set PARLEY_SOURCE_DIR to the repository";
    script_ = (root / "tests/harness/redis.sh").string();
    char tmpl[] = "/tmp/parley-unit-redis-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    FILE* out = popen(("bash '" + script_ + "' start '" + dir_ + "'").c_str(), "r");
    ASSERT_NE(out, nullptr);
    char line[256] = {};
    std::string text = fgets(line, sizeof line, out) != nullptr ? line : "";
    ASSERT_EQ(pclose(out), 0) << "redis.sh start failed";
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    auto url = redis::parse_url(text);
    ASSERT_TRUE(url) << text;
    url_ = *url;
    std::ifstream pid_file(dir_ + "/redis.pid");
    pid_file >> pid_;
    ASSERT_GT(pid_, 0);
  }

  void stop() {
    if (dir_.empty()) return;
    if (pid_ > 0) ::kill(pid_, SIGCONT);
    (void)std::system(("bash '" + script_ + "' stop '" + dir_ + "' >/dev/null 2>&1").c_str());
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    dir_.clear();
  }

  [[nodiscard]] const redis::Url& url() const { return url_; }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  static std::filesystem::path source_dir() {
    if (const char* env = std::getenv("PARLEY_SOURCE_DIR"); env != nullptr && *env != '\0') return env;
    for (auto dir = std::filesystem::current_path(); !dir.empty(); dir = dir.parent_path()) {
      if (std::filesystem::exists(dir / "tests/harness/redis.sh")) return dir;
      if (dir == dir.root_path()) break;
    }
    return {};
  }

  std::string script_;
  std::string dir_;
  redis::Url url_;
  pid_t pid_ = 0;
};

}  // namespace parley::test
