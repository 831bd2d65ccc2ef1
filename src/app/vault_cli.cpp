#include "app/vault_cli.hpp"

#include <cstdio>
#include <memory>
#include <utility>

#include "app/app.hpp"
#include "core/clock.hpp"
#include "services/audit_log.hpp"
#include "services/vault_service.hpp"
#include "store/migrations.hpp"

namespace parley::app {
namespace {

// What both commands need: the database (opened and migrated) and the vault on top of it.
struct VaultRuntime {
  SystemClock clock;
  std::unique_ptr<store::Database> db;
  std::unique_ptr<services::AuditLog> audit;
  std::unique_ptr<services::VaultService> vault;
};

// Prints the reason and returns the exit code when the vault cannot be built.
int open_vault(const config::Config& given, VaultRuntime& rt) {
  config::Config config = given;
  if (auto s = ensure_secrets(config); !s) {
    std::fprintf(stderr, "parley: cannot load secrets: %s\n", s.error().message.c_str());
    return 1;
  }
  auto keys = services::parse_encryption_keys(config.encryption_keys);
  if (!keys) {
    std::fprintf(stderr, "parley: invalid configuration: %s: %s\n", keys.error().param.value_or("").c_str(),
                 keys.error().message.c_str());
    return 2;
  }
  auto db = open_configured_database(config);
  if (!db) {
    std::fprintf(stderr, "parley: %s\n", db.error().message.c_str());
    return 1;
  }
  rt.db = std::move(*db);
  if (auto report = store::migrate(*rt.db); !report) {
    std::fprintf(stderr, "parley: migration failed: %s\n", report.error().message.c_str());
    return 1;
  }
  rt.audit = std::make_unique<services::AuditLog>(*rt.db, rt.clock);
  rt.vault = std::make_unique<services::VaultService>(*rt.db, rt.clock, *rt.audit, std::move(*keys));
  return 0;
}

const char* outcome_name(services::ImportOutcome outcome) {
  switch (outcome) {
    case services::ImportOutcome::kImported:
      return "imported";
    case services::ImportOutcome::kSkipped:
      return "skipped";
    case services::ImportOutcome::kFailed:
      return "failed";
  }
  return "failed";
}

}  // namespace

int keys_rotate_command(const config::Config& config) {
  VaultRuntime rt;
  if (int rc = open_vault(config, rt); rc != 0) return rc;
  auto report = rt.vault->rotate_all();
  if (!report) {
    std::fprintf(stderr, "parley: rotation stopped: %s (rows already rotated stay rotated; run it again)\n",
                 report.error().message.c_str());
    return 1;
  }
  for (const auto& f : report->failures) {
    std::fprintf(stderr, "failed: user %s, provider %s: %s\n", f.user_id.c_str(), f.provider.c_str(),
                 f.reason.c_str());
  }
  if (report->failures.size() < static_cast<std::size_t>(report->failed)) {
    std::fprintf(stderr, "(%lld more failures not listed)\n",
                 static_cast<long long>(report->failed) - static_cast<long long>(report->failures.size()));
  }
  std::printf("rotated %lld, already current %lld, failed %lld\n", static_cast<long long>(report->rotated),
              static_cast<long long>(report->already_current), static_cast<long long>(report->failed));
  return report->failed == 0 ? 0 : 1;
}

int vault_import_command(const config::Config& config, const std::string& file, const std::string& provider,
                         bool overwrite) {
  if (auto s = services::check_provider_name(provider); !s) {
    std::fprintf(stderr, "parley: --provider: %s\n", s.error().message.c_str());
    return 2;
  }
  VaultRuntime rt;
  if (int rc = open_vault(config, rt); rc != 0) return rc;
  auto report = rt.vault->import_csv(file, services::ImportOptions{provider, overwrite});
  if (!report) {
    std::fprintf(stderr, "parley: %s\n", report.error().message.c_str());
    return 1;
  }
  for (const auto& issue : report->issues) {
    std::fprintf(stderr, "line %zu: %s%s%s%s: %s\n", issue.line, outcome_name(issue.outcome),
                 issue.username.empty() ? "" : " (user ", issue.username.c_str(),
                 issue.username.empty() ? "" : ")", issue.reason.c_str());
  }
  const auto listed = static_cast<long long>(report->issues.size());
  const long long unlisted = static_cast<long long>(report->skipped + report->failed) - listed;
  if (unlisted > 0) std::fprintf(stderr, "(%lld more rows not listed)\n", unlisted);
  std::printf("imported %lld, skipped %lld, failed %lld\n", static_cast<long long>(report->imported),
              static_cast<long long>(report->skipped), static_cast<long long>(report->failed));
  return report->failed == 0 ? 0 : 1;
}

}  // namespace parley::app
