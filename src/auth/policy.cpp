#include "auth/policy.hpp"

namespace parley::auth {

std::string_view role_name(Role role) noexcept {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kManager:
      return "manager";
    case Role::kUser:
      return "user";
  }
  return "user";
}

std::optional<Role> parse_role(std::string_view text) noexcept {
  if (text == "admin") return Role::kAdmin;
  if (text == "manager") return Role::kManager;
  if (text == "user") return Role::kUser;
  return std::nullopt;
}

Status authorize_owned(const Principal& who, Access access, std::string_view owner_user_id) {
  if (who.user_id == owner_user_id || who.role == Role::kAdmin) return {};
  if (who.role == Role::kManager) {
    if (access == Access::kRead) return {};
    return fail(ErrorKind::kForbidden, "Managers cannot change other users' data");
  }
  return fail(ErrorKind::kNotFound, "Not found");
}

Status authorize(const Principal& who, Operation operation) {
  switch (operation) {
    case Operation::kListUsers:
    case Operation::kListAllKeys:
    case Operation::kReadAnyUsage:
    case Operation::kReadAudit:
      if (who.role == Role::kAdmin || who.role == Role::kManager) return {};
      break;
    case Operation::kCreateUser:
    case Operation::kChangeRole:
    case Operation::kChangeActive:
    case Operation::kSetLimits:
      if (who.role == Role::kAdmin) return {};
      break;
  }
  return fail(ErrorKind::kForbidden, "Your role does not allow this");
}

}  // namespace parley::auth
