// The command-line entry points. main() calls run_cli(); each subcommand builds what it needs from
// the Config and nothing else holds global state.
#pragma once

#include "config/config.hpp"

namespace parley::app {

int run_cli(int argc, char** argv);

// `parley serve`: blocks until SIGTERM/SIGINT has drained the server. Returns the exit code.
int serve(config::LoadResult loaded);

// Loads the secrets (encryption keys, JWT secret) from the configuration or, when unset, from
// files in the data dir, creating them with mode 0600 on first start (and warning about it).
Status ensure_secrets(config::Config& config);

}  // namespace parley::app

#include <memory>
#include <vector>

#include "http/router.hpp"
#include "store/database.hpp"

namespace parley::app {

// Opens the configured database (creating the data dir for the SQLite default).
Result<std::unique_ptr<store::Database>> open_configured_database(const config::Config& config);

// Every route the server registers, for `parley routes` and the OpenAPI completeness test.
std::vector<http::RouteInfo> list_routes();

}  // namespace parley::app
