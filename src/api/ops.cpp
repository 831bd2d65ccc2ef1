#include "api/ops.hpp"

#include <boost/json.hpp>

#include "assets/assets.hpp"

namespace parley::api {

namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;

namespace {

Response asset_response(std::string_view name, std::string_view content_type, std::string_view csp = {}) {
  std::string_view data = assets::get(name);
  Response res = http::text_response(http::StatusCode::ok, std::string(data), content_type);
  res.set(boost::beast::http::field::cache_control, "public, max-age=3600");
  if (!csp.empty()) res.set("Content-Security-Policy", csp);
  return res;
}

}  // namespace

void register_ops_routes(http::Router& router, OpsDeps& deps) {
  router.add(Method::get, "/health", [&deps](RequestContext&) -> boost::asio::awaitable<Response> {
    co_return http::json_response(http::StatusCode::ok,
                                  bj::object{{"status", "ok"}, {"version", deps.version}});
  });

  router.add(Method::get, "/health/ready", [&deps](RequestContext& ctx) -> boost::asio::awaitable<Response> {
    Status s = co_await deps.ready();
    if (!s) co_return http::error_response(s.error(), ctx.request_id);
    co_return http::json_response(
        http::StatusCode::ok, bj::object{{"status", "ready"}, {"checks", bj::object{{"database", "ok"}}}});
  });

  router.add(Method::get, "/metrics", [&deps](RequestContext&) -> boost::asio::awaitable<Response> {
    co_return http::text_response(http::StatusCode::ok, deps.metrics.render(), "text/plain; version=0.0.4");
  });

  router.add(Method::get, "/openapi.json", [](RequestContext&) -> boost::asio::awaitable<Response> {
    co_return asset_response("openapi_json", "application/json");
  });

  // Swagger UI needs inline styles; scripts come only from this origin.
  static constexpr std::string_view kDocsCsp =
      "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
      "connect-src 'self'; frame-ancestors 'none'";
  router.add(Method::get, "/docs", [](RequestContext&) -> boost::asio::awaitable<Response> {
    co_return asset_response("docs_html", "text/html; charset=utf-8", kDocsCsp);
  });
  router.add(Method::get, "/docs/{asset}", [](RequestContext& ctx) -> boost::asio::awaitable<Response> {
    std::string_view asset = ctx.param("asset");
    if (asset == "swagger-ui-bundle.js") co_return asset_response("swagger_ui_js", "application/javascript");
    if (asset == "swagger-ui.css") co_return asset_response("swagger_ui_css", "text/css");
    if (asset == "init.js") co_return asset_response("docs_init_js", "application/javascript");
    co_return http::error_response(Error(ErrorKind::kNotFound, "No such documentation file"), ctx.request_id);
  });
}

}  // namespace parley::api
