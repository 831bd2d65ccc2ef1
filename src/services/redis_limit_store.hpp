// Limits shared by every instance through one Redis (docs/LIMITS.md, "Many instances"). An
// admission is one Lua script (EVALSHA): it trims the scopes' windows, checks every limit of the
// call and, only when all pass, reserves in all of them — atomic in Redis, one round trip. A
// settlement is another script, sent without waiting. One connection per event loop.
//
// Keys per scope: parley:{scope}:w (sorted set: reservation id → admission ms), parley:{scope}:t
// (hash: reservation id → tokens, "#" → their sum), parley:{scope}:b:{period} (hash: ut/uc used
// tokens/cost, rt/rc reserved, "r:<id>" → "tokens:cost") and parley:{scope}:r:{period} (sorted
// set of the period's reservations by admission time, for releasing those never settled).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "redis/redis.hpp"
#include "services/limiter.hpp"

namespace parley::services {

class RedisLimitStore final : public LimitStore {
 public:
  RedisLimitStore(redis::Url url, std::chrono::milliseconds timeout);
  ~RedisLimitStore() override;

  boost::asio::awaitable<Result<LimitDecision>> admit(const LimitAsk& ask) override;
  void settle(LimitSettle settle) override;
  boost::asio::awaitable<Result<ScopeCount>> peek(const LimitScope& scope, std::int64_t now_ms) override;
  [[nodiscard]] bool shared() const override { return true; }
  [[nodiscard]] const char* name() const override { return "redis"; }

  // Opens this event loop's connection now (so that publish() has one before any admission).
  void attach(const boost::asio::any_io_executor& executor) { (void)connection(executor); }
  // PUBLISH without waiting, on any connection.
  void publish(std::string channel, std::string message);
  // Closes every connection; call once the event loops have stopped.
  void close();

  [[nodiscard]] const redis::Url& url() const { return url_; }
  [[nodiscard]] const redis::Health& health() const { return *health_; }

 private:
  // The connection of the loop running `executor` (made on first use); also remembered as this
  // thread's, for the settlements made on the same loop.
  std::shared_ptr<redis::Connection> connection(const boost::asio::any_io_executor& executor);
  std::shared_ptr<redis::Connection> some_connection();
  boost::asio::awaitable<Result<redis::Reply>> eval(redis::Connection& c, bool admit_script,
                                                    std::vector<std::string> keys_and_args);

  redis::Url url_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<redis::Health> health_ = std::make_shared<redis::Health>();
  std::mutex mutex_;
  std::unordered_map<const void*, std::shared_ptr<redis::Connection>> connections_;
  std::size_t next_ = 0;
  const std::uint64_t id_;  // tells this store's thread-local connection from another store's
  std::string sha_admit_;
  std::string sha_settle_;
};

}  // namespace parley::services
