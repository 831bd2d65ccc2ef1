#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include <boost/asio/steady_timer.hpp>

#include "api/deps.hpp"
#include "api/ops.hpp"
#include "crypto/fernet.hpp"
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
  SystemClock clock;
  std::unique_ptr<store::Database> db;
  std::unique_ptr<http::BlockingPool> blocking;
  std::unique_ptr<http::Metrics> metrics;
  std::unique_ptr<services::PrincipalCache> principals;
  std::unique_ptr<services::AuditLog> audit;
  std::unique_ptr<services::LoginLimiter> login_limiter;
  std::unique_ptr<services::UserService> users;
  std::unique_ptr<services::TokenService> tokens;
  std::unique_ptr<services::ApiKeyService> keys;
  std::unique_ptr<services::PreferenceService> preferences;
  std::unique_ptr<api::Authenticator> authenticator;
  std::unique_ptr<api::IdentityDeps> identity;
  http::Server* server = nullptr;

  // Builds the services. With db == nullptr (listing routes) nothing is ever called on them.
  void build_services() {
    const auto& a = config.auth;
    store::Database& database = *db;
    principals = std::make_unique<services::PrincipalCache>(std::chrono::milliseconds(a.principal_cache_ttl_ms));
    audit = std::make_unique<services::AuditLog>(database, clock);
    login_limiter = std::make_unique<services::LoginLimiter>(services::LoginLimits{
        a.login_max_failures_per_user, a.login_max_failures_per_address, std::chrono::seconds(a.login_window_s)});
    crypto::PasswordParams password{a.password_passes, a.password_memory_kib * 1024};
    users = std::make_unique<services::UserService>(database, clock, *principals, *audit,
                                                    services::UserServiceOptions{a.open_registration, password});
    tokens = std::make_unique<services::TokenService>(database, clock, *users, *audit, *login_limiter,
                                                      crypto::Secret(config.jwt_secret), a);
    keys = std::make_unique<services::ApiKeyService>(database, clock, *audit,
                                                     std::chrono::milliseconds(std::max<std::uint64_t>(a.principal_cache_ttl_ms, 1000)));
    preferences = std::make_unique<services::PreferenceService>(database, clock);
    authenticator = std::make_unique<api::Authenticator>(*tokens, *users, *keys, *principals, *blocking);
    identity = std::make_unique<api::IdentityDeps>(
        api::IdentityDeps{*users, *tokens, *keys, *preferences, *audit, *authenticator, *blocking, clock});
  }
};

// Writes buffered last-use times of service keys every few seconds, off the loop threads.
asio::awaitable<void> flush_key_usage(Components& c) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (c.server != nullptr && !c.server->draining()) {
    timer.expires_after(std::chrono::seconds(5));
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    Status s = co_await c.blocking->run([&c] { return c.keys->flush_last_used(); });
    if (!s) spdlog::warn("could not record API key usage: {}", s.error().message);
  }
}

Status check_secrets(const config::Config& config) {
  std::string_view keys = config.encryption_keys;
  while (!keys.empty()) {
    std::size_t comma = keys.find(',');
    std::string_view key = keys.substr(0, comma);
    while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
    if (!key.empty() && !crypto::FernetKey::parse(key)) {
      return validation("secrets.encryption_keys",
                        "each key must be a Fernet key: 32 bytes in url-safe base64 (parley keys generate)");
    }
    if (comma == std::string_view::npos) break;
    keys.remove_prefix(comma + 1);
  }
  if (config.jwt_secret.size() < 32) {
    return validation("secrets.jwt_secret", "must be at least 32 characters");
  }
  return {};
}

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
  api::register_identity_routes(router, *c.identity);
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
  options.pool_size = static_cast<int>(config.database_pool_size);
  options.sqlite_synchronous =
      config.sqlite_synchronous == "normal" ? store::SqliteSynchronous::kNormal : store::SqliteSynchronous::kFull;
  return store::open_database(options);
}

std::vector<http::RouteInfo> list_routes() {
  Components c;
  c.metrics = std::make_unique<http::Metrics>(1, kVersion);
  c.db = store::open_database({.url = "sqlite::memory:"}).value_or(nullptr);
  c.blocking = std::make_unique<http::BlockingPool>(1);
  c.build_services();
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
  if (auto s = check_secrets(c.config); !s) {
    spdlog::critical("invalid configuration: {}: {}", s.error().param.value_or(""), s.error().message);
    return 2;
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
    spdlog::info("applied {} migration(s); schema version {}", report->applied.size(), report->to_version);
  }
  c.blocking = std::make_unique<http::BlockingPool>(c.config.blocking_threads);
  c.metrics = std::make_unique<http::Metrics>(c.config.workers, kVersion);
  c.build_services();

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
  asio::co_spawn(server.main_executor(), flush_key_usage(c), asio::detached);
  server.run();
  c.blocking->stop();
  if (auto s = c.keys->flush_last_used(); !s) spdlog::warn("could not record API key usage: {}", s.error().message);
  spdlog::info("stopped");
  return 0;
}

}  // namespace parley::app
