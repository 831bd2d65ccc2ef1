#include "api/ops.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "assets/assets.hpp"

namespace parley::api {

namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;

namespace {

// Does Accept-Encoding allow gzip? (A listed "gzip" without q=0.)
bool accepts_gzip(std::string_view accept) {
  while (!accept.empty()) {
    const std::size_t comma = accept.find(',');
    std::string_view item = accept.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const std::size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding == "gzip" || coding == "x-gzip") {
      const std::string_view params = semi == std::string_view::npos ? std::string_view() : item.substr(semi);
      const std::size_t q = params.find("q=");
      return q == std::string_view::npos ||
             params.substr(q + 2).find_first_not_of("0.") != std::string_view::npos;
    }
    if (comma == std::string_view::npos) break;
    accept.remove_prefix(comma + 1);
  }
  return false;
}

// Does If-None-Match name this ETag (or "*")?
bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  if (if_none_match.empty()) return false;
  if (if_none_match.find('*') != std::string_view::npos) return true;
  return if_none_match.find(etag) != std::string_view::npos;
}

// A strong ETag from the content: FNV-1a 64.
std::string content_etag(std::string_view data) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return fmt::format("\"{:016x}\"", h);
}

// A linked-in file, served from the binary's own bytes (no copy per request: a thousand slow
// readers of the 1.7 MB Swagger bundle hold no copy of it each), compressed at build time for
// clients that accept gzip, with an ETag from its content so that a revalidation is a 304.
// A request naming the current version of a file (`?v=` its ETag's hex, as the /docs page links
// them) gets it as immutable: a new build links a new URL.
Response asset_response(const OpsDeps& deps, RequestContext& ctx, std::string_view name,
                        std::string_view content_type, std::string_view csp = {},
                        std::string_view data_override = {}) {
  const auto tag = deps.etags.find(name);
  const std::string_view etag = tag == deps.etags.end() ? std::string_view() : std::string_view(tag->second);
  const bool gzip = data_override.empty() && accepts_gzip(ctx.header("Accept-Encoding"));
  const std::optional<std::string> version = ctx.query("v");
  const bool immutable = version && etag.size() > 2 && *version == etag.substr(1, etag.size() - 2);
  Response res{http::StatusCode::ok, 11};
  if (!etag.empty() && etag_matches(ctx.header("If-None-Match"), etag)) {
    res.result(http::StatusCode::not_modified);
    res.content_length(0);
  } else {
    std::string_view data = data_override.empty() ? assets::get(name) : data_override;
    std::string_view compressed = gzip ? assets::get(std::string(name) + ".gz") : std::string_view();
    if (!compressed.empty()) {
      data = compressed;
      res.set(boost::beast::http::field::content_encoding, "gzip");
    }
    ctx.static_body = data;
    res.content_length(data.size());
    res.set(boost::beast::http::field::content_type, content_type);
  }
  if (!etag.empty()) res.set(boost::beast::http::field::etag, etag);
  res.set(boost::beast::http::field::vary, "Accept-Encoding");
  res.set(boost::beast::http::field::cache_control,
          immutable               ? "public, max-age=31536000, immutable"
          : data_override.empty() ? "public, max-age=3600"
                                  : "no-cache");  // a page names its assets' versions: revalidate it
  if (!csp.empty()) res.set("Content-Security-Policy", csp);
  return res;
}

// `html` with each of its asset URLs (`"<path>"`) versioned by content (`"<path>?v=<etag hex>"`),
// so that the page's assets may be cached as immutable.
std::string versioned_page(std::string html, const OpsDeps& deps,
                           std::initializer_list<std::pair<const char*, const char*>> assets_by_path) {
  for (auto [path, name] : assets_by_path) {
    const std::string quoted = std::string("\"") + path + "\"";
    const std::string& etag = deps.etags.at(name);
    const std::size_t at = html.find(quoted);
    if (at == std::string::npos) continue;
    html.replace(at, quoted.size(),
                 fmt::format("\"{}?v={}\"", path, std::string_view(etag).substr(1, etag.size() - 2)));
  }
  return html;
}

}  // namespace

void register_ops_routes(http::Router& router, OpsDeps& deps) {
  for (const char* name :
       {"openapi_json", "docs_init_js", "swagger_ui_js", "swagger_ui_css", "console_js", "console_css"}) {
    deps.etags.emplace(name, content_etag(assets::get(name)));
  }
  deps.docs_html = versioned_page(std::string(assets::get("docs_html")), deps,
                                  {{"/docs/swagger-ui.css", "swagger_ui_css"},
                                   {"/docs/swagger-ui-bundle.js", "swagger_ui_js"},
                                   {"/docs/init.js", "docs_init_js"}});
  deps.etags.emplace("docs_html", content_etag(deps.docs_html));
  std::string console_source(assets::get("console_html"));
  if (!deps.console_dir.empty()) {
    auto read = [&](const char* file) {
      std::ifstream in(std::filesystem::path(deps.console_dir) / file, std::ios::binary);
      if (!in) throw std::runtime_error(fmt::format("PARLEY_CONSOLE_DIR: cannot read {}", file));
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    console_source = read("index.html");
    deps.console_js = read("console.js");
    deps.console_css = read("console.css");
    deps.etags["console_js"] = content_etag(deps.console_js);
    deps.etags["console_css"] = content_etag(deps.console_css);
  }
  deps.console_html =
      versioned_page(std::move(console_source), deps,
                     {{"/console/console.js", "console_js"}, {"/console/console.css", "console_css"}});
  deps.etags.emplace("console_html", content_etag(deps.console_html));
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

  router.add(Method::get, "/openapi.json", [&deps](RequestContext& ctx) -> boost::asio::awaitable<Response> {
    co_return asset_response(deps, ctx, "openapi_json", "application/json");
  });

  // Swagger UI needs inline styles; scripts come only from this origin.
  static constexpr std::string_view kDocsCsp =
      "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
      "connect-src 'self'; frame-ancestors 'none'";
  router.add(Method::get, "/docs", [&deps](RequestContext& ctx) -> boost::asio::awaitable<Response> {
    co_return asset_response(deps, ctx, "docs_html", "text/html; charset=utf-8", kDocsCsp, deps.docs_html);
  });
  router.add(Method::get, "/docs/{asset}", [&deps](RequestContext& ctx) -> boost::asio::awaitable<Response> {
    std::string_view asset = ctx.param("asset");
    if (asset == "swagger-ui-bundle.js")
      co_return asset_response(deps, ctx, "swagger_ui_js", "application/javascript");
    if (asset == "swagger-ui.css") co_return asset_response(deps, ctx, "swagger_ui_css", "text/css");
    if (asset == "init.js") co_return asset_response(deps, ctx, "docs_init_js", "application/javascript");
    co_return http::error_response(Error(ErrorKind::kNotFound, "No such documentation file"), ctx.request_id);
  });

  // The web console (web/console): one page at / and /console, its script and stylesheet from this
  // origin only. No inline script or style; API calls to this origin only; never framed.
  static constexpr std::string_view kConsoleCsp =
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
      "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
      "frame-ancestors 'none'";
  auto console_page = [&deps](RequestContext& ctx) -> boost::asio::awaitable<Response> {
    co_return asset_response(deps, ctx, "console_html", "text/html; charset=utf-8", kConsoleCsp,
                             deps.console_html);
  };
  router.add(Method::get, "/", console_page);
  router.add(Method::get, "/console", console_page);
  router.add(
      Method::get, "/console/{asset}", [&deps](RequestContext& ctx) -> boost::asio::awaitable<Response> {
        std::string_view asset = ctx.param("asset");
        if (asset == "console.js")
          co_return asset_response(deps, ctx, "console_js", "text/javascript", {}, deps.console_js);
        if (asset == "console.css")
          co_return asset_response(deps, ctx, "console_css", "text/css", {}, deps.console_css);
        co_return http::error_response(Error(ErrorKind::kNotFound, "No such console file"), ctx.request_id);
      });
}

}  // namespace parley::api
