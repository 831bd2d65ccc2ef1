// /api/v1/api-keys and /api/v1/api-keys/{key_id}.
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

void register_api_key_routes(http::Router& router, IdentityDeps& d) {
  router.add(Method::post, "/api/v1/api-keys", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    if (auto s = only_fields(*body, {"name", "rate_limit_per_minute", "tokens_per_minute", "token_budget",
                                     "spend_budget_usd", "budget_period", "expires_at", "user_id"});
        !s) {
      co_return error_of(s.error(), ctx);
    }
    auto name = get_string(*body, "name", true, {1, 100, true, true});
    if (!name) co_return error_of(name.error(), ctx);
    auto limits = read_limits_patch(*body);
    if (!limits) co_return error_of(limits.error(), ctx);
    auto expires = get_string(*body, "expires_at", false, {1, 64});
    if (!expires) co_return error_of(expires.error(), ctx);
    auto owner = get_string(*body, "user_id", false, {1, 64});
    if (!owner) co_return error_of(owner.error(), ctx);
    services::NewApiKey input{**name, {}, std::nullopt, *owner};
    limits->apply_to(input.limits);
    if (*expires) {
      input.expires_at_ms = parse_iso8601(**expires);
      if (!input.expires_at_ms) {
        co_return error_of(
            Error(ErrorKind::kValidation, "expires_at must be an RFC 3339 timestamp", "expires_at"), ctx);
      }
    }
    auto meta = meta_of(ctx);
    auto created = co_await d.pool.run([&] { return d.keys.create(*who, std::move(input), meta); });
    if (!created) co_return error_of(created.error(), ctx);
    bj::object out = render_api_key(created->record, d.clock.now_ms());
    out["key"] = created->key;  // the only time the key is shown
    Response res = http::json_response(StatusCode::created, out);
    res.set(boost::beast::http::field::cache_control, "no-store");
    co_return res;
  });

  router.add(Method::get, "/api/v1/api-keys", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto page = read_page(ctx);
    if (!page) co_return error_of(page.error(), ctx);
    bool all = ctx.query("all").value_or("") == "true";
    auto keys = co_await d.pool.run([&] { return d.keys.list(*who, all, {page->limit, page->offset}); });
    if (!keys) co_return error_of(keys.error(), ctx);
    std::int64_t now = d.clock.now_ms();
    co_return http::json_response(StatusCode::ok,
                                  render_page(*keys, page->limit, page->offset,
                                              [now](const auto& k) { return render_api_key(k, now); }));
  });

  router.add(Method::get, "/api/v1/api-keys/{key_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("key_id"));
               auto key = co_await d.pool.run([&] { return d.keys.get(*who, id); });
               if (!key) co_return error_of(key.error(), ctx);
               co_return http::json_response(StatusCode::ok, render_api_key(*key, d.clock.now_ms()));
             });

  router.add(
      Method::patch, "/api/v1/api-keys/{key_id}", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        auto who = co_await d.authenticator.authenticate(ctx);
        if (!who) co_return error_of(who.error(), ctx);
        auto body = read_object(ctx);
        if (!body) co_return error_of(body.error(), ctx);
        if (auto s = only_fields(*body, {"name", "is_active", "rate_limit_per_minute", "tokens_per_minute",
                                         "token_budget", "spend_budget_usd", "budget_period"});
            !s) {
          co_return error_of(s.error(), ctx);
        }
        services::ApiKeyPatch patch;
        auto name = get_string(*body, "name", false, {1, 100, true, true});
        if (!name) co_return error_of(name.error(), ctx);
        auto active = get_bool(*body, "is_active", false);
        if (!active) co_return error_of(active.error(), ctx);
        patch.name = *name;
        patch.is_active = *active;
        auto limits = read_limits_patch(*body);
        if (!limits) co_return error_of(limits.error(), ctx);
        patch.limits = *limits;
        std::string id(ctx.param("key_id"));
        auto meta = meta_of(ctx);
        auto key = co_await d.pool.run([&] { return d.keys.update(*who, id, std::move(patch), meta); });
        if (!key) co_return error_of(key.error(), ctx);
        co_return http::json_response(StatusCode::ok, render_api_key(*key, d.clock.now_ms()));
      });

  router.add(Method::delete_, "/api/v1/api-keys/{key_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("key_id"));
               auto meta = meta_of(ctx);
               auto s = co_await d.pool.run([&] { return d.keys.revoke(*who, id, meta); });
               if (!s) co_return error_of(s.error(), ctx);
               co_return Response{StatusCode::no_content, 11};
             });
}

}  // namespace parley::api
