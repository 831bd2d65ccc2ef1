// Process-wide logging set-up. spdlog's default logger is configured once in main (asynchronous, so a
// loop thread never waits on stderr) and every line passes the redaction pass before it is written.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace parley::log {

enum class Format { kText, kJson };

struct Options {
  Format format = Format::kText;
  spdlog::level::level_enum level = spdlog::level::info;
  bool async = true;  // tests of the logger itself use synchronous mode
};

Result<Format> parse_format(std::string_view text);
Result<spdlog::level::level_enum> parse_level(std::string_view text);

// Installs the default logger writing to stderr. Call once, before any thread logs.
void init(const Options& options);

// Flushes and stops the background writer. Call once at exit.
void shutdown();

// Maps our level vocabulary onto spdlog's.
spdlog::level::level_enum to_spdlog(LogLevel level);

// Escapes `text` for inclusion inside a JSON string literal.
std::string json_escape(std::string_view text);

}  // namespace parley::log
