#include "log/log.hpp"

#include <spdlog/async.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>

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

// stderr, written in batches: lines formatted while more are queued for the logging thread are
// gathered and written together (one write() per batch instead of per line, stderr being
// unbuffered); the last line of a burst is written at once, so an idle server's log is never
// behind. `more_pending` says whether the logging thread has more lines queued.
class BatchingStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit BatchingStderrSink(std::function<bool()> more_pending) : more_pending_(std::move(more_pending)) {}
  BatchingStderrSink(const BatchingStderrSink&) = delete;
  BatchingStderrSink& operator=(const BatchingStderrSink&) = delete;
  ~BatchingStderrSink() override { write_out(); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    pending_.append(formatted.data(), formatted.size());
    if (pending_.size() >= kBatchBytes || !more_pending_ || !more_pending_()) write_out();
  }
  void flush_() override { write_out(); }

 private:
  static constexpr std::size_t kBatchBytes = std::size_t{64} * 1024;

  void write_out() {
    std::size_t done = 0;
    while (done < pending_.size()) {
      ssize_t n = ::write(STDERR_FILENO, pending_.data() + done, pending_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // nowhere to write: the lines are dropped rather than blocking the loop
      done += static_cast<std::size_t>(n);
    }
    pending_.clear();
  }

  std::function<bool()> more_pending_;
  std::string pending_;
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
  if (options.async) spdlog::init_thread_pool(16384, 1);
  std::function<bool()> more_pending;
  if (options.async) {
    // A plain pointer: the pool outlives every line its thread writes (its destructor joins the
    // thread), and a shared_ptr held by the sink could end up destroying the pool on its own thread.
    spdlog::details::thread_pool* pool = spdlog::thread_pool().get();
    more_pending = [pool] { return pool->queue_size() > 0; };
  }
  auto sink = std::make_shared<BatchingStderrSink>(std::move(more_pending));
  if (options.format == Format::kJson) {
    sink->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    sink->set_formatter(std::make_unique<TextFormatter>());
  }
  std::shared_ptr<spdlog::logger> logger;
  if (options.async) {
    // A bounded queue; when full the caller blocks rather than losing lines (logs are evidence).
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
