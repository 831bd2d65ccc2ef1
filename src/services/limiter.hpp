// Rate limits and budgets per service key and per user (docs/LIMITS.md): a sliding-window log of
// the calls admitted in the last minute (requests and reserved tokens) and per-period budgets of
// used + reserved tokens and spend. Every scope of a call is checked and reserved in one atomic
// step (all or none) by a LimitStore: in this process's memory, or in Redis (one Lua script) when
// several instances share the limits. A Reservation settles with the call's real usage, or releases
// its tokens when dropped unsettled (a failed call still counts as a request).
//
// Thread-safe. admit() is asynchronous (a Redis round trip, or the first read of a budget's
// period from the usage store); settle() never waits.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/limits.hpp"

namespace parley::services {

inline constexpr std::int64_t kWindowMs = 60'000;

// One scope of one call, resolved from the principal and the deployment's defaults.
struct LimitScope {
  std::string id;  // "k:<key_id>" or "u:<user_id>"
  bool is_key = false;
  std::int64_t rpm = 0;  // 0: none
  std::int64_t tpm = 0;
  std::int64_t token_budget = 0;
  std::int64_t spend_budget = 0;  // nano-USD
  BudgetPeriod period = BudgetPeriod::kMonth;
  std::int64_t period_start_ms = 0;
  std::int64_t period_end_ms = 0;  // 0: never (total)
  // The period's settled usage before this process (or Redis) knew the scope: from the store.
  std::int64_t seed_tokens = 0;
  std::int64_t seed_cost = 0;

  [[nodiscard]] bool windowed() const { return rpm > 0 || tpm > 0; }
  [[nodiscard]] bool budgeted() const { return token_budget > 0 || spend_budget > 0; }
};

struct LimitAsk {
  std::vector<LimitScope> scopes;
  std::string rid;  // the reservation's id, unique
  std::int64_t tokens = 0;
  std::int64_t cost = 0;
  std::int64_t now_ms = 0;
  std::int64_t reservation_ttl_ms = 0;
};

enum class Refusal { kNone, kRequests, kTokens, kTooLarge, kTokenBudget, kSpendBudget };

// A scope's state after the decision (with this call when admitted).
struct ScopeCount {
  std::int64_t requests = 0;       // in the window
  std::int64_t tokens = 0;         // reserved or used in the window
  std::int64_t oldest_ms = 0;      // admission time of the window's oldest entry; 0 when empty
  std::int64_t budget_tokens = 0;  // used + reserved in the period
  std::int64_t budget_cost = 0;
};

struct LimitDecision {
  Refusal refusal = Refusal::kNone;
  std::size_t scope = 0;  // the refusing scope
  std::int64_t retry_after_ms = 0;
  std::vector<ScopeCount> counts;  // one per scope
};

struct SettleScope {
  std::string id;
  bool windowed = false;
  bool budgeted = false;
  std::int64_t period_start_ms = 0;
  std::int64_t period_end_ms = 0;
};

struct LimitSettle {
  std::vector<SettleScope> scopes;
  std::string rid;
  std::int64_t admitted_ms = 0;
  std::int64_t reserved_tokens = 0;
  std::int64_t reserved_cost = 0;
  std::int64_t tokens = 0;  // real usage
  std::int64_t cost = 0;
};

// Where the windows and budgets live. admit() decides and reserves atomically; an error is the
// store being unreachable (Redis).
class LimitStore {
 public:
  virtual ~LimitStore() = default;
  virtual boost::asio::awaitable<Result<LimitDecision>> admit(const LimitAsk& ask) = 0;
  virtual void settle(LimitSettle settle) = 0;
  // What a scope holds now (its window and its budget's period), changing nothing.
  virtual boost::asio::awaitable<Result<ScopeCount>> peek(const LimitScope& scope, std::int64_t now_ms) = 0;
  // Forgets idle scopes (memory); called now and then.
  virtual void sweep(std::int64_t /*now_ms*/) {}
  // A store that decides without waiting (memory) answers here, sparing a coroutine per call;
  // nullopt: use admit().
  virtual std::optional<LimitDecision> decide_now(const LimitAsk& /*ask*/) { return std::nullopt; }
  [[nodiscard]] virtual bool shared() const = 0;
  [[nodiscard]] virtual const char* name() const = 0;
};

// The windows and budgets in this process's memory: one instance only.
class MemoryLimitStore final : public LimitStore {
 public:
  boost::asio::awaitable<Result<LimitDecision>> admit(const LimitAsk& ask) override;
  void settle(LimitSettle settle) override;
  boost::asio::awaitable<Result<ScopeCount>> peek(const LimitScope& scope, std::int64_t now_ms) override;
  void sweep(std::int64_t now_ms) override;
  std::optional<LimitDecision> decide_now(const LimitAsk& ask) override { return decide(ask); }
  [[nodiscard]] bool shared() const override { return false; }
  [[nodiscard]] const char* name() const override { return "memory"; }

  // The decision itself, synchronous (also for tests).
  LimitDecision decide(const LimitAsk& ask);
  [[nodiscard]] std::size_t scopes() const;

 private:
  struct Entry {
    std::int64_t at = 0;
    std::string rid;
    std::int64_t tokens = 0;
  };
  struct Held {
    std::int64_t tokens = 0;
    std::int64_t cost = 0;
  };
  struct State {
    std::deque<Entry> log;
    std::int64_t log_tokens = 0;
    std::int64_t period_start = -1;  // -1: no budget state yet
    std::int64_t used_tokens = 0;
    std::int64_t used_cost = 0;
    std::int64_t reserved_tokens = 0;
    std::int64_t reserved_cost = 0;
    std::unordered_map<std::string, Held> held;
    std::int64_t touched = 0;
  };
  static void trim(State& s, std::int64_t now_ms);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, State> states_;
};

struct LimiterOptions {
  std::int64_t default_rpm = 0;
  std::int64_t default_tpm = 0;
  std::int64_t default_max_tokens = 1024;
  std::int64_t reservation_ttl_ms = 900'000;
  bool fail_open = false;  // when the store is unreachable
};

// Reads a budget's settled usage for a period from the usage store (blocking work on a pool).
class BudgetSource {
 public:
  virtual ~BudgetSource() = default;
  struct Used {
    std::int64_t tokens = 0;
    std::int64_t cost = 0;
  };
  // `key_id` or `user_id` (one of them empty); since_ms: the period's start.
  virtual boost::asio::awaitable<Result<Used>> used(std::string key_id, std::string user_id,
                                                    std::int64_t since_ms) = 0;
};

class Limiter;

// A call's reservation. Copies share it; it settles once: with the real usage by settle(), or
// when the last copy goes without it, with none (the tokens are released, the request stays
// counted).
class Reservation {
 public:
  Reservation() = default;
  void settle(std::int64_t tokens, std::int64_t cost_nanos) const;
  [[nodiscard]] bool active() const { return held_ != nullptr; }
  [[nodiscard]] std::int64_t reserved_tokens() const;

 private:
  friend class Limiter;
  struct Held;
  std::shared_ptr<Held> held_;
};

struct Admission {
  RateLimitInfo info;  // for the response's headers
  Reservation reservation;
};

class Limiter {
 public:
  Limiter(LimiterOptions options, std::unique_ptr<LimitStore> store, BudgetSource& budgets,
          const Clock& clock);

  // Tokens to reserve: the prompt's estimate plus max_tokens or the configured default.
  [[nodiscard]] std::int64_t reservation_tokens(std::int64_t prompt_tokens,
                                                std::optional<std::int64_t> max_tokens) const;

  // Checks and reserves every limit of the caller. Errors: kRateLimited (429, Retry-After),
  // kValidation (param max_tokens: one call larger than a tokens-per-minute limit),
  // kBudgetExceeded (402), kUnavailable (the shared store is unreachable and fail_closed).
  boost::asio::awaitable<Result<Admission>> admit(const auth::Principal& who, std::int64_t tokens,
                                                  std::int64_t cost_nanos);

  // What a user's own limits hold now (GET /api/v1/users/{user_id}/limits).
  struct InUse {
    LimitScope scope;
    ScopeCount count;
  };
  boost::asio::awaitable<Result<InUse>> user_in_use(std::string user_id, LimitSettings limits);

  [[nodiscard]] LimitStore& store() { return *store_; }
  void sweep() { store_->sweep(clock_.now_ms()); }

  struct Counters {
    std::atomic<std::uint64_t> allowed_key{0}, allowed_user{0}, allowed_none{0};
    std::atomic<std::uint64_t> limited_key{0}, limited_user{0};
    std::atomic<std::uint64_t> budget_key{0}, budget_user{0};
    std::atomic<std::uint64_t> unavailable{0}, failed_open{0};
    std::atomic<std::uint64_t> admit_ns_sum{0}, admit_count{0};
  };
  [[nodiscard]] const Counters& counters() const { return counters_; }

 private:
  friend class Reservation;
  std::vector<LimitScope> scopes_of(const auth::Principal& who, std::int64_t now_ms) const;
  boost::asio::awaitable<Status> seed(std::vector<LimitScope>& scopes, const auth::Principal& who);
  void release(LimitSettle settle) { store_->settle(std::move(settle)); }

  LimiterOptions options_;
  std::unique_ptr<LimitStore> store_;
  BudgetSource& budgets_;
  const Clock& clock_;
  std::atomic<std::uint64_t> next_rid_{0};
  std::string rid_prefix_;
  Counters counters_;
  // Settled usage per scope and period start, read once from the store.
  struct Seed {
    BudgetSource::Used used;
    std::int64_t read_at_ms = 0;
  };
  std::mutex seeds_mutex_;
  std::unordered_map<std::string, Seed> seeds_;
};

// UTC period boundaries for a budget: [start, end) in unix ms; end 0 for kTotal.
std::pair<std::int64_t, std::int64_t> budget_period_bounds(BudgetPeriod period, std::int64_t now_ms);

}  // namespace parley::services
