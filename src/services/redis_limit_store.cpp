#include "services/redis_limit_store.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/this_coro.hpp>

namespace parley::services {

namespace asio = boost::asio;
using redis::Reply;

namespace {

// KEYS: 4 per scope (window, tokens, budget, reservations). ARGV: now, rid, tokens, cost, ttl_ms,
// n, deadline (Redis's clock, ms; 0: none), then 7 per scope: rpm, tpm, token budget, spend budget, seed
// tokens, seed cost, period end. Returns {refusal, scope (1-based), retry_ms, then per scope: requests,
// tokens, oldest, budget tokens, budget cost}. Refusals: 1 requests, 2 tokens, 3 too large, 4 token budget, 5
// spend;
// {-1} when the deadline had passed (the caller gave up waiting: nothing is counted).
// Shared by the admission and settlement scripts: numbers read from Redis, integers written to it
// (Redis refuses "-0" and exponents), and the release of one budget reservation.
constexpr std::string_view kLuaPrelude = R"lua(
local function num(x) return tonumber(x) or 0 end
local function int(x) if x == 0 then return '0' end return string.format('%.0f', x) end
local function release(b, r, id)
  local h = redis.call('HGET', b, 'r:' .. id)
  if h then
    local ht, hc = string.match(h, '(%d+):(%d+)')
    redis.call('HINCRBY', b, 'rt', int(-tonumber(ht)))
    redis.call('HINCRBY', b, 'rc', int(-tonumber(hc)))
    redis.call('HDEL', b, 'r:' .. id)
  end
  redis.call('ZREM', r, id)
end
)lua";

constexpr std::string_view kAdmitScript = R"lua(
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local want_t = tonumber(ARGV[3])
local want_c = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local deadline = tonumber(ARGV[7])
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then return {-1} end
end
local window = 60000
local refusal, refused, retry = 0, 0, 0
local counts = {}
for i = 1, n do
  local a = 7 + (i - 1) * 7
  local rpm, tpm, tb, sb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local w, t, b, r = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local c = {0, 0, 0, 0, 0}
  if rpm > 0 or tpm > 0 then
    local old = redis.call('ZRANGEBYSCORE', w, '-inf', now - window)
    if #old > 0 then
      local amounts = redis.call('HMGET', t, unpack(old))
      local freed = 0
      for _, v in ipairs(amounts) do freed = freed + num(v) end
      redis.call('HDEL', t, unpack(old))
      redis.call('ZREMRANGEBYSCORE', w, '-inf', now - window)
      if freed ~= 0 then redis.call('HINCRBY', t, '#', int(-freed)) end
    end
    c[1] = redis.call('ZCARD', w)
    c[2] = num(redis.call('HGET', t, '#'))
    local first = redis.call('ZRANGE', w, 0, 0, 'WITHSCORES')
    if #first > 0 then c[3] = tonumber(first[2]) end
    if refusal == 0 then
      if rpm > 0 and c[1] >= rpm then
        local leaving = redis.call('ZRANGE', w, c[1] - rpm, c[1] - rpm, 'WITHSCORES')
        refusal, refused, retry = 1, i, tonumber(leaving[2]) + window - now
      elseif tpm > 0 and want_t > tpm then
        refusal, refused = 3, i
      elseif tpm > 0 and c[2] + want_t > tpm then
        local need = c[2] + want_t - tpm
        local freed = 0
        local entries = redis.call('ZRANGE', w, 0, -1, 'WITHSCORES')
        for j = 1, #entries, 2 do
          freed = freed + num(redis.call('HGET', t, entries[j]))
          retry = tonumber(entries[j + 1]) + window - now
          if freed >= need then break end
        end
        refusal, refused = 2, i
      end
    end
  end
  if tb > 0 or sb > 0 then
    if redis.call('EXISTS', b) == 0 then
      redis.call('HSET', b, 'ut', ARGV[a + 5], 'uc', ARGV[a + 6], 'rt', '0', 'rc', '0')
      local ends = tonumber(ARGV[a + 7])
      if ends > 0 then redis.call('PEXPIREAT', b, int(ends + 86400000)) end
    end
    local stale = redis.call('ZRANGEBYSCORE', r, '-inf', now - ttl)
    for _, id in ipairs(stale) do release(b, r, id) end
    local v = redis.call('HMGET', b, 'ut', 'uc', 'rt', 'rc')
    c[4] = num(v[1]) + num(v[3])
    c[5] = num(v[2]) + num(v[4])
    if refusal == 0 then
      if tb > 0 and c[4] + want_t > tb then
        refusal, refused = 4, i
      elseif sb > 0 and (c[5] >= sb or c[5] + want_c > sb) then
        refusal, refused = 5, i
      end
    end
  end
  counts[i] = c
end
if refusal == 0 then
  for i = 1, n do
    local a = 7 + (i - 1) * 7
    local rpm, tpm, tb, sb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local w, t, b, r = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
    local c = counts[i]
    if rpm > 0 or tpm > 0 then
      redis.call('ZADD', w, int(now), rid)
      redis.call('HSET', t, rid, int(want_t))
      redis.call('HINCRBY', t, '#', int(want_t))
      redis.call('PEXPIRE', w, window + 1000)
      redis.call('PEXPIRE', t, window + 1000)
      c[1] = c[1] + 1
      c[2] = c[2] + want_t
      if c[3] == 0 then c[3] = now end
    end
    if tb > 0 or sb > 0 then
      redis.call('HINCRBY', b, 'rt', int(want_t))
      redis.call('HINCRBY', b, 'rc', int(want_c))
      redis.call('HSET', b, 'r:' .. rid, int(want_t) .. ':' .. int(want_c))
      redis.call('ZADD', r, int(now), rid)
      redis.call('PEXPIRE', r, ttl + window)
      c[4] = c[4] + want_t
      c[5] = c[5] + want_c
    end
  end
end
local out = {refusal, refused, retry}
for i = 1, n do
  for k = 1, 5 do out[#out + 1] = counts[i][k] end
end
return out
)lua";

// KEYS as above. ARGV: rid, tokens, cost, n, then 2 per scope: windowed, budgeted ("1"/"0").
constexpr std::string_view kSettleScript = R"lua(
local rid = ARGV[1]
local tok = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
for i = 1, n do
  local w, t, b, r = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  if ARGV[3 + 2 * i] == '1' then
    local old = redis.call('HGET', t, rid)
    if old then
      redis.call('HSET', t, rid, int(tok))
      redis.call('HINCRBY', t, '#', int(tok - tonumber(old)))
    end
  end
  if ARGV[4 + 2 * i] == '1' and redis.call('EXISTS', b) == 1 then
    release(b, r, rid)
    redis.call('HINCRBY', b, 'ut', int(tok))
    redis.call('HINCRBY', b, 'uc', int(cost))
  end
end
return 1
)lua";

Refusal refusal_of(std::int64_t code) {
  switch (code) {
    case 1:
      return Refusal::kRequests;
    case 2:
      return Refusal::kTokens;
    case 3:
      return Refusal::kTooLarge;
    case 4:
      return Refusal::kTokenBudget;
    case 5:
      return Refusal::kSpendBudget;
    default:
      return Refusal::kNone;
  }
}

// KEYS: one scope's 4. ARGV: now, seed tokens, seed cost. Read only: {requests, tokens, oldest,
// budget tokens, budget cost} of the window's live entries and the period's budget.
constexpr std::string_view kPeekScript = R"lua(
local now = tonumber(ARGV[1])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - 60000), '+inf', 'WITHSCORES')
local requests, tokens, oldest = 0, 0, 0
for j = 1, #live, 2 do
  requests = requests + 1
  tokens = tokens + (tonumber(redis.call('HGET', KEYS[2], live[j])) or 0)
  if oldest == 0 then oldest = tonumber(live[j + 1]) end
end
local bt, bc = tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 then
  local v = redis.call('HMGET', KEYS[3], 'ut', 'uc', 'rt', 'rc')
  bt = (tonumber(v[1]) or 0) + (tonumber(v[3]) or 0)
  bc = (tonumber(v[2]) or 0) + (tonumber(v[4]) or 0)
end
return {requests, tokens, oldest, bt, bc}
)lua";

void add_keys(std::vector<std::string>& out, const std::string& scope, std::int64_t period_start) {
  out.push_back(fmt::format("parley:{{{}}}:w", scope));
  out.push_back(fmt::format("parley:{{{}}}:t", scope));
  out.push_back(fmt::format("parley:{{{}}}:b:{}", scope, period_start));
  out.push_back(fmt::format("parley:{{{}}}:r:{}", scope, period_start));
}

// The Redis connection of the event loop that runs on this thread (each loop is one thread), set
// when an admission on it took one: a settlement made on the same loop is written on it at once,
// in order after that loop's admissions and before the HTTP answer leaves, so the next admission
// anywhere sees it.
struct LoopConnection {
  std::uint64_t store = 0;
  std::weak_ptr<redis::Connection> connection;
};
thread_local LoopConnection t_loop_connection;

std::uint64_t next_store_id() {
  static std::atomic<std::uint64_t> ids{0};
  return ++ids;
}

}  // namespace

RedisLimitStore::RedisLimitStore(redis::Url url, std::chrono::milliseconds timeout)
    : url_(std::move(url)), timeout_(timeout), id_(next_store_id()) {}

RedisLimitStore::~RedisLimitStore() = default;

std::shared_ptr<redis::Connection> RedisLimitStore::connection(const asio::any_io_executor& executor) {
  const void* context = &asio::query(executor, asio::execution::context);
  std::lock_guard lock(mutex_);
  auto& c = connections_[context];
  if (!c) c = std::make_shared<redis::Connection>(executor, url_, timeout_, health_);
  t_loop_connection = LoopConnection{id_, c};
  return c;
}

std::shared_ptr<redis::Connection> RedisLimitStore::some_connection() {
  std::lock_guard lock(mutex_);
  if (connections_.empty()) return nullptr;
  auto it = connections_.begin();
  std::advance(it, static_cast<long>(next_++ % connections_.size()));
  return it->second;
}

asio::awaitable<Result<Reply>> RedisLimitStore::eval(redis::Connection& c, bool admit_script,
                                                     std::vector<std::string> keys_and_args) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string sha;
    {
      std::lock_guard lock(mutex_);
      sha = admit_script ? sha_admit_ : sha_settle_;
    }
    if (sha.empty() || attempt > 0) {
      // Load both scripts (after a Redis restart or a SCRIPT FLUSH, too).
      std::vector<std::string> load_admit{"SCRIPT", "LOAD",
                                          std::string(kLuaPrelude) + std::string(kAdmitScript)};
      std::vector<std::string> load_settle{"SCRIPT", "LOAD",
                                           std::string(kLuaPrelude) + std::string(kSettleScript)};
      auto a = co_await c.command(std::move(load_admit));
      if (!a) co_return std::unexpected(a.error());
      auto s = co_await c.command(std::move(load_settle));
      if (!s) co_return std::unexpected(s.error());
      if (a->is_error() || s->is_error())
        co_return fail(ErrorKind::kUnavailable, "Redis refused the limit scripts");
      std::lock_guard lock(mutex_);
      sha_admit_ = a->str;
      sha_settle_ = s->str;
      sha = admit_script ? sha_admit_ : sha_settle_;
    }
    std::vector<std::string> command;
    command.push_back("EVALSHA");
    command.push_back(sha);
    command.insert(command.end(), keys_and_args.begin(), keys_and_args.end());
    auto reply = co_await c.command(std::move(command));
    if (!reply) co_return std::unexpected(reply.error());
    if (reply->is_error() && reply->str.starts_with("NOSCRIPT")) continue;
    if (reply->is_error()) {
      spdlog::warn("Redis limit script failed: {}", reply->str);
      co_return fail(ErrorKind::kUnavailable, "Redis refused the limit script");
    }
    co_return reply;
  }
  co_return fail(ErrorKind::kUnavailable, "Redis lost the limit scripts");
}

asio::awaitable<Result<LimitDecision>> RedisLimitStore::admit(const LimitAsk& ask) {
  auto c = connection(co_await asio::this_coro::executor);
  std::vector<std::string> args;
  args.push_back(std::to_string(ask.scopes.size() * 4));
  for (const LimitScope& s : ask.scopes) add_keys(args, s.id, s.period_start_ms);
  args.push_back(std::to_string(ask.now_ms));
  args.push_back(ask.rid);
  args.push_back(std::to_string(ask.tokens));
  args.push_back(std::to_string(ask.cost));
  args.push_back(std::to_string(ask.reservation_ttl_ms));
  args.push_back(std::to_string(ask.scopes.size()));
  // Past this (on Redis's clock) nobody waits for the answer any more: the script then counts nothing.
  const auto offset = c->clock_offset_ms();
  args.push_back(std::to_string(offset ? ask.now_ms + *offset + c->timeout().count() : 0));
  for (const LimitScope& s : ask.scopes) {
    args.push_back(std::to_string(s.rpm));
    args.push_back(std::to_string(s.tpm));
    args.push_back(std::to_string(s.token_budget));
    args.push_back(std::to_string(s.spend_budget));
    args.push_back(std::to_string(s.seed_tokens));
    args.push_back(std::to_string(s.seed_cost));
    args.push_back(std::to_string(s.period_end_ms));
  }
  auto reply = co_await eval(*c, true, std::move(args));
  if (!reply) co_return std::unexpected(reply.error());
  const auto& e = reply->elements;
  if (reply->type == Reply::Type::kArray && e.size() == 1 && e[0].integer == -1) {
    co_return fail(ErrorKind::kUnavailable, "Redis answered too late");
  }
  if (reply->type != Reply::Type::kArray || e.size() != 3 + 5 * ask.scopes.size()) {
    co_return fail(ErrorKind::kUnavailable, "Redis answered the limit script unexpectedly");
  }
  LimitDecision d;
  d.refusal = refusal_of(e[0].integer);
  d.scope = e[1].integer > 0 ? static_cast<std::size_t>(e[1].integer - 1) : 0;
  d.retry_after_ms = std::max<std::int64_t>(e[2].integer, 0);
  if (d.refusal == Refusal::kTokenBudget || d.refusal == Refusal::kSpendBudget) {
    const LimitScope& s = ask.scopes[d.scope];
    d.retry_after_ms = s.period_end_ms > 0 ? s.period_end_ms - ask.now_ms : 0;
  }
  for (std::size_t i = 0; i < ask.scopes.size(); ++i) {
    const std::size_t b = 3 + 5 * i;
    ScopeCount count;
    count.requests = e[b].integer;
    count.tokens = e[b + 1].integer;
    count.oldest_ms = e[b + 2].integer;
    count.budget_tokens = e[b + 3].integer;
    count.budget_cost = e[b + 4].integer;
    d.counts.push_back(count);
  }
  co_return d;
}

asio::awaitable<Result<ScopeCount>> RedisLimitStore::peek(const LimitScope& scope, std::int64_t now_ms) {
  auto c = connection(co_await asio::this_coro::executor);
  std::vector<std::string> command;
  command.push_back("EVAL");
  command.push_back(std::string(kPeekScript));
  command.push_back("4");
  add_keys(command, scope.id, scope.period_start_ms);
  command.push_back(std::to_string(now_ms));
  command.push_back(std::to_string(scope.seed_tokens));
  command.push_back(std::to_string(scope.seed_cost));
  auto reply = co_await c->command(std::move(command));
  if (!reply) co_return std::unexpected(reply.error());
  if (reply->type != Reply::Type::kArray || reply->elements.size() != 5) {
    co_return fail(ErrorKind::kUnavailable, "Redis answered the limit peek unexpectedly");
  }
  const auto& e = reply->elements;
  ScopeCount count;
  count.requests = e[0].integer;
  count.tokens = e[1].integer;
  count.oldest_ms = e[2].integer;
  count.budget_tokens = e[3].integer;
  count.budget_cost = e[4].integer;
  co_return count;
}

void RedisLimitStore::settle(LimitSettle settle) {
  std::shared_ptr<redis::Connection> own;
  if (t_loop_connection.store == id_) own = t_loop_connection.connection.lock();
  auto c = own ? own : some_connection();
  if (!c) return;
  std::vector<std::string> args;
  args.push_back(std::to_string(settle.scopes.size() * 4));
  for (const SettleScope& s : settle.scopes) add_keys(args, s.id, s.period_start_ms);
  args.push_back(settle.rid);
  args.push_back(std::to_string(settle.tokens));
  args.push_back(std::to_string(settle.cost));
  args.push_back(std::to_string(settle.scopes.size()));
  for (const SettleScope& s : settle.scopes) {
    args.push_back(s.windowed ? "1" : "0");
    args.push_back(s.budgeted ? "1" : "0");
  }
  std::string sha;
  {
    std::lock_guard lock(mutex_);
    sha = sha_settle_;
  }
  if (sha.empty()) return;  // nothing was admitted through Redis yet
  args.insert(args.begin(), {"EVALSHA", sha});
  if (own) {
    own->send(args);  // on this loop's thread: written now, after this loop's admissions
    return;
  }
  asio::post(c->executor(), [c, args = std::move(args)] { c->send(args); });
}

void RedisLimitStore::publish(std::string channel, std::string message) {
  auto c = some_connection();
  if (!c) return;
  asio::post(c->executor(), [c, channel = std::move(channel), message = std::move(message)]() mutable {
    c->send({"PUBLISH", std::move(channel), std::move(message)});
  });
}

void RedisLimitStore::close() {
  std::lock_guard lock(mutex_);
  for (auto& [context, c] : connections_) c->close();
  connections_.clear();
}

}  // namespace parley::services
