// Usage events (migrations 0003, 0004, 0006): one row per provider call made for a client, with
// token counts, latency and cost; the database numbers the rows. Appended in batches, each batch
// also added to the daily rollups (usage_daily: per UTC day, user, key, provider and model;
// usage_daily_models: per UTC day, provider and model, for the whole deployment) in the same
// transaction. Read as records (newest first, keyset-paginated), as totals since a time (budget
// seeding) and as summaries per day and per model (from the rollups only).
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kDatabase/kUnavailable.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

inline constexpr std::int64_t kDayMs = 86'400'000;

// The unix ms of the UTC midnight that starts the day of `unix_ms`.
constexpr std::int64_t utc_day_start(std::int64_t unix_ms) noexcept {
  const std::int64_t r = unix_ms % kDayMs;
  return unix_ms - (r < 0 ? r + kDayMs : r);
}

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

// A stored event with the id the database gave it.
struct UsageRecord : UsageEvent {
  std::int64_t id = 0;
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

// Where a records page continues: the (created_at, id) of the last record of the previous page.
struct UsageCursor {
  std::int64_t created_at = 0;
  std::int64_t id = 0;
};

inline constexpr std::int64_t kMaxUsagePage = 5000;

struct UsageRecordQuery {
  std::optional<std::string> api_key_id;
  std::optional<std::string> user_id;
  std::optional<std::int64_t> since_ms;  // created_at >= since_ms
  std::optional<std::int64_t> until_ms;  // created_at < until_ms
  std::optional<UsageCursor> after;      // records strictly older than this one
  std::int64_t limit = 50;               // clamped to [1, kMaxUsagePage]
};

struct UsageRecordPage {
  std::vector<UsageRecord> items;  // newest first: created_at, then id, descending
  bool has_more = false;           // more records match beyond this page
};

struct UsageSummaryQuery {
  std::optional<std::string> api_key_id;
  std::optional<std::string> user_id;
  std::int64_t from_day = 0;  // a UTC midnight (unix ms); days >= from_day
};

struct UsageAmounts {
  std::int64_t requests = 0;
  std::int64_t errors = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t total_tokens = 0;
  std::int64_t cost_nanos = 0;
  std::int64_t latency_ms_sum = 0;

  UsageAmounts& operator+=(const UsageAmounts& o) noexcept;
};

struct UsageDay {
  std::int64_t day = 0;  // unix ms of the UTC midnight
  UsageAmounts amounts;
};

struct UsageModel {
  std::string provider;
  std::string model;
  UsageAmounts amounts;
};

struct UsageSummary {
  std::vector<UsageDay> by_day;      // days with usage, ascending
  std::vector<UsageModel> by_model;  // most requests first, then provider and model
};

class UsageStore {
 public:
  explicit UsageStore(Executor& db) : db_(db) {}

  // All events in one transaction, with their rollups (one upsert per day, user, key, provider and
  // model of the batch).
  Status append(std::span<const UsageEvent> events);
  // Whole days from the rollups, the part of the first day after since_ms from the events.
  Result<UsageTotals> totals(const UsageFilter& filter);
  Result<UsageRecordPage> records(const UsageRecordQuery& query);
  // Where the records at positions n and n + 1 of query's order are (0-based; query.limit is
  // ignored), as far as they exist: bounds a long export without reading the rows.
  Result<std::vector<UsageCursor>> positions(const UsageRecordQuery& query, std::int64_t n);
  // From the rollups only.
  Result<UsageSummary> summary(const UsageSummaryQuery& query);

 private:
  Executor& db_;
};

}  // namespace parley::store
