// The properties of relaying a provider's stream (upstream::StreamRelay, used by
// OpenAiCompatibleProvider::post_stream) that the libFuzzer target `sse_relay_fuzz` and the unit
// test `upstream_stream_relay_property_test.cpp` check:
//
//   - nothing crashes or trips ASan/UBSan, whatever the bytes and the size limit;
//   - the events relayed and the verdict are the same however the body is split across feed()
//     calls (as the provider's reads would split it);
//   - the events relayed are exactly the events of the stream (as one SseParser reads it) before
//     the first `[DONE]`: nothing after it, not the marker itself; once feed() says to stop,
//     nothing more is relayed;
//   - the verdict is "broken" iff the parser failed before `[DONE]`; otherwise "complete" iff
//     `[DONE]` arrived or a relayed event has a finish_reason or ends a Responses API stream, else
//     "no event" when nothing was
//     relayed and "cut off" when something was;
//   - has_finish_reason agrees with a JSON reading (a "finish_reason" key with a string value, at
//     any depth) on events that are JSON without escapes.
//
// Input layout: byte 0 picks the SSE size limit (bits 0-2: 1 B … 4 MiB), byte 1 seeds the split,
// the rest is the response body.
#pragma once

#include <boost/json/basic_parser_impl.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "upstream/sse_parser.hpp"
#include "upstream/stream_relay.hpp"

namespace parley::upstream::fuzz {

struct RelayOutcome {
  std::vector<std::string> events;
  StreamVerdict verdict = StreamVerdict::kNoEvent;
  bool quiet_after_stop = true;  // after feed() said stop, later feed()/finish() relayed nothing

  bool operator==(const RelayOutcome&) const = default;
};

// Relays `body` as post_stream does: feeds reads (sizes from a small generator, one read when
// `seed` is 0) until feed() says stop, then finish() when the body ended without [DONE].
inline RelayOutcome relay_in_pieces(std::string_view body, std::size_t max_bytes, std::uint32_t seed) {
  StreamRelay relay(max_bytes);
  RelayOutcome out;
  std::uint32_t state = seed;
  bool read_on = true;
  while (read_on && !body.empty()) {
    std::size_t n = body.size();
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      n = std::min<std::size_t>(n, (state >> 16) % 40u);
    }
    read_on = relay.feed(body.substr(0, n), out.events);
    body.remove_prefix(n);
  }
  if (read_on) {
    relay.finish(out.events);
  } else {
    const std::size_t relayed = out.events.size();
    out.quiet_after_stop = !relay.feed("data: x\n\n", out.events);
    relay.finish(out.events);
    out.quiet_after_stop = out.quiet_after_stop && out.events.size() == relayed;
  }
  if (relay.relayed() != out.events.size()) out.quiet_after_stop = false;
  out.verdict = relay.verdict();
  return out;
}

// The [DONE] sentinel, spelled out: "[DONE]" with optional ASCII whitespace around it.
inline bool is_done_text(std::string_view data) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!data.empty() && space(data.front())) data.remove_prefix(1);
  while (!data.empty() && space(data.back())) data.remove_suffix(1);
  return data == "[DONE]";
}

// A "finish_reason" key whose value is a string, at any depth; nullopt when `data` is not JSON.
class FinishReasonFinder {
 public:
  // Names fixed by boost::json's handler interface.
  // NOLINTBEGIN(readability-identifier-naming)
  static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();
  // NOLINTEND(readability-identifier-naming)
  using ec = boost::system::error_code;
  using sv = boost::json::string_view;

  explicit FinishReasonFinder(bool& found) : found_(found) {}
  bool on_document_begin(ec&) { return true; }
  bool on_document_end(ec&) { return true; }
  bool on_object_begin(ec&) { return value(false); }
  bool on_object_end(std::size_t, ec&) { return true; }
  bool on_array_begin(ec&) { return value(false); }
  bool on_array_end(std::size_t, ec&) { return true; }
  bool on_key_part(sv s, std::size_t, ec&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(sv s, std::size_t, ec&) {
    key_.append(s.data(), s.size());
    after_key_ = key_ == "finish_reason";
    key_.clear();
    return true;
  }
  bool on_string_part(sv, std::size_t, ec&) { return true; }
  bool on_string(sv, std::size_t, ec&) { return value(true); }
  bool on_number_part(sv, ec&) { return true; }
  bool on_int64(std::int64_t, sv, ec&) { return value(false); }
  bool on_uint64(std::uint64_t, sv, ec&) { return value(false); }
  bool on_double(double, sv, ec&) { return value(false); }
  bool on_bool(bool, ec&) { return value(false); }
  bool on_null(ec&) { return value(false); }
  bool on_comment_part(sv, ec&) { return true; }
  bool on_comment(sv, ec&) { return true; }

 private:
  bool value(bool is_string) {
    found_ = found_ || (after_key_ && is_string);
    after_key_ = false;
    return true;
  }
  bool& found_;
  bool after_key_ = false;
  std::string key_;
};

inline std::optional<bool> json_has_finish_reason(std::string_view data) {
  bool found = false;
  boost::json::basic_parser<FinishReasonFinder> parser(boost::json::parse_options{}, found);
  boost::system::error_code ec;
  const std::size_t used = parser.write_some(false, data.data(), data.size(), ec);
  if (ec || used != data.size() || !parser.done()) return std::nullopt;
  return found;
}

inline const char* verdict_name(StreamVerdict v) {
  switch (v) {
    case StreamVerdict::kComplete:
      return "complete";
    case StreamVerdict::kNoEvent:
      return "no event";
    case StreamVerdict::kCutOff:
      return "cut off";
    case StreamVerdict::kBroken:
      return "broken";
  }
  return "?";
}

inline std::optional<std::string> check_relay_input(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return std::nullopt;
  static constexpr std::size_t kLimits[8] = {1, 8, 32, 128, 1024, 4096, 65536, kDefaultMaxSseEventBytes};
  const std::size_t max_bytes = kLimits[data[0] & 7u];
  const std::uint32_t seed = data[1] + 1u;
  const std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);

  const RelayOutcome whole = relay_in_pieces(body, max_bytes, 0);
  if (!whole.quiet_after_stop) return std::string("events relayed after feed() said stop");

  // What the relay should have done, from one parser's reading of the whole stream.
  std::vector<std::string> expected;
  bool done = false;
  bool finished = false;
  SseParser parser(true, max_bytes);
  auto collect = [&](SseEvent&& e) {
    if (done) return;
    if (is_done_text(e.data)) {
      done = true;
      return;
    }
    finished = finished || has_finish_reason(e.data) || ends_response(e.data);
    expected.push_back(std::move(e.data));
  };
  const bool parsed = parser.feed(body, collect) && parser.finish(collect);
  StreamVerdict verdict = StreamVerdict::kComplete;
  if (!parsed && !done) {
    verdict = StreamVerdict::kBroken;
  } else if (!done && !finished) {
    verdict = expected.empty() ? StreamVerdict::kNoEvent : StreamVerdict::kCutOff;
  }
  if (whole.events != expected) {
    return "relayed " + std::to_string(whole.events.size()) + " events, the stream has " +
           std::to_string(expected.size()) + " before [DONE]";
  }
  if (whole.verdict != verdict) {
    return std::string("verdict ") + verdict_name(whole.verdict) + ", expected " + verdict_name(verdict);
  }

  for (const std::string& e : whole.events) {
    if (e.find('\\') != std::string::npos) continue;
    if (const std::optional<bool> json = json_has_finish_reason(e); json && *json != has_finish_reason(e)) {
      return "has_finish_reason says " + std::string(*json ? "no" : "yes") + " to JSON that says otherwise";
    }
  }

  const RelayOutcome split = relay_in_pieces(body, max_bytes, seed);
  if (!(split == whole)) {
    return std::string("split feeding changed the outcome: ") + verdict_name(whole.verdict) +
           " in one read, " + verdict_name(split.verdict) + " in pieces";
  }
  const RelayOutcome other = relay_in_pieces(body, max_bytes, 0x9e3779b9u);
  if (!(other == whole)) return std::string("another split changed the outcome");
  return std::nullopt;
}

}  // namespace parley::upstream::fuzz
