#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include "app/app.hpp"
#include "http/router.hpp"
#include "log/log.hpp"
#include "store/database.hpp"
#include "store/migrations.hpp"
#include "version.hpp"

namespace parley::app {
namespace {

// Flags shared by every subcommand that reads the configuration; each maps onto a config key.
struct ConfigFlags {
  std::optional<std::string> config_path;
  std::map<std::string, std::string> values;

  void attach(CLI::App& cmd) {
    cmd.add_option("--config", config_path, "TOML configuration file (or PARLEY_CONFIG)");
    add(cmd, "--listen", "listen", "address:port to serve on (PARLEY_LISTEN, default 127.0.0.1:8080)");
    add(cmd, "--data-dir", "data_dir", "data directory (PARLEY_DATA_DIR, default ./data)");
    add(cmd, "--database-url", "database.url", "sqlite:///path.db or postgresql://... (PARLEY_DATABASE_URL)");
    add(cmd, "--log-format", "log.format", "text or json (PARLEY_LOG_FORMAT)");
    add(cmd, "--log-level", "log.level", "trace, debug, info, warn, error, off (PARLEY_LOG_LEVEL)");
    add(cmd, "--workers", "workers", "event-loop threads, 0 = one per core (PARLEY_WORKERS)");
  }

  void add(CLI::App& cmd, const std::string& flag, const std::string& key, const std::string& help) {
    cmd.add_option_function<std::string>(flag, [this, key](const std::string& v) { values[key] = v; }, help);
  }

  [[nodiscard]] Result<config::LoadResult> load() const {
    config::LoadInput input;
    input.config_path = config_path;
    input.flags = values;
    return config::load(input);
  }
};

int config_error(const Error& e) {
  std::fprintf(stderr, "parley: invalid configuration: %s%s%s\n", e.param ? e.param->c_str() : "",
               e.param ? ": " : "", e.message.c_str());
  return 2;
}

void init_logging(const config::Config& c, bool async) {
  log::Options options;
  options.format = log::parse_format(c.log_format).value_or(log::Format::kText);
  options.level = log::parse_level(c.log_level).value_or(spdlog::level::info);
  options.async = async;
  log::init(options);
}

int migrate_command(const ConfigFlags& flags) {
  auto loaded = flags.load();
  if (!loaded) return config_error(loaded.error());
  init_logging(loaded->config, false);
  auto db = open_configured_database(loaded->config);
  if (!db) {
    std::fprintf(stderr, "parley: %s\n", db.error().message.c_str());
    return 1;
  }
  auto report = store::migrate(**db);
  if (!report) {
    std::fprintf(stderr, "parley: migration failed: %s\n", report.error().message.c_str());
    return 1;
  }
  std::printf("schema version %d (%zu migration(s) applied)\n", report->to_version, report->applied.size());
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App cli{"parley: self-hosted AI conversation backend and LLM gateway", "parley"};
  cli.require_subcommand(1);
  cli.set_version_flag("--version", std::string(kVersion));

  ConfigFlags serve_flags;
  auto* serve_cmd = cli.add_subcommand("serve", "Run the HTTP server until SIGTERM/SIGINT");
  serve_flags.attach(*serve_cmd);

  ConfigFlags migrate_flags;
  auto* migrate_cmd = cli.add_subcommand("migrate", "Apply pending database migrations and exit");
  migrate_flags.attach(*migrate_cmd);

  ConfigFlags check_flags;
  auto* config_cmd = cli.add_subcommand("config", "Configuration tools");
  config_cmd->require_subcommand(1);
  auto* check_cmd = config_cmd->add_subcommand("check", "Validate and print the effective configuration (secrets masked)");
  check_flags.attach(*check_cmd);

  auto* version_cmd = cli.add_subcommand("version", "Print the version");
  auto* routes_cmd = cli.add_subcommand("routes", "List every HTTP route (method and path template)");

  CLI11_PARSE(cli, argc, argv);

  if (*version_cmd) {
    std::printf("parley %s (%s)\n", kVersion, kGitSha);
    return 0;
  }
  if (*routes_cmd) {
    for (const auto& r : list_routes()) std::printf("%s %s\n", std::string(http::beast_http::to_string(r.method)).c_str(), r.path_template.c_str());
    return 0;
  }
  if (*check_cmd) {
    auto loaded = check_flags.load();
    if (!loaded) return config_error(loaded.error());
    std::printf("# effective configuration (defaults < file < environment < flags)\n%s",
                config::describe(*loaded).c_str());
    std::printf("# configuration is valid\n");
    return 0;
  }
  if (*migrate_cmd) return migrate_command(migrate_flags);
  if (*serve_cmd) {
    auto loaded = serve_flags.load();
    if (!loaded) return config_error(loaded.error());
    init_logging(loaded->config, true);
    int rc = serve(std::move(*loaded));
    log::shutdown();
    return rc;
  }
  return 1;
}

}  // namespace parley::app
