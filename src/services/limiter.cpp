#include "services/limiter.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "crypto/random.hpp"

namespace parley::services {

namespace asio = boost::asio;

std::pair<std::int64_t, std::int64_t> budget_period_bounds(BudgetPeriod period, std::int64_t now_ms) {
  if (period == BudgetPeriod::kTotal) return {0, 0};
  const std::time_t seconds = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  if (period == BudgetPeriod::kMonth) tm.tm_mday = 1;
  const std::int64_t start = static_cast<std::int64_t>(timegm(&tm)) * 1000;
  if (period == BudgetPeriod::kDay) {
    tm.tm_mday += 1;
  } else {
    tm.tm_mon += 1;
  }
  const std::int64_t end = static_cast<std::int64_t>(timegm(&tm)) * 1000;
  return {start, end};
}

// ---- memory ----

void MemoryLimitStore::trim(State& s, std::int64_t now_ms) {
  while (!s.log.empty() && s.log.front().at <= now_ms - kWindowMs) {
    s.log_tokens -= s.log.front().tokens;
    s.log.pop_front();
  }
}

LimitDecision MemoryLimitStore::decide(const LimitAsk& ask) {
  LimitDecision d;
  d.counts.resize(ask.scopes.size());
  const std::int64_t now = ask.now_ms;
  std::lock_guard lock(mutex_);
  std::vector<State*> states;
  states.reserve(ask.scopes.size());
  for (std::size_t i = 0; i < ask.scopes.size(); ++i) {
    const LimitScope& scope = ask.scopes[i];
    State& s = states_[scope.id];
    s.touched = now;
    states.push_back(&s);
    trim(s, now);
    if (scope.budgeted() && s.period_start != scope.period_start_ms) {
      s.period_start = scope.period_start_ms;
      s.used_tokens = scope.seed_tokens;
      s.used_cost = scope.seed_cost;
      s.reserved_tokens = s.reserved_cost = 0;
      s.held.clear();
    }
    if (d.refusal != Refusal::kNone) continue;
    auto refuse = [&](Refusal r, std::int64_t retry_ms) {
      d.refusal = r;
      d.scope = i;
      d.retry_after_ms = std::max<std::int64_t>(retry_ms, 0);
    };
    if (scope.rpm > 0 && static_cast<std::int64_t>(s.log.size()) >= scope.rpm) {
      // One more fits when all but rpm − 1 of the window's calls have left it.
      refuse(Refusal::kRequests,
             s.log[s.log.size() - static_cast<std::size_t>(scope.rpm)].at + kWindowMs - now);
    } else if (scope.tpm > 0 && ask.tokens > scope.tpm) {
      refuse(Refusal::kTooLarge, 0);
    } else if (scope.tpm > 0 && s.log_tokens + ask.tokens > scope.tpm) {
      // When enough of the oldest reservations leave the window for this one to fit.
      const std::int64_t need = s.log_tokens + ask.tokens - scope.tpm;
      std::int64_t freed = 0;
      std::int64_t at = now;
      for (const Entry& e : s.log) {
        freed += e.tokens;
        at = e.at;
        if (freed >= need) break;
      }
      refuse(Refusal::kTokens, at + kWindowMs - now);
    } else if (scope.token_budget > 0 &&
               s.used_tokens + s.reserved_tokens + ask.tokens > scope.token_budget) {
      refuse(Refusal::kTokenBudget, scope.period_end_ms > 0 ? scope.period_end_ms - now : 0);
    } else if (scope.spend_budget > 0 && (s.used_cost + s.reserved_cost >= scope.spend_budget ||
                                          s.used_cost + s.reserved_cost + ask.cost > scope.spend_budget)) {
      refuse(Refusal::kSpendBudget, scope.period_end_ms > 0 ? scope.period_end_ms - now : 0);
    }
  }
  for (std::size_t i = 0; i < ask.scopes.size(); ++i) {
    const LimitScope& scope = ask.scopes[i];
    State& s = *states[i];
    if (d.refusal == Refusal::kNone) {
      if (scope.windowed()) {
        s.log.push_back(Entry{now, ask.rid, ask.tokens});
        s.log_tokens += ask.tokens;
      }
      if (scope.budgeted()) {
        s.reserved_tokens += ask.tokens;
        s.reserved_cost += ask.cost;
        s.held[ask.rid] = Held{ask.tokens, ask.cost};
      }
    }
    ScopeCount& c = d.counts[i];
    c.requests = static_cast<std::int64_t>(s.log.size());
    c.tokens = s.log_tokens;
    c.oldest_ms = s.log.empty() ? 0 : s.log.front().at;
    c.budget_tokens = s.used_tokens + s.reserved_tokens;
    c.budget_cost = s.used_cost + s.reserved_cost;
  }
  return d;
}

asio::awaitable<Result<LimitDecision>> MemoryLimitStore::admit(const LimitAsk& ask) {
  co_return decide(ask);
}

void MemoryLimitStore::settle(LimitSettle settle) {
  std::lock_guard lock(mutex_);
  for (const SettleScope& scope : settle.scopes) {
    auto it = states_.find(scope.id);
    if (it == states_.end()) continue;
    State& s = it->second;
    if (scope.windowed) {
      // Entries are in admission order: start at the first one admitted at that time.
      auto e = std::lower_bound(s.log.begin(), s.log.end(), settle.admitted_ms,
                                [](const Entry& entry, std::int64_t at) { return entry.at < at; });
      for (; e != s.log.end() && e->at == settle.admitted_ms; ++e) {
        if (e->rid != settle.rid) continue;
        s.log_tokens += settle.tokens - e->tokens;
        e->tokens = settle.tokens;
        break;
      }
    }
    if (scope.budgeted && s.period_start == scope.period_start_ms) {
      if (auto h = s.held.find(settle.rid); h != s.held.end()) {
        s.reserved_tokens -= h->second.tokens;
        s.reserved_cost -= h->second.cost;
        s.held.erase(h);
      }
      s.used_tokens += settle.tokens;
      s.used_cost += settle.cost;
    }
  }
}

asio::awaitable<Result<ScopeCount>> MemoryLimitStore::peek(const LimitScope& scope, std::int64_t now_ms) {
  ScopeCount c;
  c.budget_tokens = scope.seed_tokens;
  c.budget_cost = scope.seed_cost;
  std::lock_guard lock(mutex_);
  auto it = states_.find(scope.id);
  if (it == states_.end()) co_return c;
  State& s = it->second;
  trim(s, now_ms);
  c.requests = static_cast<std::int64_t>(s.log.size());
  c.tokens = s.log_tokens;
  c.oldest_ms = s.log.empty() ? 0 : s.log.front().at;
  if (s.period_start == scope.period_start_ms) {
    c.budget_tokens = s.used_tokens + s.reserved_tokens;
    c.budget_cost = s.used_cost + s.reserved_cost;
  }
  co_return c;
}

void MemoryLimitStore::sweep(std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  for (auto it = states_.begin(); it != states_.end();) {
    State& s = it->second;
    trim(s, now_ms);
    // A budget's state lives as long as the process: its settled usage is newer than the store's.
    const bool idle = s.log.empty() && s.held.empty() && s.period_start < 0;
    it = idle ? states_.erase(it) : std::next(it);
  }
}

std::size_t MemoryLimitStore::scopes() const {
  std::lock_guard lock(mutex_);
  return states_.size();
}

// ---- reservations ----

struct Reservation::Held {
  Limiter* limiter = nullptr;
  LimitSettle settle;
  std::atomic<bool> done{false};

  Held(Limiter* l, LimitSettle s) : limiter(l), settle(std::move(s)) {}
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  ~Held() {
    if (done.exchange(true)) return;
    settle.tokens = 0;
    settle.cost = 0;
    limiter->release(std::move(settle));
  }
};

void Reservation::settle(std::int64_t tokens, std::int64_t cost_nanos) const {
  if (!held_ || held_->done.exchange(true)) return;
  // Settled once (done): the held copy is not needed any more.
  LimitSettle s = std::move(held_->settle);
  held_->settle.reserved_tokens = s.reserved_tokens;
  s.tokens = std::max<std::int64_t>(tokens, 0);
  s.cost = std::max<std::int64_t>(cost_nanos, 0);
  held_->limiter->release(std::move(s));
}

std::int64_t Reservation::reserved_tokens() const {
  return held_ ? held_->settle.reserved_tokens : 0;
}

// ---- the limiter ----

Limiter::Limiter(LimiterOptions options, std::unique_ptr<LimitStore> store, BudgetSource& budgets,
                 const Clock& clock)
    : options_(options),
      store_(std::move(store)),
      budgets_(budgets),
      clock_(clock),
      // Short enough that "<prefix>.<hex counter>" stays within std::string's inline buffer.
      rid_prefix_(crypto::new_public_id().substr(0, 6)) {}

std::int64_t Limiter::reservation_tokens(std::int64_t prompt_tokens,
                                         std::optional<std::int64_t> max_tokens) const {
  return std::max<std::int64_t>(prompt_tokens, 0) + max_tokens.value_or(options_.default_max_tokens);
}

std::vector<LimitScope> Limiter::scopes_of(const auth::Principal& who, std::int64_t now_ms) const {
  std::vector<LimitScope> scopes;
  auto add = [&](std::string_view prefix, const std::string& owner, bool is_key, const LimitSettings& l,
                 std::int64_t default_rpm, std::int64_t default_tpm) {
    LimitScope s;
    s.is_key = is_key;
    s.rpm = l.rate_limit_per_minute.value_or(default_rpm);
    s.tpm = l.tokens_per_minute.value_or(default_tpm);
    s.token_budget = l.token_budget.value_or(0);
    s.spend_budget = l.spend_budget_nanos.value_or(0);
    s.period = l.budget_period;
    if (!s.windowed() && !s.budgeted()) return;
    if (s.budgeted()) std::tie(s.period_start_ms, s.period_end_ms) = budget_period_bounds(s.period, now_ms);
    s.id.reserve(prefix.size() + owner.size());
    s.id.append(prefix).append(owner);
    scopes.push_back(std::move(s));
  };
  if (who.via == auth::Via::kServiceKey && who.api_key_id) {
    add("k:", *who.api_key_id, true, who.key_limits, options_.default_rpm, options_.default_tpm);
  }
  add("u:", who.user_id, false, who.user_limits, 0, 0);
  return scopes;
}

asio::awaitable<Status> Limiter::seed(std::vector<LimitScope>& scopes, const auth::Principal& who) {
  // Re-read now and then: with Redis the seed is used only when Redis lost the period's state.
  constexpr std::int64_t kSeedTtlMs = 60'000;
  const std::int64_t now = clock_.now_ms();
  for (LimitScope& scope : scopes) {
    if (!scope.budgeted()) continue;
    const std::string key = fmt::format("{}:{}", scope.id, scope.period_start_ms);
    {
      std::lock_guard lock(seeds_mutex_);
      if (auto it = seeds_.find(key); it != seeds_.end() && now - it->second.read_at_ms < kSeedTtlMs) {
        scope.seed_tokens = it->second.used.tokens;
        scope.seed_cost = it->second.used.cost;
        continue;
      }
    }
    std::string key_id = scope.is_key ? who.api_key_id.value_or("") : "";
    std::string user_id = scope.is_key ? "" : who.user_id;
    auto used = co_await budgets_.used(std::move(key_id), std::move(user_id), scope.period_start_ms);
    if (!used) co_return std::unexpected(used.error());
    scope.seed_tokens = used->tokens;
    scope.seed_cost = used->cost;
    std::lock_guard lock(seeds_mutex_);
    if (seeds_.size() > 100'000) seeds_.clear();
    seeds_[key] = Seed{*used, now};
  }
  co_return Status{};
}

namespace {

std::string whose(const LimitScope& scope) {
  return scope.is_key ? "this service key" : "this user (all of their keys and sessions together)";
}

std::string period_words(BudgetPeriod period) {
  switch (period) {
    case BudgetPeriod::kDay:
      return "today (UTC)";
    case BudgetPeriod::kMonth:
      return "this month (UTC)";
    case BudgetPeriod::kTotal:
      return "in total";
  }
  return "";
}

std::string iso_utc(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
}

RateLimitInfo info_of(const std::vector<LimitScope>& scopes, const LimitDecision& d, std::int64_t now) {
  RateLimitInfo info;
  for (std::size_t i = 0; i < scopes.size() && i < d.counts.size(); ++i) {
    const LimitScope& s = scopes[i];
    const ScopeCount& c = d.counts[i];
    const std::int64_t reset = c.oldest_ms > 0 ? std::max<std::int64_t>(c.oldest_ms + kWindowMs - now, 0) : 0;
    if (s.rpm > 0) {
      RateWindow w{s.rpm, std::max<std::int64_t>(s.rpm - c.requests, 0), reset};
      if (!info.requests || w.remaining < info.requests->remaining) info.requests = w;
    }
    if (s.tpm > 0) {
      RateWindow w{s.tpm, std::max<std::int64_t>(s.tpm - c.tokens, 0), reset};
      if (!info.tokens || w.remaining < info.tokens->remaining) info.tokens = w;
    }
  }
  return info;
}

}  // namespace

asio::awaitable<Result<Limiter::InUse>> Limiter::user_in_use(std::string user_id, LimitSettings limits) {
  auth::Principal who;
  who.user_id = std::move(user_id);
  who.user_limits = limits;
  const std::int64_t now = clock_.now_ms();
  std::vector<LimitScope> scopes = scopes_of(who, now);
  InUse out;
  if (scopes.empty()) {
    out.scope.id = "u:" + who.user_id;
    co_return out;
  }
  if (scopes.front().budgeted()) {
    Status seeded = co_await seed(scopes, who);
    if (!seeded) co_return std::unexpected(seeded.error());
  }
  out.scope = scopes.front();
  auto count = co_await store_->peek(out.scope, now);
  if (!count) co_return std::unexpected(count.error());
  out.count = *count;
  co_return out;
}

asio::awaitable<Result<Admission>> Limiter::admit(const auth::Principal& who, std::int64_t tokens,
                                                  std::int64_t cost_nanos) {
  const auto t0 = std::chrono::steady_clock::now();
  LimitAsk ask;
  ask.now_ms = clock_.now_ms();
  ask.scopes = scopes_of(who, ask.now_ms);
  if (ask.scopes.empty()) {
    counters_.allowed_none.fetch_add(1, std::memory_order_relaxed);
    co_return Admission{};
  }
  const bool budgeted =
      std::any_of(ask.scopes.begin(), ask.scopes.end(), [](const LimitScope& s) { return s.budgeted(); });
  if (budgeted) {
    Status seeded = co_await seed(ask.scopes, who);
    if (!seeded) {
      spdlog::warn("could not read budget usage: {}", seeded.error().message);
      co_return fail(ErrorKind::kUnavailable, "Budgets cannot be checked right now; retry shortly");
    }
  }
  ask.rid = fmt::format("{}.{:x}", rid_prefix_, next_rid_.fetch_add(1, std::memory_order_relaxed));
  ask.tokens = std::max<std::int64_t>(tokens, 1);
  ask.cost = std::max<std::int64_t>(cost_nanos, 0);
  ask.reservation_ttl_ms = options_.reservation_ttl_ms;
  Result<LimitDecision> decided;
  if (std::optional<LimitDecision> now = store_->decide_now(ask)) {
    decided = std::move(*now);
  } else {
    decided = co_await store_->admit(ask);
  }
  counters_.admit_ns_sum.fetch_add(
      static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
              .count()),
      std::memory_order_relaxed);
  counters_.admit_count.fetch_add(1, std::memory_order_relaxed);
  if (!decided) {
    counters_.unavailable.fetch_add(1, std::memory_order_relaxed);
    if (options_.fail_open) {
      counters_.failed_open.fetch_add(1, std::memory_order_relaxed);
      co_return Admission{};
    }
    Error e(ErrorKind::kUnavailable,
            "Limits cannot be checked right now (the limit store is unreachable); retry shortly");
    auto info = std::make_shared<RateLimitInfo>();
    info->retry_after_ms = 1000;
    e.rate = std::move(info);
    co_return std::unexpected(std::move(e));
  }
  const LimitDecision& d = *decided;
  RateLimitInfo info = info_of(ask.scopes, d, ask.now_ms);
  if (d.refusal == Refusal::kNone) {
    (ask.scopes.front().is_key ? counters_.allowed_key : counters_.allowed_user)
        .fetch_add(1, std::memory_order_relaxed);
    LimitSettle settle;
    settle.rid = ask.rid;
    settle.admitted_ms = ask.now_ms;
    settle.reserved_tokens = ask.tokens;
    settle.reserved_cost = ask.cost;
    for (const LimitScope& s : ask.scopes) {
      settle.scopes.push_back(
          SettleScope{s.id, s.windowed(), s.budgeted(), s.period_start_ms, s.period_end_ms});
    }
    Admission a;
    a.info = info;
    a.reservation.held_ = std::make_shared<Reservation::Held>(this, std::move(settle));
    co_return a;
  }
  const LimitScope& scope = ask.scopes[d.scope];
  std::atomic<std::uint64_t>& counter =
      d.refusal == Refusal::kTokenBudget || d.refusal == Refusal::kSpendBudget
          ? (scope.is_key ? counters_.budget_key : counters_.budget_user)
          : (scope.is_key ? counters_.limited_key : counters_.limited_user);
  counter.fetch_add(1, std::memory_order_relaxed);
  const std::int64_t retry_s = (d.retry_after_ms + 999) / 1000;
  Error e;
  switch (d.refusal) {
    case Refusal::kRequests:
      e = Error(ErrorKind::kRateLimited,
                fmt::format("Rate limit reached: {} allows {} requests per minute; retry in {}s",
                            whose(scope), scope.rpm, retry_s));
      break;
    case Refusal::kTokens:
      e = Error(ErrorKind::kRateLimited,
                fmt::format("Rate limit reached: {} allows {} tokens per minute and this call reserves {} "
                            "(prompt estimate + max_tokens); retry in {}s",
                            whose(scope), scope.tpm, ask.tokens, retry_s));
      break;
    case Refusal::kTooLarge:
      co_return fail(
          ErrorKind::kValidation,
          fmt::format("This call reserves {} tokens (prompt estimate + max_tokens), more than the {} "
                      "tokens per minute {} allows; lower max_tokens",
                      ask.tokens, scope.tpm, whose(scope)),
          std::string("max_tokens"));
    case Refusal::kTokenBudget:
      e = Error(ErrorKind::kBudgetExceeded,
                fmt::format("Token budget used up: {} may use {} tokens {} and {} are used or reserved{}",
                            whose(scope), scope.token_budget, period_words(scope.period),
                            d.counts[d.scope].budget_tokens,
                            scope.period_end_ms > 0 ? "; it resets at " + iso_utc(scope.period_end_ms) : ""));
      break;
    case Refusal::kSpendBudget:
      e = Error(
          ErrorKind::kBudgetExceeded,
          fmt::format("Spend budget used up: {} may spend ${} {} and ${} is spent or reserved{}",
                      whose(scope), static_cast<double>(scope.spend_budget) / 1e9, period_words(scope.period),
                      static_cast<double>(d.counts[d.scope].budget_cost) / 1e9,
                      scope.period_end_ms > 0 ? "; it resets at " + iso_utc(scope.period_end_ms) : ""));
      break;
    case Refusal::kNone:
      break;
  }
  info.retry_after_ms = d.retry_after_ms;
  e.rate = std::make_shared<RateLimitInfo>(info);
  co_return std::unexpected(std::move(e));
}

}  // namespace parley::services
