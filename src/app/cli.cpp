#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "app/app.hpp"
#include "app/vault_cli.hpp"
#include "crypto/fernet.hpp"
#include "crypto/random.hpp"
#include "http/router.hpp"
#include "log/log.hpp"
#include "services/audit_log.hpp"
#include "services/principal_cache.hpp"
#include "services/user_service.hpp"
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
    cmd.add_option_function<std::string>(
        flag, [this, key](const std::string& v) { values[key] = v; }, help);
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

struct AdminCreate {
  std::string username;
  std::string email;
  std::string role = "admin";
  bool generate = false;
};

// `parley admin create`: the password comes from standard input (first line) or, with
// --generate-password or an empty input, is generated and printed once.
int admin_create_command(const ConfigFlags& flags, const AdminCreate& args) {
  auto loaded = flags.load();
  if (!loaded) return config_error(loaded.error());
  init_logging(loaded->config, false);
  auto db = open_configured_database(loaded->config);
  if (!db) {
    std::fprintf(stderr, "parley: %s\n", db.error().message.c_str());
    return 1;
  }
  if (auto report = store::migrate(**db); !report) {
    std::fprintf(stderr, "parley: migration failed: %s\n", report.error().message.c_str());
    return 1;
  }
  std::string password;
  if (!args.generate) {
    if (isatty(STDIN_FILENO)) std::fprintf(stderr, "password (empty to generate one): ");
    std::getline(std::cin, password);
    while (!password.empty() && (password.back() == '\r' || password.back() == '\n')) password.pop_back();
  }
  bool generated = password.empty();
  if (generated) password = crypto::random_base62(24);
  auto role = auth::parse_role(args.role);
  if (!role) {
    std::fprintf(stderr, "parley: --role must be admin, manager or user\n");
    return 2;
  }
  SystemClock clock;
  services::PrincipalCache principals(std::chrono::milliseconds(0));
  services::AuditLog audit(**db, clock);
  const auto& a = loaded->config.auth;
  services::UserService users(
      **db, clock, principals, audit,
      {false, crypto::PasswordParams{a.password_passes, a.password_memory_kib * 1024}});
  auto created = users.create_user(
      std::nullopt, {args.username, args.email, std::nullopt, password, *role, true}, {"cli", "local"});
  if (!created) {
    std::fprintf(stderr, "parley: cannot create user: %s%s%s\n", created.error().param.value_or("").c_str(),
                 created.error().param ? ": " : "", created.error().message.c_str());
    return 1;
  }
  std::printf("created %s %s (id %s)\n", created->role.c_str(), created->username.c_str(),
              created->id.c_str());
  if (generated) std::printf("password: %s\n(shown once; store it now)\n", password.c_str());
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  // Everything parley creates — the data directory, the SQLite database and its -wal/-shm files,
  // the secrets — is private to the service user (0700 / 0600).
  ::umask(S_IRWXG | S_IRWXO);
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
  auto* check_cmd =
      config_cmd->add_subcommand("check", "Validate and print the effective configuration (secrets masked)");
  check_flags.attach(*check_cmd);

  auto* keys_doc_cmd =
      config_cmd->add_subcommand("keys", "Print every configuration key as a markdown table");
  ConfigFlags admin_flags;
  AdminCreate admin_args;
  auto* admin_cmd = cli.add_subcommand("admin", "Account administration");
  admin_cmd->require_subcommand(1);
  auto* admin_create_cmd = admin_cmd->add_subcommand(
      "create", "Create a user (an admin by default); password from stdin, or generated and printed once");
  admin_flags.attach(*admin_create_cmd);
  admin_create_cmd->add_option("--username", admin_args.username, "username")->required();
  admin_create_cmd->add_option("--email", admin_args.email, "e-mail address")->required();
  admin_create_cmd->add_option("--role", admin_args.role, "admin (default), manager or user");
  admin_create_cmd->add_flag("--generate-password", admin_args.generate,
                             "generate the password and print it once");

  auto* keys_cmd = cli.add_subcommand("keys", "Encryption key tools");
  keys_cmd->require_subcommand(1);
  auto* keys_generate_cmd =
      keys_cmd->add_subcommand("generate", "Print a new Fernet key for PARLEY_ENCRYPTION_KEYS");

  ConfigFlags rotate_flags;
  auto* keys_rotate_cmd = keys_cmd->add_subcommand(
      "rotate", "Re-encrypt every stored provider key under the first encryption key (idempotent)");
  rotate_flags.attach(*keys_rotate_cmd);

  ConfigFlags import_flags;
  std::string import_file;
  std::string import_provider = "openai";
  bool import_overwrite = false;
  auto* vault_cmd = cli.add_subcommand("vault", "Provider key vault tools");
  vault_cmd->require_subcommand(1);
  auto* vault_import_cmd = vault_cmd->add_subcommand(
      "import", "Import users' provider keys from a CSV of username,fernet_token rows");
  import_flags.attach(*vault_import_cmd);
  vault_import_cmd
      ->add_option("file", import_file, "CSV exported from a service using the same encryption key")
      ->required();
  vault_import_cmd->add_option("--provider", import_provider, "provider the keys are for (default openai)");
  vault_import_cmd->add_flag("--overwrite", import_overwrite, "replace keys users already have");

  auto* version_cmd = cli.add_subcommand("version", "Print the version");
  auto* routes_cmd = cli.add_subcommand("routes", "List every HTTP route (method and path template)");

  CLI11_PARSE(cli, argc, argv);

  if (*version_cmd) {
    std::printf("parley %s (%s)\n", kVersion, kGitSha);
    return 0;
  }
  if (*routes_cmd) {
    for (const auto& r : list_routes())
      std::printf("%s %s\n", std::string(http::beast_http::to_string(r.method)).c_str(),
                  r.path_template.c_str());
    return 0;
  }
  if (*keys_generate_cmd) {
    std::printf("%s\n", crypto::generate_fernet_key().c_str());
    return 0;
  }
  if (*admin_create_cmd) return admin_create_command(admin_flags, admin_args);
  if (*keys_rotate_cmd) {
    auto loaded = rotate_flags.load();
    if (!loaded) return config_error(loaded.error());
    init_logging(loaded->config, false);
    return keys_rotate_command(loaded->config);
  }
  if (*vault_import_cmd) {
    auto loaded = import_flags.load();
    if (!loaded) return config_error(loaded.error());
    init_logging(loaded->config, false);
    return vault_import_command(loaded->config, import_file, import_provider, import_overwrite);
  }
  if (*keys_doc_cmd) {
    std::printf("%s", config::keys_markdown().c_str());
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
