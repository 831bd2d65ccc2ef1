// POST /api/v1/auth/register, /token, /refresh, /logout; DELETE /api/v1/auth/refresh; GET
// /api/v1/auth/options.
//
// Browser sessions (docs/IDENTITY.md, "Browser sessions"): a request with the header
// "X-Parley-Session: cookie" gets its refresh token in an HttpOnly, SameSite=Strict cookie scoped
// to /api/v1/auth/refresh instead of the JSON body, and /refresh reads it from there. The header
// is one no cross-site form can send, and such requests are also refused when their Origin or
// Sec-Fetch-Site names another site.
#include <boost/json.hpp>

#include "api/deps.hpp"
#include "api/json_input.hpp"
#include "api/render.hpp"
#include "core/text.hpp"

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;

namespace {

// Reads a form (application/x-www-form-urlencoded) or JSON body into string fields.
Result<std::map<std::string, std::string>> read_form_or_json(const RequestContext& ctx) {
  std::string_view type = ctx.header("Content-Type");
  std::map<std::string, std::string> out;
  if (type.starts_with("application/x-www-form-urlencoded")) {
    std::string_view body = ctx.request.body();
    while (!body.empty()) {
      std::size_t amp = body.find('&');
      std::string_view pair = body.substr(0, amp);
      std::size_t eq = pair.find('=');
      if (eq != std::string_view::npos) {
        out[http::percent_decode(pair.substr(0, eq), true)] = http::percent_decode(pair.substr(eq + 1), true);
      }
      if (amp == std::string_view::npos) break;
      body.remove_prefix(amp + 1);
    }
    return out;
  }
  auto obj = read_object(ctx);
  if (!obj) return std::unexpected(obj.error());
  for (const auto& [k, v] : *obj) {
    if (v.is_string()) {
      out[std::string(k)] = std::string(v.as_string());
    } else if (!v.is_null()) {
      return validation(std::string(k), fmt::format("{} must be a string", std::string_view(k)));
    }
  }
  return out;
}

constexpr std::string_view kRefreshCookie = "parley_refresh";
constexpr std::string_view kRefreshPath = "/api/v1/auth/refresh";

// Does the request ask for a browser session (the refresh token in a cookie)?
bool cookie_session(const RequestContext& ctx) {
  return iequals(ctx.header("X-Parley-Session"), "cookie");
}

// A browser session request must come from this origin: refused when the browser says it comes
// from another site (Sec-Fetch-Site) or names another origin than the Host it was sent to.
Status check_same_origin(const RequestContext& ctx) {
  const std::string_view site = ctx.header("Sec-Fetch-Site");
  if (!site.empty() && site != "same-origin" && site != "none") {
    return std::unexpected(Error(ErrorKind::kForbidden, "Cross-site session requests are refused"));
  }
  const std::string_view origin = ctx.header("Origin");
  if (origin.empty()) return {};
  const std::size_t scheme = origin.find("://");
  if (scheme == std::string_view::npos || origin.substr(scheme + 3) != ctx.header("Host")) {
    return std::unexpected(Error(ErrorKind::kForbidden, "Cross-site session requests are refused"));
  }
  return {};
}

// The value of one cookie of the Cookie header ("" when absent).
std::string_view cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const std::size_t semi = header.find(';');
    std::string_view pair = trim_blanks(header.substr(0, semi));
    if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=') {
      return pair.substr(name.size() + 1);
    }
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return {};
}

// Set-Cookie for the refresh token (an empty token clears the cookie). Secure when the page was
// loaded over HTTPS (its Origin) or a proxy says the request came over HTTPS.
std::string refresh_cookie(const RequestContext& ctx, std::string_view token, std::uint64_t max_age_s) {
  const bool secure =
      ctx.header("Origin").starts_with("https://") || iequals(ctx.header("X-Forwarded-Proto"), "https");
  return fmt::format("{}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Strict{}", kRefreshCookie, token,
                     kRefreshPath, token.empty() ? 0 : max_age_s, secure ? "; Secure" : "");
}

// The refresh token of /refresh and /logout: the refresh_token field (form or JSON), or for a
// browser session the cookie.
Result<std::string> read_refresh_token(const RequestContext& ctx) {
  if (cookie_session(ctx) && ctx.request.body().empty()) {
    if (auto s = check_same_origin(ctx); !s) return std::unexpected(s.error());
    std::string token(cookie_value(ctx.header("Cookie"), kRefreshCookie));
    if (token.empty()) return std::unexpected(Error(ErrorKind::kUnauthorized, "No session; sign in"));
    return token;
  }
  auto form = read_form_or_json(ctx);
  if (!form) return std::unexpected(form.error());
  std::string token = (*form)["refresh_token"];
  if (token.empty()) return validation("refresh_token", "refresh_token is required");
  return token;
}

Response no_store(Response res) {
  res.set(boost::beast::http::field::cache_control, "no-store");
  res.set(boost::beast::http::field::pragma, "no-cache");
  return res;
}

bj::object render_tokens(const services::TokenPair& t) {
  return bj::object{{"access_token", t.access_token},
                    {"token_type", "bearer"},
                    {"expires_in", t.expires_in},
                    {"refresh_token", t.refresh_token}};
}

// The token answer: JSON with both tokens, or for a browser session the access token in JSON and
// the refresh token in the cookie.
Response token_response(const RequestContext& ctx, const services::TokenPair& t, std::uint64_t ttl_s) {
  bj::object body = render_tokens(t);
  Response res;
  if (cookie_session(ctx)) {
    body.erase("refresh_token");
    res = http::json_response(StatusCode::ok, body);
    res.set(boost::beast::http::field::set_cookie, refresh_cookie(ctx, t.refresh_token, ttl_s));
  } else {
    res = http::json_response(StatusCode::ok, body);
  }
  return no_store(std::move(res));
}

void set_rate_limit_headers(Response& res, std::chrono::seconds retry_after, std::size_t limit) {
  res.set(boost::beast::http::field::retry_after, std::to_string(retry_after.count()));
  res.set("X-RateLimit-Limit", std::to_string(limit));
  res.set("X-RateLimit-Remaining", "0");
  res.set("X-RateLimit-Reset", std::to_string(retry_after.count()));
}

}  // namespace

void register_auth_routes(http::Router& router, IdentityDeps& d) {
  router.add(Method::post, "/api/v1/auth/register", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    if (auto s = only_fields(*body, {"username", "email", "password", "phone_number"}); !s) {
      co_return error_of(s.error(), ctx);
    }
    services::NewUser input;
    auto username = get_string(*body, "username", true, {1, 64, true});
    auto email = get_string(*body, "email", true, {1, 254, true});
    auto password = get_string(*body, "password", true, {0, 4096});
    auto phone = get_string(*body, "phone_number", false, {0, 32, true});
    for (const auto* r : {&username, &email, &password, &phone}) {
      if (!*r) co_return error_of(r->error(), ctx);
    }
    input.username = **username;
    input.email = **email;
    input.password = **password;
    input.phone_number = *phone;
    auto meta = meta_of(ctx);
    auto pass = d.hashing.try_enter();
    if (!pass) co_return busy_response(ctx, "registration");
    // Malformed registrations are refused before they count against the address's allowance.
    if (auto s = d.users.check_new_user(input); !s) co_return error_of(s.error(), ctx);
    if (auto blocked = d.limiter.admit_registration(meta.client_address)) {
      Response res = error_of(
          Error(ErrorKind::kRateLimited, "Too many registrations from this address; try later"), ctx);
      set_rate_limit_headers(res, blocked->retry_after, blocked->limit);
      co_return res;
    }
    auto created = co_await d.hashing_pool.run([&] { return d.users.register_user(std::move(input), meta); });
    if (!created) co_return error_of(created.error(), ctx);
    co_return http::json_response(StatusCode::created, render_user(*created));
  });

  router.add(Method::get, "/api/v1/auth/options", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto mode = co_await d.pool.run([&] { return d.users.registration_mode(); });
    if (!mode) co_return error_of(mode.error(), ctx);
    co_return http::json_response(StatusCode::ok, bj::object{{"registration", *mode}});
  });

  router.add(Method::post, "/api/v1/auth/token", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    if (cookie_session(ctx)) {
      if (auto s = check_same_origin(ctx); !s) co_return error_of(s.error(), ctx);
    }
    auto form = read_form_or_json(ctx);
    if (!form) co_return error_of(form.error(), ctx);
    auto grant = form->find("grant_type");
    if (grant != form->end() && grant->second != "password") {
      co_return error_of(Error(ErrorKind::kValidation, "grant_type must be \"password\"", "grant_type"), ctx);
    }
    std::string username = (*form)["username"];
    std::string password = (*form)["password"];
    if (username.empty())
      co_return error_of(Error(ErrorKind::kValidation, "username is required", "username"), ctx);
    if (password.empty())
      co_return error_of(Error(ErrorKind::kValidation, "password is required", "password"), ctx);
    if (username.size() > 254 || password.size() > 4096) {
      co_return error_of(Error(ErrorKind::kUnauthorized, "Incorrect username or password"), ctx);
    }
    auto meta = meta_of(ctx);
    services::LoginBlocked blocked;
    auto pass = d.hashing.try_enter();
    if (!pass) co_return busy_response(ctx, "login");
    auto tokens =
        co_await d.hashing_pool.run([&] { return d.tokens.login(username, password, meta, &blocked); });
    if (!tokens) {
      Response res = error_of(tokens.error(), ctx);
      if (tokens.error().kind == ErrorKind::kRateLimited)
        set_rate_limit_headers(res, blocked.retry_after, blocked.limit);
      co_return res;
    }
    co_return token_response(ctx, *tokens, d.tokens.refresh_ttl_s());
  });

  router.add(Method::post, "/api/v1/auth/refresh", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto token = read_refresh_token(ctx);
    if (!token) co_return error_of(token.error(), ctx);
    auto meta = meta_of(ctx);
    auto tokens = co_await d.pool.run([&] { return d.tokens.refresh(*token, meta); });
    if (!tokens) {
      Response res = error_of(tokens.error(), ctx);
      // A refused cookie is of no further use: the browser forgets it.
      if (cookie_session(ctx)) res.set(boost::beast::http::field::set_cookie, refresh_cookie(ctx, "", 0));
      co_return res;
    }
    co_return token_response(ctx, *tokens, d.tokens.refresh_ttl_s());
  });

  // Signing out of a browser session: revokes the cookie's token family and clears the cookie
  // (the cookie is only sent to this path).
  router.add(Method::delete_, "/api/v1/auth/refresh", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    if (!cookie_session(ctx)) {
      co_return error_of(Error(ErrorKind::kBadRequest,
                               "DELETE /api/v1/auth/refresh ends a browser session: send "
                               "X-Parley-Session: cookie (API clients use /auth/logout)"),
                         ctx);
    }
    if (auto s = check_same_origin(ctx); !s) co_return error_of(s.error(), ctx);
    const std::string token(cookie_value(ctx.header("Cookie"), kRefreshCookie));
    if (!token.empty()) {
      auto meta = meta_of(ctx);
      auto s = co_await d.pool.run([&] { return d.tokens.logout(token, meta); });
      if (!s) co_return error_of(s.error(), ctx);
    }
    Response res{StatusCode::no_content, 11};
    res.set(boost::beast::http::field::set_cookie, refresh_cookie(ctx, "", 0));
    co_return no_store(std::move(res));
  });

  router.add(Method::post, "/api/v1/auth/logout", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto token = read_refresh_token(ctx);
    if (!token) co_return error_of(token.error(), ctx);
    auto meta = meta_of(ctx);
    auto s = co_await d.pool.run([&] { return d.tokens.logout(*token, meta); });
    if (!s) co_return error_of(s.error(), ctx);
    Response res{StatusCode::no_content, 11};
    co_return res;
  });
}

}  // namespace parley::api
