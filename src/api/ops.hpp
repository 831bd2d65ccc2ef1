// Operational routes: GET /health, /health/ready, /metrics, /openapi.json, /docs (+ its assets), the web
// console at / and /console (+ its assets).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <string>

#include "core/error.hpp"
#include "http/metrics.hpp"
#include "http/router.hpp"

namespace parley::api {

struct OpsDeps {
  std::string version;
  http::Metrics& metrics;
  // Readiness probe: resolves to an error naming the failing check (database, draining, ...).
  std::function<boost::asio::awaitable<Status>()> ready;
  // Filled by register_ops_routes: the ETag of each linked-in file, from its content.
  std::map<std::string, std::string, std::less<>> etags;
  // Filled by register_ops_routes: the /docs page with its assets' URLs versioned by content
  // (`?v=<etag>`), so that those answers may be cached as immutable.
  std::string docs_html;
  // Filled by register_ops_routes: the console page (web/console), its assets versioned likewise.
  std::string console_html;
  // Set before register_ops_routes: a directory holding a console build (index.html, console.js,
  // console.css: `vite build --outDir`) served instead of the linked-in one, read once at start
  // (PARLEY_CONSOLE_DIR; for working on the console without relinking parley).
  std::string console_dir;
  std::string console_js;
  std::string console_css;
};

// `deps` must outlive the router (the handlers refer to it).
void register_ops_routes(http::Router& router, OpsDeps& deps);

}  // namespace parley::api
