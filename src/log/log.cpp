#include "log/log.hpp"

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <cstdio>
#include <mutex>

#include "log/redact.hpp"

namespace parley::log {
namespace {

// One JSON object per line: {"ts","level","msg"}; the message is redacted before escaping.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto since_epoch = msg.time.time_since_epoch();
    auto secs = duration_cast<seconds>(since_epoch);
    auto micros = duration_cast<microseconds>(since_epoch - secs).count();
    std::time_t t = secs.count();
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[40];
    std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string body = json_escape(redact(payload));
    fmt::format_to(std::back_inserter(dest), R"({{"ts":"{}.{:06}Z","level":"{}","msg":"{}"}})",
                   std::string_view(stamp, n), micros, spdlog::level::to_string_view(msg.level), body);
    dest.push_back('\n');
  }
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// Text lines: timestamp, level, redacted message.
class TextFormatter final : public spdlog::formatter {
 public:
  TextFormatter() : inner_("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string clean = redact(payload);
    spdlog::details::log_msg copy(msg);
    copy.payload = clean;
    inner_.format(copy, dest);
  }
  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>();
  }

 private:
  spdlog::pattern_formatter inner_;
};

}  // namespace

Result<Format> parse_format(std::string_view text) {
  if (text == "text") return Format::kText;
  if (text == "json") return Format::kJson;
  return validation("log.format", "must be \"text\" or \"json\"");
}

Result<spdlog::level::level_enum> parse_level(std::string_view text) {
  static constexpr std::pair<std::string_view, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"error", spdlog::level::err},   {"off", spdlog::level::off}};
  for (const auto& [name, level] : kLevels) {
    if (text == name) return level;
  }
  return validation("log.level", "must be one of trace, debug, info, warn, error, off");
}

void init(const Options& options) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  if (options.format == Format::kJson) {
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink->set_formatter(std::make_unique<TextFormatter>());
  }
  std::shared_ptr<spdlog::logger> logger;
  if (options.async) {
    // A bounded queue; when full the caller blocks rather than losing lines (logs are evidence).
    spdlog::init_thread_pool(16384, 1);
    logger = std::make_shared<spdlog::async_logger>("parley", sink, spdlog::thread_pool(),
                                                    spdlog::async_overflow_policy::block);
  } else {
    logger = std::make_shared<spdlog::logger>("parley", sink);
  }
  logger->set_level(options.level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  spdlog::flush_every(std::chrono::seconds(1));
}

void shutdown() {
  if (auto logger = spdlog::default_logger()) logger->flush();
  spdlog::shutdown();
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<int>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

}  // namespace parley::log
