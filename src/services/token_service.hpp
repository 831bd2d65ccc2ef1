// Login and session tokens.
//  - Access tokens: JWT HS256 with sub (user id), role, iat, exp, jti, iss, aud; short-lived.
//  - Refresh tokens: opaque random strings ("rt_" + 48 base62), stored as SHA-256, rotated on
//    every use. Presenting a token that was already rotated revokes its whole family (every
//    token descended from the same login): a stolen token is useless once either party uses it.
// Failed logins are limited per username and per client address (LoginLimiter) and the answer
// never says which of username or password was wrong. BLOCKING; thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <string>

#include "auth/principal.hpp"
#include "config/config.hpp"
#include "core/clock.hpp"
#include "crypto/secret.hpp"
#include "services/audit_log.hpp"
#include "services/context.hpp"
#include "services/login_limiter.hpp"
#include "services/user_service.hpp"
#include "store/database.hpp"

namespace parley::services {

struct TokenPair {
  std::string access_token;
  std::int64_t expires_in = 0;  // seconds
  std::string refresh_token;
};

// Raised as kRateLimited with this hint for the Retry-After and X-RateLimit-* headers.
struct LoginBlocked {
  std::chrono::seconds retry_after{0};
  std::size_t limit = 0;  // failures allowed per window by the counter that is exhausted
};

struct AccessClaims {
  std::string user_id;
  std::optional<std::string> role;  // informative; the current role comes from the user record
  std::int64_t expires_at = 0;      // `exp`, unix seconds (0: none)
};

class TokenService {
 public:
  TokenService(store::Database& db, const Clock& clock, UserService& users, AuditLog& audit,
               LoginLimiter& limiter, crypto::Secret jwt_secret, const config::AuthConfig& auth);

  // OAuth2 password grant. kRateLimited (message says when to retry; `blocked` gets the details)
  // when limited, kUnauthorized "Incorrect username or password" otherwise on any failure.
  Result<TokenPair> login(std::string_view username, std::string_view password, const RequestMeta& meta,
                          LoginBlocked* blocked = nullptr);
  Result<TokenPair> refresh(std::string_view refresh_token, const RequestMeta& meta);
  // Revokes the refresh token's family. Unknown tokens are accepted silently (idempotent).
  Status logout(std::string_view refresh_token, const RequestMeta& meta);

  // Verifies an access token (ours, or an external server's signed with the same secret).
  // CPU only, no I/O: safe on an event-loop thread.
  [[nodiscard]] Result<AccessClaims> verify_access(std::string_view token) const;

  // How long a refresh token lives (auth.refresh_token_ttl_s): the session cookie's Max-Age.
  [[nodiscard]] std::uint64_t refresh_ttl_s() const { return auth_.refresh_token_ttl_s; }

  // Mints an access token (tests and the token endpoint).
  [[nodiscard]] std::string mint_access(const store::UserRecord& user) const;

 private:
  Result<TokenPair> issue(const store::UserRecord& user, const std::string& family_id);

  store::Database& db_;
  const Clock& clock_;
  UserService& users_;
  AuditLog& audit_;
  LoginLimiter& limiter_;
  crypto::Secret secret_;
  config::AuthConfig auth_;
};

}  // namespace parley::services
