// GET /api/v1/audit (admins and managers): security events, newest first, paginated, filterable.
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

void register_audit_routes(http::Router& router, IdentityDeps& d) {
  router.add(Method::get, "/api/v1/audit", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto page = read_page(ctx);
    if (!page) co_return error_of(page.error(), ctx);
    store::AuditQuery q;
    q.page = {page->limit, page->offset};
    if (auto a = ctx.query("action"); a && !a->empty()) q.action = a->substr(0, 128);
    if (auto a = ctx.query("actor_user_id"); a && !a->empty()) q.actor_user_id = a->substr(0, 64);
    for (auto [name, bound] : {std::pair{"since", &q.since_ms}, std::pair{"until", &q.until_ms}}) {
      auto text = ctx.query(name);
      if (!text || text->empty()) continue;
      *bound = parse_iso8601(*text);
      if (!*bound) {
        co_return error_of(Error(ErrorKind::kValidation,
                                 fmt::format("{} must be an ISO 8601 time, e.g. 2026-01-02T03:04:05Z", name),
                                 std::string(name)),
                           ctx);
      }
    }
    auto events = co_await d.pool.run([&] { return d.audit.list(*who, q); });
    if (!events) co_return error_of(events.error(), ctx);
    co_return http::json_response(StatusCode::ok,
                                  render_page(*events, page->limit, page->offset, render_audit_event));
  });
}

void register_auth_routes(http::Router& router, IdentityDeps& d);
void register_user_routes(http::Router& router, IdentityDeps& d);
void register_api_key_routes(http::Router& router, IdentityDeps& d);
void register_preference_routes(http::Router& router, IdentityDeps& d);

void register_identity_routes(http::Router& router, IdentityDeps& d) {
  register_auth_routes(router, d);
  register_user_routes(router, d);
  register_api_key_routes(router, d);
  register_preference_routes(router, d);
  register_audit_routes(router, d);
}

}  // namespace parley::api
