// Who is calling: the user a request acts as, their role, and how they proved it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/limits.hpp"

namespace parley::auth {

enum class Role { kUser, kManager, kAdmin };

std::string_view role_name(Role role) noexcept;
std::optional<Role> parse_role(std::string_view text) noexcept;

enum class Via { kAccessToken, kServiceKey };

struct Principal {
  std::string user_id;
  std::string username;
  Role role = Role::kUser;
  Via via = Via::kAccessToken;
  std::optional<std::string> api_key_id;  // set when via == kServiceKey
  LimitSettings key_limits;               // the service key's, as stored (via == kServiceKey)
  LimitSettings user_limits;              // the user's
  std::int64_t token_expires_at = 0;      // the access token's `exp` (unix seconds); 0 for service keys
};

}  // namespace parley::auth
