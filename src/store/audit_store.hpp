// Security audit trail (issue 3): login success/failure, key created/revoked, role or activity
// changes, with actor, target, time and request id. Append-only; events outlive the users they
// name (actor_user_id is not a foreign key).
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kConflict (param "id")
// for a duplicate id; kDatabase/kUnavailable otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "store/database.hpp"
#include "store/page.hpp"

namespace parley::store {

struct AuditEvent {
  std::string id;
  std::optional<std::string> actor_user_id;  // std::nullopt: anonymous
  std::string action;                        // e.g. "auth.login.failed"
  std::optional<std::string> target_type;    // e.g. "user", "api_key"
  std::optional<std::string> target_id;
  std::optional<std::string> ip;
  std::optional<std::string> request_id;
  std::optional<std::string> detail;  // JSON object text
  std::int64_t created_at = 0;        // unix ms
};

struct AuditQuery {
  PageRequest page;
  std::optional<std::string> actor_user_id;  // only this actor's events
  std::optional<std::string> action;         // only this action
  std::optional<std::int64_t> since_ms;      // only events at or after (unix ms)
  std::optional<std::int64_t> until_ms;      // only events before (unix ms)
};

class AuditStore {
 public:
  explicit AuditStore(Executor& db) : db_(db) {}

  Status append(const AuditEvent& event);

  // Newest first (created_at descending, then id descending), with the total.
  Result<Page<AuditEvent>> list(const AuditQuery& query);

 private:
  Executor& db_;
};

}  // namespace parley::store
