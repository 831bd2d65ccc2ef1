// POST /api/v1/auth/register, /token, /refresh, /logout.
#include <boost/json.hpp>

#include "api/deps.hpp"
#include "api/json_input.hpp"
#include "api/render.hpp"

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

// The refresh_token field of /refresh and /logout (form or JSON).
Result<std::string> read_refresh_token(const RequestContext& ctx) {
  auto form = read_form_or_json(ctx);
  if (!form) return std::unexpected(form.error());
  std::string token = (*form)["refresh_token"];
  if (token.empty()) return validation("refresh_token", "refresh_token is required");
  return token;
}

bj::object render_tokens(const services::TokenPair& t) {
  return bj::object{{"access_token", t.access_token},
                    {"token_type", "bearer"},
                    {"expires_in", t.expires_in},
                    {"refresh_token", t.refresh_token}};
}

void set_rate_limit_headers(Response& res, std::chrono::seconds retry_after, std::size_t limit) {
  res.set(boost::beast::http::field::retry_after, std::to_string(retry_after.count()));
  res.set("X-RateLimit-Limit", std::to_string(limit));
  res.set("X-RateLimit-Remaining", "0");
  res.set("X-RateLimit-Reset", std::to_string(retry_after.count()));
}

Response no_store(Response res) {
  res.set(boost::beast::http::field::cache_control, "no-store");
  res.set(boost::beast::http::field::pragma, "no-cache");
  return res;
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

  router.add(Method::post, "/api/v1/auth/token", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
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
    co_return no_store(http::json_response(StatusCode::ok, render_tokens(*tokens)));
  });

  router.add(Method::post, "/api/v1/auth/refresh", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto token = read_refresh_token(ctx);
    if (!token) co_return error_of(token.error(), ctx);
    auto meta = meta_of(ctx);
    auto tokens = co_await d.pool.run([&] { return d.tokens.refresh(*token, meta); });
    if (!tokens) co_return error_of(tokens.error(), ctx);
    co_return no_store(http::json_response(StatusCode::ok, render_tokens(*tokens)));
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
