// /api/v1/users, /api/v1/users/me, /api/v1/users/{user_id}.
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

// What a user's limits hold now: the last minute's calls and tokens, the budget period's use.
bj::object render_in_use(const services::LimitScope& scope, const services::ScopeCount& c,
                         std::int64_t now_ms) {
  bj::object out{
      {"requests_last_minute", c.requests},
      {"tokens_last_minute", c.tokens},
      {"window_resets_in_ms",
       c.oldest_ms > 0 ? std::max<std::int64_t>(c.oldest_ms + services::kWindowMs - now_ms, 0) : 0}};
  if (scope.budgeted()) {
    out["budget_tokens_used"] = c.budget_tokens;
    out["budget_spend_usd"] = usd(c.budget_cost);
    out["period_start"] = iso8601(scope.period_start_ms);
    out["period_end"] =
        scope.period_end_ms > 0 ? bj::value(iso8601(scope.period_end_ms)) : bj::value(nullptr);
  }
  return out;
}

// PUT (`replace`: fields not given are removed) or PATCH a user's limits; admins only.
asio::awaitable<Response> set_limits(IdentityDeps& d, RequestContext& ctx, bool replace) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  auto body = read_object(ctx);
  if (!body) co_return error_of(body.error(), ctx);
  if (auto s = only_fields(*body, {"rate_limit_per_minute", "tokens_per_minute", "token_budget",
                                   "spend_budget_usd", "budget_period"});
      !s) {
    co_return error_of(s.error(), ctx);
  }
  auto patch = read_limits_patch(*body);
  if (!patch) co_return error_of(patch.error(), ctx);
  std::string id(ctx.param("user_id"));
  auto meta = meta_of(ctx);
  auto user = co_await d.pool.run([&] { return d.users.set_limits(*who, id, *patch, replace, meta); });
  if (!user) co_return error_of(user.error(), ctx);
  bj::object out = render_limits(user->limits);
  out["user_id"] = user->id;
  co_return http::json_response(StatusCode::ok, out);
}

}  // namespace

void register_user_routes(http::Router& router, IdentityDeps& d) {
  router.add(Method::get, "/api/v1/users", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto page = read_page(ctx);
    if (!page) co_return error_of(page.error(), ctx);
    store::UserListQuery q;
    q.page = {page->limit, page->offset};
    if (auto s = ctx.query("search"); s && !s->empty()) {
      if (s->size() > 254)
        co_return error_of(Error(ErrorKind::kValidation, "search is too long", "search"), ctx);
      q.search = *s;
    }
    auto users = co_await d.pool.run([&] { return d.users.list(*who, q); });
    if (!users) co_return error_of(users.error(), ctx);
    co_return http::json_response(StatusCode::ok,
                                  render_page(*users, page->limit, page->offset, render_user));
  });

  router.add(Method::post, "/api/v1/users", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    if (auto s = only_fields(*body, {"username", "email", "password", "phone_number", "role", "is_active"});
        !s) {
      co_return error_of(s.error(), ctx);
    }
    auto username = get_string(*body, "username", true, {1, 64, true});
    auto email = get_string(*body, "email", true, {1, 254, true});
    auto password = get_string(*body, "password", true, {0, 4096});
    auto phone = get_string(*body, "phone_number", false, {0, 32, true});
    auto role = get_string(*body, "role", false, {0, 16});
    auto active = get_bool(*body, "is_active", false);
    for (const auto* r : {&username, &email, &password, &phone, &role}) {
      if (!*r) co_return error_of(r->error(), ctx);
    }
    if (!active) co_return error_of(active.error(), ctx);
    services::NewUser input{**username, **email,           *phone,
                            **password, auth::Role::kUser, active->value_or(true)};
    if (*role) {
      auto parsed = auth::parse_role(**role);
      if (!parsed)
        co_return error_of(Error(ErrorKind::kValidation, "role must be admin, manager or user", "role"), ctx);
      input.role = *parsed;
    }
    auto meta = meta_of(ctx);
    auto created = co_await d.pool.run([&] { return d.users.create_user(*who, input, meta); });
    if (!created) co_return error_of(created.error(), ctx);
    co_return http::json_response(StatusCode::created, render_user(*created));
  });

  router.add(Method::get, "/api/v1/users/me", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto user = co_await d.pool.run([&] { return d.users.get(*who, who->user_id); });
    if (!user) co_return error_of(user.error(), ctx);
    co_return http::json_response(StatusCode::ok, render_user(*user));
  });

  router.add(Method::get, "/api/v1/users/{user_id}", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    std::string id(ctx.param("user_id"));
    auto user = co_await d.pool.run([&] { return d.users.get(*who, id); });
    if (!user) co_return error_of(user.error(), ctx);
    co_return http::json_response(StatusCode::ok, render_user(*user));
  });

  router.add(
      Method::patch, "/api/v1/users/{user_id}", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        auto who = co_await d.authenticator.authenticate(ctx);
        if (!who) co_return error_of(who.error(), ctx);
        auto body = read_object(ctx);
        if (!body) co_return error_of(body.error(), ctx);
        if (auto s = only_fields(*body, {"username", "email", "phone_number", "password", "current_password",
                                         "role", "is_active"});
            !s) {
          co_return error_of(s.error(), ctx);
        }
        services::UserPatch patch;
        auto username = get_string(*body, "username", false, {1, 64, true});
        auto email = get_string(*body, "email", false, {1, 254, true});
        auto password = get_string(*body, "password", false, {0, 4096});
        auto current = get_string(*body, "current_password", false, {0, 4096});
        auto role = get_string(*body, "role", false, {0, 16});
        auto active = get_bool(*body, "is_active", false);
        for (const auto* r : {&username, &email, &password, &current, &role}) {
          if (!*r) co_return error_of(r->error(), ctx);
        }
        if (!active) co_return error_of(active.error(), ctx);
        patch.username = *username;
        patch.email = *email;
        patch.password = *password;
        patch.current_password = *current;
        patch.is_active = *active;
        if (*role) {
          auto parsed = auth::parse_role(**role);
          if (!parsed)
            co_return error_of(Error(ErrorKind::kValidation, "role must be admin, manager or user", "role"),
                               ctx);
          patch.role = *parsed;
        }
        if (auto it = body->find("phone_number"); it != body->end()) {
          if (it->value().is_null()) {
            patch.phone_number = std::optional<std::string>{};
          } else {
            auto phone = get_string(*body, "phone_number", false, {0, 32, true});
            if (!phone) co_return error_of(phone.error(), ctx);
            patch.phone_number = *phone;
          }
        }
        std::string id(ctx.param("user_id"));
        auto meta = meta_of(ctx);
        auto user = co_await d.pool.run([&] { return d.users.update(*who, id, std::move(patch), meta); });
        if (!user) co_return error_of(user.error(), ctx);
        co_return http::json_response(StatusCode::ok, render_user(*user));
      });

  router.add(Method::get, "/api/v1/users/{user_id}/limits",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("user_id"));
               auto user = co_await d.pool.run([&] { return d.users.get(*who, id); });
               if (!user) co_return error_of(user.error(), ctx);
               bj::object out = render_limits(user->limits);
               out["user_id"] = user->id;
               if (d.limits != nullptr) {
                 auto now = co_await d.limits->user_in_use(user->id, user->limits);
                 if (!now) co_return error_of(now.error(), ctx);
                 out["in_use"] = render_in_use(now->scope, now->count, d.clock.now_ms());
               }
               co_return http::json_response(StatusCode::ok, out);
             });
  router.add(Method::put, "/api/v1/users/{user_id}/limits",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               co_return co_await set_limits(d, ctx, true);
             });
  router.add(Method::patch, "/api/v1/users/{user_id}/limits",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               co_return co_await set_limits(d, ctx, false);
             });

  router.add(Method::delete_, "/api/v1/users/{user_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("user_id"));
               auto meta = meta_of(ctx);
               auto s = co_await d.pool.run([&] { return d.users.remove(*who, id, meta); });
               if (!s) co_return error_of(s.error(), ctx);
               co_return Response{StatusCode::no_content, 11};
             });
}

}  // namespace parley::api
