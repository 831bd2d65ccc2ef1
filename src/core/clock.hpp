// The one source of wall-clock time for the domain. Services take a Clock& so tests can fix time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace parley {

class Clock {
 public:
  virtual ~Clock() = default;
  // Unix time in milliseconds.
  [[nodiscard]] virtual std::int64_t now_ms() const = 0;
  [[nodiscard]] std::int64_t now_s() const { return now_ms() / 1000; }
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] std::int64_t now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock tests move by hand. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t start_ms) : now_(start_ms) {}
  [[nodiscard]] std::int64_t now_ms() const override { return now_.load(); }
  void advance_ms(std::int64_t ms) { now_ += ms; }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace parley
