#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "api/ops.hpp"
#include "app/app.hpp"
#include "http/blocking_pool.hpp"
#include "http/server.hpp"
#include "log/redact.hpp"
#include "store/migrations.hpp"
#include "version.hpp"

namespace parley::app {
namespace {

namespace asio = boost::asio;

// Everything the routes need, built once in serve() and passed down explicitly.
struct Components {
  config::Config config;
  std::unique_ptr<store::Database> db;
  std::unique_ptr<http::BlockingPool> blocking;
  std::unique_ptr<http::Metrics> metrics;
  http::Server* server = nullptr;
};

void register_routes(http::Router& router, Components& c) {
  api::register_ops_routes(
      router, api::OpsDeps{kVersion, *c.metrics, [&c]() -> asio::awaitable<Status> {
                             if (c.server != nullptr && c.server->draining()) {
                               co_return fail(ErrorKind::kUnavailable, "Server is shutting down");
                             }
                             if (!c.db) co_return fail(ErrorKind::kUnavailable, "Database is not open");
                             Status s = co_await c.blocking->run([&c] { return c.db->ping(); });
                             if (!s) co_return fail(ErrorKind::kUnavailable, "Database is not reachable");
                             co_return Status{};
                           }});
}

}  // namespace

Result<std::unique_ptr<store::Database>> open_configured_database(const config::Config& config) {
  std::string url = config.effective_database_url();
  if (config.database_url.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config.data_dir, ec);
    if (ec) return fail(ErrorKind::kInternal, "cannot create data dir " + config.data_dir + ": " + ec.message());
  }
  store::DatabaseOptions options;
  options.url = url;
  options.pool_size = config.database_pool_size;
  options.sqlite_synchronous = config.sqlite_synchronous;
  return store::open_database(options);
}

std::vector<http::RouteInfo> list_routes() {
  Components c;
  c.metrics = std::make_unique<http::Metrics>(1, kVersion);
  http::Router router;
  register_routes(router, c);
  return router.routes();
}

int serve(config::LoadResult loaded) {
  Components c;
  c.config = std::move(loaded.config);
  if (auto s = ensure_secrets(c.config); !s) {
    spdlog::critical("cannot prepare secrets: {}", s.error().message);
    return 1;
  }
  auto db = open_configured_database(c.config);
  if (!db) {
    spdlog::critical("cannot open database: {}", db.error().message);
    return 1;
  }
  c.db = std::move(*db);
  auto report = store::migrate(*c.db);
  if (!report) {
    spdlog::critical("database migration failed: {}", report.error().message);
    return 1;
  }
  if (!report->applied.empty()) {
    spdlog::info("applied {} migration(s); schema version {}", report->applied.size(), report->version);
  }
  c.blocking = std::make_unique<http::BlockingPool>(c.config.blocking_threads);
  c.metrics = std::make_unique<http::Metrics>(c.config.workers, kVersion);

  http::Router router;
  register_routes(router, c);

  http::ServerOptions options{c.config.http, c.config.cors_origins, c.config.trusted_hosts, c.config.access_log,
                              c.config.workers};
  http::Server server(options, router, *c.metrics);
  c.server = &server;
  if (auto s = server.bind(c.config.listen_host, c.config.listen_port); !s) {
    spdlog::critical("{}", s.error().message);
    return 1;
  }
  std::string host = c.config.listen_host.find(':') != std::string::npos ? "[" + c.config.listen_host + "]"
                                                                            : c.config.listen_host;
  std::printf("parley %s listening on http://%s:%u\n", kVersion, host.c_str(), server.port());
  std::fflush(stdout);
  spdlog::info("parley {} listening on http://{}:{} with {} worker(s); database {}", kVersion, host, server.port(),
               c.config.workers, log::redact(c.config.effective_database_url()));

  asio::signal_set signals(server.main_executor(), SIGINT, SIGTERM);
  signals.async_wait([&server](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("received signal {}; draining", signo);
    server.shutdown();
  });
  server.run();
  c.blocking->stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace parley::app
