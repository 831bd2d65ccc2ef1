#include "upstream/stream_relay.hpp"

#include <utility>

namespace parley::upstream {

bool StreamRelay::feed(std::string_view bytes, std::vector<std::string>& out) {
  if (done_ || broken_) return false;
  const Status parsed = parser_.feed(bytes, [&](SseEvent&& e) { take(std::move(e), out); });
  // A limit broken after [DONE] is in bytes the stream did not need: had they arrived in a later
  // read, they would not have been read at all.
  if (!parsed && !done_) broken_ = true;
  return !done_ && !broken_;
}

void StreamRelay::finish(std::vector<std::string>& out) {
  if (done_ || broken_) return;
  if (!parser_.finish([&](SseEvent&& e) { take(std::move(e), out); }) && !done_) broken_ = true;
}

StreamVerdict StreamRelay::verdict() const noexcept {
  if (broken_) return StreamVerdict::kBroken;
  if (done_ || finished_) return StreamVerdict::kComplete;
  return relayed_ == 0 ? StreamVerdict::kNoEvent : StreamVerdict::kCutOff;
}

void StreamRelay::take(SseEvent&& event, std::vector<std::string>& out) {
  if (done_) return;
  if (framing_ == StreamFraming::kAnthropic) {
    done_ = event.event == "message_stop" || event.event == "error";
    ++relayed_;
    out.push_back(std::move(event.data));
    return;
  }
  std::string& data = event.data;
  if (is_done_marker(data)) {
    done_ = true;
    return;
  }
  finished_ = finished_ || has_finish_reason(data) || ends_response(data);
  ++relayed_;
  out.push_back(std::move(data));
}

bool ends_response(std::string_view data) noexcept {
  // A quote inside a JSON string is escaped, so these quoted names occur only as whole strings.
  return data.find("\"response.completed\"") != std::string_view::npos ||
         data.find("\"response.incomplete\"") != std::string_view::npos ||
         data.find("\"response.failed\"") != std::string_view::npos;
}

bool has_finish_reason(std::string_view data) noexcept {
  static constexpr std::string_view kKey = "\"finish_reason\"";
  auto skip_space = [&data](std::size_t i) {
    while (i < data.size() && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) ++i;
    return i;
  };
  for (std::size_t at = data.find(kKey); at != std::string_view::npos; at = data.find(kKey, at + 1)) {
    std::size_t i = skip_space(at + kKey.size());
    if (i >= data.size() || data[i] != ':') continue;
    i = skip_space(i + 1);
    if (i < data.size() && data[i] == '"') return true;
  }
  return false;
}

}  // namespace parley::upstream
