// The properties the SSE parser fuzz target checks, shared with the unit test that replays them on
// generated inputs in every normal build (tests/unit/upstream_sse_parser_property_test.cpp).
//
// Input layout: byte 0 chooses the mode (bit 0: dispatch an incomplete event at EOF) and the size
// limit (bits 1-3), byte 1 seeds how the rest is split into feed() calls; the rest is the stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "upstream/sse_parser.hpp"

namespace parley::upstream::fuzz {

struct ParseOutcome {
  std::vector<SseEvent> events;
  bool ok = true;
  bool stayed_failed = true;  // after an error, later calls fail too and deliver nothing
};

// Feeds `stream` in pieces whose sizes come from a small deterministic generator (0 to 31 bytes,
// empty pieces included), or in one piece when `seed` is 0.
inline ParseOutcome parse_in_pieces(std::string_view stream, bool dispatch_at_eof, std::size_t max_bytes,
                                    std::uint32_t seed) {
  SseParser parser(dispatch_at_eof, max_bytes);
  ParseOutcome out;
  auto collect = [&out](SseEvent&& e) { out.events.push_back(std::move(e)); };
  std::uint32_t state = seed;
  while (!stream.empty()) {
    std::size_t n = stream.size();
    if (seed != 0) {
      state = state * 1664525u + 1013904223u;  // LCG: cheap and deterministic
      n = std::min<std::size_t>(n, (state >> 24) & 31u);
    }
    if (!parser.feed(stream.substr(0, n), collect)) {
      out.ok = false;
      const std::size_t delivered = out.events.size();
      out.stayed_failed = parser.failed() && !parser.feed("data: x\n\n", collect) &&
                          !parser.finish(collect) && out.events.size() == delivered;
      return out;
    }
    stream.remove_prefix(n);
  }
  if (!parser.finish(collect)) {
    out.ok = false;
    out.stayed_failed = parser.failed() && !parser.finish(collect);
  }
  return out;
}

// nullopt when every property holds, else a description of the first violation.
inline std::optional<std::string> check_sse_input(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return std::nullopt;
  static constexpr std::size_t kLimits[8] = {1, 2, 7, 16, 64, 256, 4096, kDefaultMaxSseEventBytes};
  const bool dispatch_at_eof = (data[0] & 1u) != 0;
  const std::size_t max_bytes = kLimits[(data[0] >> 1) & 7u];
  const std::uint32_t seed = data[1] + 1u;
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  const ParseOutcome whole = parse_in_pieces(stream, dispatch_at_eof, max_bytes, 0);
  if (!whole.stayed_failed) return std::string("parser did not stay failed after an error");
  for (const SseEvent& e : whole.events) {
    // The data buffer holds data + LF and never exceeds the limit; type and id come from one line.
    if (e.data.size() >= max_bytes) return "event data of " + std::to_string(e.data.size()) + " bytes";
    if (e.event.empty()) return std::string("empty event type");
    if (e.event.size() > max_bytes || e.id.size() > max_bytes) return std::string("event/id over the limit");
    if (e.id.find('\0') != std::string::npos) return std::string("id with NUL");
    if (e.retry && *e.retry < 0) return std::string("negative retry");
  }

  const ParseOutcome split = parse_in_pieces(stream, dispatch_at_eof, max_bytes, seed);
  if (split.ok != whole.ok) return std::string("split feeding changed the outcome");
  if (split.events != whole.events) return std::string("split feeding changed the events");

  const ParseOutcome bytes = parse_in_pieces(stream, dispatch_at_eof, max_bytes, 0x9e3779b9u);
  if (bytes.ok != whole.ok || bytes.events != whole.events) return std::string("another split differs");
  return std::nullopt;
}

}  // namespace parley::upstream::fuzz
