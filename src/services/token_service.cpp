#include "services/token_service.hpp"

#include <fmt/format.h>

#include "crypto/encoding.hpp"
#include "crypto/hash.hpp"
#include "crypto/jwt.hpp"
#include "crypto/random.hpp"
#include "store/refresh_token_store.hpp"
#include "store/user_store.hpp"

namespace parley::services {

namespace bj = boost::json;

namespace {
constexpr std::string_view kRefreshPrefix = "rt_";
std::string token_hash(std::string_view token) {
  return crypto::hex_encode(crypto::sha256(token));
}
Error bad_credentials() {
  return Error(ErrorKind::kUnauthorized, "Incorrect username or password");
}
Error bad_refresh() {
  return Error(ErrorKind::kUnauthorized, "Refresh token is invalid or expired");
}
}  // namespace

TokenService::TokenService(store::Database& db, const Clock& clock, UserService& users, AuditLog& audit,
                           LoginLimiter& limiter, crypto::Secret jwt_secret, const config::AuthConfig& auth)
    : db_(db),
      clock_(clock),
      users_(users),
      audit_(audit),
      limiter_(limiter),
      secret_(std::move(jwt_secret)),
      auth_(auth) {}

std::string TokenService::mint_access(const store::UserRecord& user) const {
  std::int64_t now = clock_.now_s();
  bj::object claims;
  claims["sub"] = user.id;
  claims["role"] = user.role;
  claims["iat"] = now;
  claims["exp"] = now + static_cast<std::int64_t>(auth_.access_token_ttl_s);
  claims["jti"] = crypto::random_base62(22);
  if (!auth_.jwt_issuer.empty()) claims["iss"] = auth_.jwt_issuer;
  if (!auth_.jwt_audience.empty()) claims["aud"] = auth_.jwt_audience;
  return crypto::sign_hs256(claims, secret_.reveal());
}

Result<TokenPair> TokenService::issue(const store::UserRecord& user, const std::string& family_id) {
  TokenPair pair;
  pair.access_token = mint_access(user);
  pair.expires_in = static_cast<std::int64_t>(auth_.access_token_ttl_s);
  pair.refresh_token = std::string(kRefreshPrefix) + crypto::random_base62(48);
  store::RefreshTokenRecord rec;
  rec.id = crypto::new_public_id();
  rec.user_id = user.id;
  rec.family_id = family_id;
  rec.token_hash = token_hash(pair.refresh_token);
  rec.created_at = clock_.now_ms();
  rec.expires_at = rec.created_at + static_cast<std::int64_t>(auth_.refresh_token_ttl_s) * 1000;
  store::RefreshTokenStore tokens(db_);
  if (auto s = tokens.create(rec); !s) return std::unexpected(s.error());
  return pair;
}

Result<TokenPair> TokenService::login(std::string_view username, std::string_view password,
                                      const RequestMeta& meta, LoginBlocked* blocked) {
  if (auto wait = limiter_.block(username, meta.client_address)) {
    if (blocked != nullptr) *blocked = LoginBlocked{wait->retry_after, wait->limit};
    audit_.record(std::nullopt, "auth.login.limited", "user", std::nullopt, meta);
    return fail(ErrorKind::kRateLimited,
                fmt::format("Too many failed logins; try again in {} s", wait->retry_after.count()));
  }
  auto found = users_.check_password(username, password);
  if (!found) return std::unexpected(found.error());
  if (!*found || !(*found)->is_active) {
    limiter_.record_failure(username, meta.client_address);
    // Name the account that was tried, when it exists, so guessing against it shows in the audit
    // log. Both failure paths read the row, so timing does not tell them apart.
    std::optional<std::string> target;
    if (*found) {
      target = (*found)->id;
    } else if (auto named = store::UserStore(db_).get_by_username(username); named && *named) {
      target = (*named)->id;
    }
    audit_.record(*found ? target : std::nullopt, "auth.login.failed", "user", target, meta);
    return std::unexpected(bad_credentials());
  }
  limiter_.record_success(username, meta.client_address);
  auto pair = issue(**found, crypto::new_public_id());
  if (pair) audit_.record((*found)->id, "auth.login.succeeded", "user", (*found)->id, meta);
  return pair;
}

Result<TokenPair> TokenService::refresh(std::string_view refresh_token, const RequestMeta& meta) {
  if (!refresh_token.starts_with(kRefreshPrefix) || refresh_token.size() > 128)
    return std::unexpected(bad_refresh());
  store::RefreshTokenStore tokens(db_);
  auto found = tokens.find_by_hash(token_hash(refresh_token));
  if (!found) return std::unexpected(found.error());
  if (!*found) return std::unexpected(bad_refresh());
  const store::RefreshTokenRecord& rec = **found;
  std::int64_t now = clock_.now_ms();
  if (rec.revoked_at || rec.expires_at <= now) return std::unexpected(bad_refresh());
  auto won = tokens.mark_rotated(rec.id, now);
  if (!won) return std::unexpected(won.error());
  if (!*won) {
    // A rotated token came back: someone holds a copy. End the whole family.
    (void)tokens.revoke_family(rec.family_id, now);
    audit_.record(rec.user_id, "auth.refresh.reused", "user", rec.user_id, meta);
    return std::unexpected(bad_refresh());
  }
  auto status = users_.status(rec.user_id);
  if (!status) return std::unexpected(status.error());
  if (!*status || !(*status)->active) return std::unexpected(bad_refresh());
  store::UserRecord user;
  user.id = rec.user_id;
  user.role = std::string(auth::role_name((*status)->role));
  return issue(user, rec.family_id);
}

Status TokenService::logout(std::string_view refresh_token, const RequestMeta& meta) {
  store::RefreshTokenStore tokens(db_);
  auto found = tokens.find_by_hash(token_hash(refresh_token));
  if (!found) return std::unexpected(found.error());
  if (!*found) return {};
  auto revoked = tokens.revoke_family((*found)->family_id, clock_.now_ms());
  if (!revoked) return std::unexpected(revoked.error());
  audit_.record((*found)->user_id, "auth.logout", "user", (*found)->user_id, meta);
  return {};
}

Result<AccessClaims> TokenService::verify_access(std::string_view token) const {
  crypto::VerifyOptions options;
  options.now = clock_.now_s();
  options.leeway_seconds = static_cast<std::int64_t>(auth_.jwt_leeway_s);
  if (!auth_.jwt_issuer.empty()) options.issuer = auth_.jwt_issuer;
  if (!auth_.jwt_audience.empty()) options.audience = auth_.jwt_audience;
  auto claims = crypto::verify_hs256(token, secret_.reveal(), options);
  if (!claims) return fail(ErrorKind::kUnauthorized, "Invalid or expired access token");
  AccessClaims out;
  // `sub` is the parley user id; tokens from an external auth server may use `user_id` instead.
  for (std::string_view name : {"sub", "user_id"}) {
    auto it = claims->find(name);
    if (it == claims->end()) continue;
    if (it->value().is_string()) out.user_id = std::string(it->value().as_string());
    if (!out.user_id.empty()) break;
  }
  if (out.user_id.empty() || out.user_id.size() > 64)
    return fail(ErrorKind::kUnauthorized, "Access token has no subject");
  if (auto it = claims->find("role"); it != claims->end() && it->value().is_string()) {
    out.role = std::string(it->value().as_string());
  }
  if (auto it = claims->find("exp"); it != claims->end() && it->value().is_number()) {
    out.expires_at = it->value().is_int64()    ? it->value().as_int64()
                     : it->value().is_uint64() ? static_cast<std::int64_t>(it->value().as_uint64())
                                               : static_cast<std::int64_t>(it->value().as_double());
  }
  return out;
}

}  // namespace parley::services
