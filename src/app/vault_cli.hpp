// `parley keys rotate` and `parley vault import`: the provider key vault's command-line tools.
// Each loads the secrets (app::ensure_secrets), opens and migrates the configured database, does
// its work and prints a summary; neither prints key material or tokens. Both may run while a
// server uses the same database (every row is written on its own). Return the process exit code:
// 0 when every row was handled, 1 when some row failed or the work could not start, 2 for bad
// arguments or configuration.
#pragma once

#include <string>

#include "config/config.hpp"

namespace parley::app {

// Re-encrypts every stored provider key under the first encryption key and prints
// "rotated N, already current M, failed K" (and each failure: user id, provider, reason).
int keys_rotate_command(const config::Config& config);

// Imports `file`, a CSV of `username,fernet_token` rows (header optional) exported from a Python
// service that used one of the configured encryption keys, as each user's key for `provider`
// (existing keys are kept unless `overwrite`). Prints "imported N, skipped M, failed K" and one
// line per skipped or failed row.
int vault_import_command(const config::Config& config, const std::string& file, const std::string& provider,
                         bool overwrite);

}  // namespace parley::app
