// Bounds how many requests are inside an expensive section at once (password hashing: argon2id
// takes tens of milliseconds and 19 MiB per call). Past the cap a caller is refused at once —
// the handler answers 503 with Retry-After — instead of queueing behind the others on the
// blocking pool, where it would also delay every database call. Thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <utility>

namespace parley::http {

class Gate {
 public:
  explicit Gate(std::size_t cap) : cap_(cap) {}
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  // Held while inside; leaving (destruction) makes room for the next caller.
  class Pass {
   public:
    explicit Pass(Gate& gate) : gate_(&gate) {}
    Pass(Pass&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Pass& operator=(Pass&&) = delete;
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    ~Pass() {
      if (gate_ != nullptr) gate_->inside_.fetch_sub(1, std::memory_order_relaxed);
    }

   private:
    Gate* gate_;
  };

  // A pass, or nullopt when `cap` callers are inside already.
  std::optional<Pass> try_enter() {
    std::size_t now = inside_.load(std::memory_order_relaxed);
    do {
      if (now >= cap_) return std::nullopt;
    } while (!inside_.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
    return std::optional<Pass>(std::in_place, *this);
  }

  [[nodiscard]] std::size_t inside() const { return inside_.load(std::memory_order_relaxed); }

 private:
  std::size_t cap_;
  std::atomic<std::size_t> inside_{0};
};

}  // namespace parley::http
