// /api/v1/users/{user_id}/preferences (GET, PUT replaces, PATCH merges).
#include <boost/json.hpp>

#include "api/deps.hpp"
#include "api/json_input.hpp"
#include "api/render.hpp"

namespace parley::api {

namespace asio = boost::asio;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;

namespace {

Result<services::PreferencesPatch> read_patch(const bj::object& body) {
  if (auto s = only_fields(body, {"language", "tts_voice", "auto_reply_enabled", "conversation_timeout",
                                  "notifications", "default_model", "system_prompt"});
      !s) {
    return std::unexpected(s.error());
  }
  services::PreferencesPatch p;
  auto language = get_string(body, "language", false, {2, 35, true});
  if (!language) return std::unexpected(language.error());
  auto voice = get_string(body, "tts_voice", false, {1, 32, true});
  if (!voice) return std::unexpected(voice.error());
  auto auto_reply = get_bool(body, "auto_reply_enabled", false);
  if (!auto_reply) return std::unexpected(auto_reply.error());
  auto timeout = get_int(body, "conversation_timeout", false, 30, 86400);
  if (!timeout) return std::unexpected(timeout.error());
  auto notifications = get_bool(body, "notifications", false);
  if (!notifications) return std::unexpected(notifications.error());
  p.language = *language;
  p.tts_voice = *voice;
  p.auto_reply_enabled = *auto_reply;
  p.conversation_timeout = *timeout;
  p.notifications = *notifications;
  for (auto [name, field, max] : {std::tuple{"default_model", &p.default_model, std::size_t{128}},
                                  std::tuple{"system_prompt", &p.system_prompt, std::size_t{4000}}}) {
    auto it = body.find(name);
    if (it == body.end()) continue;
    if (it->value().is_null()) {
      *field = std::optional<std::string>{};
      continue;
    }
    auto v = get_string(body, name, false, {1, max});
    if (!v) return std::unexpected(v.error());
    *field = *v;
  }
  return p;
}

// PUT (replace) and PATCH (merge).
asio::awaitable<Response> save_preferences(IdentityDeps& d, RequestContext& ctx, bool replace) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  auto body = read_object(ctx);
  if (!body) co_return error_of(body.error(), ctx);
  auto patch = read_patch(*body);
  if (!patch) co_return error_of(patch.error(), ctx);
  std::string id(ctx.param("user_id"));
  auto prefs = co_await d.pool.run([&] { return d.preferences.save(*who, id, *patch, replace); });
  if (!prefs) co_return error_of(prefs.error(), ctx);
  co_return http::json_response(StatusCode::ok, render_preferences(*prefs));
}

}  // namespace

void register_preference_routes(http::Router& router, IdentityDeps& d) {
  router.add(Method::get, "/api/v1/users/{user_id}/preferences",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("user_id"));
               auto prefs = co_await d.pool.run([&] { return d.preferences.get(*who, id); });
               if (!prefs) co_return error_of(prefs.error(), ctx);
               co_return http::json_response(StatusCode::ok, render_preferences(*prefs));
             });
  router.add(Method::put, "/api/v1/users/{user_id}/preferences",
             [&d](RequestContext& ctx) { return save_preferences(d, ctx, true); });
  router.add(Method::patch, "/api/v1/users/{user_id}/preferences",
             [&d](RequestContext& ctx) { return save_preferences(d, ctx, false); });
}

}  // namespace parley::api
