#include "services/audit_log.hpp"

#include <spdlog/spdlog.h>

#include "auth/policy.hpp"
#include "crypto/random.hpp"

namespace parley::services {

void AuditLog::record(std::optional<std::string> actor_user_id, std::string_view action,
                      std::string_view target_type, std::optional<std::string> target_id,
                      const RequestMeta& meta, std::string detail_json) {
  store::AuditEvent e;
  e.id = crypto::new_public_id();
  e.actor_user_id = std::move(actor_user_id);
  e.action = std::string(action);
  if (!target_type.empty()) e.target_type = std::string(target_type);
  e.target_id = std::move(target_id);
  if (!meta.client_address.empty()) e.ip = meta.client_address;
  if (!meta.request_id.empty()) e.request_id = meta.request_id;
  if (!detail_json.empty()) e.detail = std::move(detail_json);
  e.created_at = clock_.now_ms();
  store::AuditStore audit(db_);
  if (auto s = audit.append(e); !s) {
    spdlog::error("audit record {} failed: {} request_id={}", action, s.error().message, meta.request_id);
  }
  spdlog::info("audit action={} actor={} target={} request_id={}", action, e.actor_user_id.value_or("-"),
               e.target_id.value_or("-"), meta.request_id);
}

Result<store::Page<store::AuditEvent>> AuditLog::list(const auth::Principal& who,
                                                      const store::AuditQuery& query) {
  if (auto s = auth::authorize(who, auth::Operation::kReadAudit); !s) return std::unexpected(s.error());
  store::AuditStore audit(db_);
  return audit.list(query);
}

}  // namespace parley::services
