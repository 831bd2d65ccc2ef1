#include <array>
#include <cctype>
#include <ctime>

#include "api/deps.hpp"

namespace parley::api {

namespace asio = boost::asio;

services::RequestMeta meta_of(const http::RequestContext& ctx) {
  return {ctx.request_id, ctx.client_address};
}

std::string iso8601(std::int64_t unix_ms) {
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", std::string_view(buf, n), unix_ms % 1000);
}

std::optional<std::int64_t> parse_iso8601(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]
  auto num = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
    if (pos + len > t.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return std::nullopt;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  if (t.size() < 19 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') ||
      t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), s = num(17, 2);
  // No leap second (60): the stored instant would be a second later than written. No 31 April or
  // 29 February of a common year: mktime-style normalisation would move it into the next month.
  if (!y || !mo || !d || !h || !mi || !s || *mo < 1 || *mo > 12 || *d < 1 || *h > 23 || *mi > 59 || *s > 59) {
    return std::nullopt;
  }
  const bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
  static constexpr std::array<int, 12> kDays{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (*d > kDays[static_cast<std::size_t>(*mo - 1)] + (*mo == 2 && leap ? 1 : 0)) return std::nullopt;
  std::size_t i = 19;
  std::int64_t ms = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    int digits = 0;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      if (digits < 3) ms = ms * 10 + (t[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0) return std::nullopt;
    for (int k = digits; k < 3; ++k) ms *= 10;
  }
  std::int64_t offset_s = 0;
  if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) {
    ++i;
  } else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    auto oh = num(i + 1, 2), om = num(i + 4, 2);
    if (!oh || !om || i + 3 >= t.size() || t[i + 3] != ':' || *oh > 23 || *om > 59) return std::nullopt;
    offset_s = (std::int64_t{*oh} * 3600 + std::int64_t{*om} * 60) * (t[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return std::nullopt;  // a timestamp without a zone is ambiguous
  }
  if (i != t.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = *y - 1900;
  tm.tm_mon = *mo - 1;
  tm.tm_mday = *d;
  tm.tm_hour = *h;
  tm.tm_min = *mi;
  tm.tm_sec = *s;
  std::int64_t secs = static_cast<std::int64_t>(timegm(&tm)) - offset_s;
  return secs * 1000 + ms;
}

http::Response error_of(const Error& error, const http::RequestContext& ctx) {
  http::Response res = http::error_response(error, ctx.request_id);
  if (error.kind == ErrorKind::kUnauthorized) res.set(boost::beast::http::field::www_authenticate, "Bearer");
  return res;
}

http::Response busy_response(const http::RequestContext& ctx, std::string_view what) {
  http::Response res = http::error_response(
      Error(ErrorKind::kUnavailable, fmt::format("Too many {} requests at once; retry in a second", what)),
      ctx.request_id);
  res.set(boost::beast::http::field::retry_after, "1");
  return res;
}

asio::awaitable<Result<services::CachedUser>> Authenticator::active_user(const std::string& user_id) {
  std::optional<services::CachedUser> user = principals_.get(user_id);
  if (!user || (!user->active && !user->username.empty())) {
    // Miss (or an inactive entry, re-checked so reactivation applies at once): read it.
    auto loaded = co_await pool_.run([this, &user_id] { return users_.status(user_id); });
    if (!loaded) co_return std::unexpected(loaded.error());
    if (!*loaded) co_return fail(ErrorKind::kUnauthorized, "This account no longer exists");
    user = **loaded;
  }
  if (user->username.empty()) co_return fail(ErrorKind::kUnauthorized, "This account no longer exists");
  if (!user->active) co_return fail(ErrorKind::kUnauthorized, "This account is deactivated");
  co_return *user;
}

asio::awaitable<Result<auth::Principal>> Authenticator::authenticate(const http::RequestContext& ctx) {
  std::string_view authorization = ctx.header("Authorization");
  std::string_view api_key = ctx.header("X-API-Key");
  std::string_view bearer;
  if (!authorization.empty()) {
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    auto is_bearer = [](std::string_view h) {
      if (h.size() <= 7 || h[6] != ' ') return false;
      for (std::size_t i = 0; i < 6; ++i) {
        if (std::tolower(static_cast<unsigned char>(h[i])) != "bearer"[i]) return false;
      }
      return true;
    };
    if (is_bearer(authorization)) {
      bearer = authorization.substr(7);
      while (!bearer.empty() && bearer.front() == ' ') bearer.remove_prefix(1);
    } else {
      co_return fail(ErrorKind::kUnauthorized, "Authorization must use the Bearer scheme");
    }
  }
  if (api_key.empty() && bearer.starts_with("ai_")) api_key = bearer;
  if (!api_key.empty()) co_return co_await authenticate_key(api_key);
  if (bearer.empty()) co_return fail(ErrorKind::kUnauthorized, "Authentication required");
  co_return co_await authenticate_token(bearer);
}

asio::awaitable<Result<auth::Principal>> Authenticator::authenticate_credential(std::string_view credential) {
  if (credential.empty()) co_return fail(ErrorKind::kUnauthorized, "Authentication required");
  if (credential.starts_with("ai_")) co_return co_await authenticate_key(credential);
  co_return co_await authenticate_token(credential);
}

asio::awaitable<Result<auth::Principal>> Authenticator::authenticate_key(std::string_view api_key) {
  auth::Principal p;
  if (api_key.size() > 128) co_return fail(ErrorKind::kUnauthorized, "Invalid API key");
  std::string key(api_key);
  std::optional<services::KeyIdentity> id = keys_.cached(key);
  if (!id) {
    auto loaded = co_await pool_.run([this, &key] { return keys_.load(key); });
    if (!loaded) co_return std::unexpected(loaded.error());
    id = *loaded;
  }
  if (id->key_id.empty()) co_return fail(ErrorKind::kUnauthorized, "Invalid API key");
  if (!id->usable) co_return fail(ErrorKind::kUnauthorized, "This API key is inactive or revoked");
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  if (id->expires_at && *id->expires_at <= now_ms)
    co_return fail(ErrorKind::kUnauthorized, "This API key has expired");
  auto user = co_await active_user(id->user_id);
  if (!user) co_return std::unexpected(user.error());
  keys_.note_use(id->key_id);
  p.user_id = id->user_id;
  p.username = user->username;
  p.role = user->role;
  p.via = auth::Via::kServiceKey;
  p.api_key_id = id->key_id;
  p.key_limits = id->limits;
  p.user_limits = user->limits;
  co_return p;
}

asio::awaitable<Result<auth::Principal>> Authenticator::authenticate_token(std::string_view bearer) {
  auth::Principal p;
  auto claims = tokens_.verify_access(bearer);
  if (!claims) co_return std::unexpected(claims.error());
  auto user = co_await active_user(claims->user_id);
  if (!user) co_return std::unexpected(user.error());
  p.user_id = claims->user_id;
  p.username = user->username;
  p.role = user->role;
  p.via = auth::Via::kAccessToken;
  p.token_expires_at = claims->expires_at;
  p.user_limits = user->limits;
  co_return p;
}

}  // namespace parley::api
