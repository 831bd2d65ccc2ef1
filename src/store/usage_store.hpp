// Usage events (migrations 0003, 0004): one row per provider call made for a client, with token
// counts and latency; the database numbers the rows. Appended in batches; summed per key or per user over a
// time window.
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kDatabase/kUnavailable.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

struct UsageEvent {
  std::string user_id;
  std::optional<std::string> api_key_id;
  std::string provider;
  std::string model;
  std::string endpoint;  // "chat.completions", "embeddings", "chat", "summarize", ...
  int status = 200;
  bool streamed = false;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
  std::int64_t latency_ms = 0;
  std::int64_t cost_nanos = 0;  // USD × 1e9, from the provider's configured prices
  std::optional<std::string> request_id;
  std::int64_t created_at = 0;  // unix ms
};

struct UsageTotals {
  std::int64_t requests = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
  std::int64_t cost_nanos = 0;
};

struct UsageFilter {
  std::optional<std::string> api_key_id;
  std::optional<std::string> user_id;
  std::int64_t since_ms = 0;  // created_at >= since_ms
};

class UsageStore {
 public:
  explicit UsageStore(Executor& db) : db_(db) {}

  // All events in one transaction.
  Status append(std::span<const UsageEvent> events);
  Result<UsageTotals> totals(const UsageFilter& filter);

 private:
  Executor& db_;
};

}  // namespace parley::store
