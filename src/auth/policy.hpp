// The one place that decides who may do what. Handlers ask; they never compare roles themselves.
//
// Roles: admin (everything), manager (reads every user's objects, users, usage and stats; changes
// nothing of others), user (own objects only). A caller who may not even read another user's
// object gets 404 NOT_FOUND (the object's existence is not revealed); a caller who may read but
// not change it gets 403 FORBIDDEN.
#pragma once

#include <string_view>

#include "auth/principal.hpp"
#include "core/error.hpp"

namespace parley::auth {

enum class Access { kRead, kWrite };

// Objects owned by a user: the user record itself, preferences, keys, conversations, usage.
Status authorize_owned(const Principal& who, Access access, std::string_view owner_user_id);

// Deployment-wide operations.
enum class Operation {
  kListUsers,     // admin, manager
  kCreateUser,    // admin
  kChangeRole,    // admin (never on oneself)
  kChangeActive,  // admin (never on oneself)
  kReadAudit,     // admin
  kListAllKeys,   // admin, manager (read)
  kReadAnyUsage,  // admin, manager
  kSetLimits,     // admin: a user's limits and budgets
};
Status authorize(const Principal& who, Operation operation);

}  // namespace parley::auth
