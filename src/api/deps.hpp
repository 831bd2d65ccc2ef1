// What the identity handlers share: the services, the authenticator and the blocking pool. Built
// in app/serve.cpp; handlers hold a reference.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <string>

#include "auth/principal.hpp"
#include "http/blocking_pool.hpp"
#include "http/gate.hpp"
#include "http/router.hpp"
#include "http/types.hpp"
#include "services/api_key_service.hpp"
#include "services/audit_log.hpp"
#include "services/context.hpp"
#include "services/limiter.hpp"
#include "services/preference_service.hpp"
#include "services/principal_cache.hpp"
#include "services/token_service.hpp"
#include "services/user_service.hpp"

namespace parley::api {

// Resolves the caller of a request: a service key (Authorization: Bearer ai_… or X-API-Key) or an
// access token (Authorization: Bearer <JWT>). Warm lookups touch no database; misses run on the
// blocking pool. A deactivated or deleted user is refused (within auth.principal_cache_ttl_ms when
// the change was made on another instance; at once on this one).
class Authenticator {
 public:
  Authenticator(services::TokenService& tokens, services::UserService& users, services::ApiKeyService& keys,
                services::PrincipalCache& principals, http::BlockingPool& pool)
      : tokens_(tokens), users_(users), keys_(keys), principals_(principals), pool_(pool) {}

  boost::asio::awaitable<Result<auth::Principal>> authenticate(const http::RequestContext& ctx);
  // A credential presented some other way (a WebSocket's token): a service key (ai_…) or an
  // access token.
  boost::asio::awaitable<Result<auth::Principal>> authenticate_credential(std::string_view credential);

 private:
  boost::asio::awaitable<Result<services::CachedUser>> active_user(const std::string& user_id);
  boost::asio::awaitable<Result<auth::Principal>> authenticate_key(std::string_view api_key);
  boost::asio::awaitable<Result<auth::Principal>> authenticate_token(std::string_view bearer);

  services::TokenService& tokens_;
  services::UserService& users_;
  services::ApiKeyService& keys_;
  services::PrincipalCache& principals_;
  http::BlockingPool& pool_;
};

struct IdentityDeps {
  services::UserService& users;
  services::TokenService& tokens;
  services::ApiKeyService& keys;
  services::PreferenceService& preferences;
  services::AuditLog& audit;
  Authenticator& authenticator;
  http::BlockingPool& pool;
  const Clock& clock;
  // Registration and login (argon2id) run on their own pool, so a flood of them never delays the
  // database calls of other requests; the gate bounds its queue (503 past it).
  http::BlockingPool& hashing_pool;
  http::Gate& hashing;
  // Registration attempts per client address (429 past the allowance).
  services::LoginLimiter& limiter;
  // Rate limits and budgets: what a user's limits hold now (set once the providers are built).
  services::Limiter* limits = nullptr;
};

// 503 SERVICE_UNAVAILABLE with Retry-After: 1, for a request refused by a full Gate.
http::Response busy_response(const http::RequestContext& ctx, std::string_view what);

services::RequestMeta meta_of(const http::RequestContext& ctx);

// ISO 8601 UTC with milliseconds: "2026-11-23T19:32:00.123Z".
std::string iso8601(std::int64_t unix_ms);
// Parses ISO 8601 / RFC 3339 timestamps ("2026-01-02T03:04:05Z", with optional fraction and
// offset) to unix ms.
std::optional<std::int64_t> parse_iso8601(std::string_view text);

// Renders a 401 with WWW-Authenticate, or any other error, in the envelope.
http::Response error_of(const Error& error, const http::RequestContext& ctx);

void register_identity_routes(http::Router& router, IdentityDeps& deps);

}  // namespace parley::api
