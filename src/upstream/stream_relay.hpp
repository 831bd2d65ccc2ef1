// The synchronous half of relaying a provider's streamed answer (OpenAI-style Server-Sent Events):
// which events go to the client, when the stream is over, and whether what arrived was a whole
// answer. The provider's coroutine (HttpProvider::exchange_stream) feeds it the body bytes
// as they arrive and sends on what it returns; nothing here waits or does I/O.
//
//   - every event's `data` is relayed, in order, up to the `[DONE]` marker; the marker itself and
//     anything after it are not (the stream is over: read no further);
//   - an event over the SSE size limit (see SseParser) breaks the stream: the events before it are
//     relayed, nothing after;
//   - at the end, the verdict: complete when `[DONE]` arrived or a relayed event reported a
//     finish_reason (chat completions) or was a Responses API terminal event (response.completed,
//     response.incomplete, response.failed: that stream has no [DONE]); otherwise "no event" when
//     nothing was relayed, "cut off" when something was.
//     A broken stream is broken whatever came before.
//
// Anthropic's Messages API streams (StreamFraming::kAnthropic) end differently: there is no `[DONE]`;
// the `message_stop` event (or an `error` event) is the last one. It is relayed, then nothing after
// it, and the verdict is complete only when one of them arrived (a finish_reason means nothing).
//
// Splitting the body differently across feed() calls never changes the events relayed, their order
// or the verdict.
//
// Thread-safety: none; one relay per stream attempt, used from one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "upstream/sse_parser.hpp"

namespace parley::upstream {

enum class StreamVerdict : std::uint8_t {
  kComplete,  // [DONE] arrived, or a relayed event reported a finish_reason
  kNoEvent,   // the stream ended without an event to relay
  kCutOff,    // events were relayed, but none ended the answer
  kBroken,    // an event broke the SSE size limit before [DONE]
};

enum class StreamFraming : std::uint8_t {
  kOpenAi,     // chat completions: `data:` events up to `data: [DONE]`
  kAnthropic,  // Messages API: named events up to `message_stop` or `error`
};

class StreamRelay {
 public:
  explicit StreamRelay(std::size_t max_event_bytes = kDefaultMaxSseEventBytes) noexcept
      : parser_(/*dispatch_incomplete_at_eof=*/true, max_event_bytes) {}
  explicit StreamRelay(StreamFraming framing, std::size_t max_event_bytes = kDefaultMaxSseEventBytes) noexcept
      : parser_(/*dispatch_incomplete_at_eof=*/true, max_event_bytes), framing_(framing) {}

  // Parses the next body bytes and appends to `out` the data of each event they complete that is
  // to be relayed. Returns whether to read on: false once [DONE] arrived or the stream broke.
  // After that, feed() and finish() add nothing.
  bool feed(std::string_view bytes, std::vector<std::string>& out);

  // The body ended: relays a last event the body did not close with a blank line.
  void finish(std::vector<std::string>& out);

  [[nodiscard]] bool done() const noexcept { return done_; }
  [[nodiscard]] bool broken() const noexcept { return broken_; }
  [[nodiscard]] std::size_t relayed() const noexcept { return relayed_; }
  [[nodiscard]] StreamVerdict verdict() const noexcept;

 private:
  void take(SseEvent&& event, std::vector<std::string>& out);

  SseParser parser_;
  StreamFraming framing_ = StreamFraming::kOpenAi;
  bool done_ = false;      // [DONE] arrived
  bool finished_ = false;  // a relayed event carried a finish_reason
  bool broken_ = false;
  std::size_t relayed_ = 0;
};

// Does a chunk report how its choice ended ("finish_reason": "stop", "length", ...; not null)?
// Reads the text, not a parsed document: a "finish_reason" key anywhere whose value is a string.
[[nodiscard]] bool has_finish_reason(std::string_view data) noexcept;
// Is the event one that ends a Responses API stream ("type" response.completed, .incomplete, .failed)?
[[nodiscard]] bool ends_response(std::string_view data) noexcept;

}  // namespace parley::upstream
