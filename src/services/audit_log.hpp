// Security events (logins, key creation and revocation, role and activity changes, user creation
// and deletion) written to the audit table with actor, target, time, client address and request
// id. BLOCKING; thread-safe. A failure to write an audit record is logged and never fails the
// operation that caused it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "services/context.hpp"
#include "store/audit_store.hpp"
#include "store/database.hpp"

namespace parley::services {

class AuditLog {
 public:
  AuditLog(store::Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  void record(std::optional<std::string> actor_user_id, std::string_view action, std::string_view target_type,
              std::optional<std::string> target_id, const RequestMeta& meta, std::string detail_json = {});

  Result<store::Page<store::AuditEvent>> list(const auth::Principal& who, const store::AuditQuery& query);

 private:
  store::Database& db_;
  const Clock& clock_;
};

}  // namespace parley::services
