#include "upstream/sse_parser.hpp"

#include <cstring>
#include <limits>

namespace parley::upstream {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// `retry` is honoured only for one or more ASCII digits; a value beyond int is ignored too.
std::optional<int> parse_retry(std::string_view value) noexcept {
  if (value.empty()) return std::nullopt;
  long long n = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
    if (n > std::numeric_limits<int>::max()) return std::nullopt;
  }
  return static_cast<int>(n);
}

// Offset of the first CR or LF, or npos: two memchr scans. (std::string_view::find_first_of with a
// two-character set calls memchr once per byte of the text, which made it the costliest part of
// relaying a stream.)
std::size_t find_line_end(std::string_view text) {
  const char* begin = text.data();
  const auto* lf = static_cast<const char*>(std::memchr(begin, '\n', text.size()));
  const std::size_t limit = lf != nullptr ? static_cast<std::size_t>(lf - begin) : text.size();
  const auto* cr = static_cast<const char*>(std::memchr(begin, '\r', limit));
  if (cr != nullptr) return static_cast<std::size_t>(cr - begin);
  return lf != nullptr ? limit : std::string_view::npos;
}

}  // namespace

Status SseParser::feed_impl(std::string_view bytes, const Sink& sink) {
  if (error_) return std::unexpected(*error_);

  if (!bom_done_) {
    while (!bytes.empty() && bom_matched_ < kBom.size() && bytes.front() == kBom[bom_matched_]) {
      ++bom_matched_;
      bytes.remove_prefix(1);
    }
    if (bom_matched_ == kBom.size()) {
      bom_done_ = true;
    } else if (bytes.empty()) {
      return {};  // a BOM prefix so far; the next byte decides
    } else {
      // Not a BOM after all: the bytes matched so far are ordinary line content.
      bom_done_ = true;
      line_.append(kBom.substr(0, bom_matched_));
    }
  }

  if (skip_lf_ && !bytes.empty()) {
    skip_lf_ = false;
    if (bytes.front() == '\n') bytes.remove_prefix(1);
  }

  while (!bytes.empty()) {
    const std::size_t end = find_line_end(bytes);
    if (end == std::string_view::npos) {
      if (line_.size() + bytes.size() > max_event_bytes_) return fail_too_large("line");
      line_.append(bytes);
      break;
    }
    const std::string_view line = bytes.substr(0, end);
    const bool cr = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    if (cr) {
      if (bytes.empty()) {
        skip_lf_ = true;
      } else if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
      }
    }

    Status status;
    if (line_.empty()) {
      if (line.size() > max_event_bytes_) return fail_too_large("line");
      status = process_line(line, sink);
    } else {
      if (line_.size() + line.size() > max_event_bytes_) return fail_too_large("line");
      line_.append(line);
      status = process_line(line_, sink);
      line_.clear();
    }
    if (!status) return status;
  }
  return {};
}

Status SseParser::finish_impl(const Sink& sink) {
  if (error_) return std::unexpected(*error_);
  if (!bom_done_) line_.append(kBom.substr(0, bom_matched_));

  Status status;
  if (dispatch_incomplete_at_eof_) {
    if (!line_.empty()) {
      const std::string last_line = std::move(line_);
      line_.clear();
      status = process_line(last_line, sink);
    }
    if (status) dispatch(sink);
  }
  if (status) reset_stream();
  return status;
}

Status SseParser::process_line(std::string_view line, const Sink& sink) {
  if (line.empty()) {
    dispatch(sink);
    return {};
  }
  if (line.front() == ':') return {};  // comment

  std::string_view field = line;
  std::string_view value;
  if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }

  if (field == "data") {
    if (data_.size() + value.size() + 1 > max_event_bytes_) return fail_too_large("event data");
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    event_type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_event_id_.assign(value);
  } else if (field == "retry") {
    if (const std::optional<int> retry = parse_retry(value)) {
      event_retry_ = retry;
      reconnection_time_ = retry;
    }
  }
  return {};
}

void SseParser::dispatch(const Sink& sink) {
  if (data_.empty()) {
    event_type_.clear();
    event_retry_.reset();
    return;
  }
  data_.pop_back();  // the LF appended after the last data line
  SseEvent event;
  if (!event_type_.empty()) event.event = std::move(event_type_);
  event.data = std::move(data_);
  event.id = last_event_id_;
  event.retry = event_retry_;
  data_.clear();
  event_type_.clear();
  event_retry_.reset();
  sink(std::move(event));
}

Status SseParser::fail_too_large(std::string_view what) {
  error_ = Error{ErrorKind::kOpenAiApiError, "provider stream: an SSE " + std::string(what) + " exceeds " +
                                                 std::to_string(max_event_bytes_) + " bytes"};
  // Release what the oversized stream made us hold; the parser is finished.
  std::string().swap(line_);
  std::string().swap(data_);
  std::string().swap(event_type_);
  return std::unexpected(*error_);
}

void SseParser::reset_stream() noexcept {
  bom_matched_ = 0;
  bom_done_ = false;
  skip_lf_ = false;
  line_.clear();
  data_.clear();
  event_type_.clear();
  last_event_id_.clear();
  event_retry_.reset();
  reconnection_time_.reset();
}

bool is_done_marker(std::string_view data) noexcept {
  constexpr std::string_view kSpace = " \t\r\n";
  const std::size_t first = data.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return false;
  const std::size_t last = data.find_last_not_of(kSpace);
  return data.substr(first, last - first + 1) == "[DONE]";
}

}  // namespace parley::upstream
