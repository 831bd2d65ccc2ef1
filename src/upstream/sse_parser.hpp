// Incremental Server-Sent Events parser for provider streams, following the WHATWG HTML
// "event stream interpretation" rules (https://html.spec.whatwg.org/#event-stream-interpretation):
//
//   - lines end with LF, CRLF or CR; a CR ending one feed() chunk and an LF starting the next are
//     one line end;
//   - one UTF-8 BOM at the very start of the stream is skipped;
//   - a line starting with ':' is a comment; a line without ':' is a field with an empty value;
//     one space after the ':' is removed;
//   - `data` appends value + LF to the data buffer; `event` sets the type; `id` sets the last event
//     id unless the value contains NUL (the id persists across events, as in EventSource); `retry`
//     is taken only when it is one or more ASCII digits (and fits an int); other fields are ignored;
//   - a blank line dispatches: with an empty data buffer nothing is dispatched (type and data are
//     reset), otherwise the final LF is removed and the event delivered.
//
// Deliberate extension: the spec discards an event not closed by a blank line when the stream
// ends. Some providers omit the final blank line, so by default finish() processes a last,
// unterminated line and dispatches the pending event; construct with
// `dispatch_incomplete_at_eof = false` for the strict behaviour.
//
// The parser only splits bytes into events: it does not check UTF-8 and does not look inside
// `data` (the caller parses the JSON it needs).
//
// Memory is bounded: a line, and an event's data buffer (including the LF separators), may hold
// at most `max_event_bytes`. Going over is an error (kOpenAiApiError): feed()/finish() return it,
// the parser stops and every later call returns the same error. Dispatched `data` is therefore
// always shorter than `max_event_bytes`.
//
// Splitting the input differently across feed() calls never changes the events delivered.
//
// Callbacks: `on_event` is any callable accepting `SseEvent&&` (so `const SseEvent&` and by-value
// parameters work too); it is called synchronously, zero or more times, from inside feed()/finish()
// and may move from the event. It must not call back into the same parser and should not throw
// (an exception propagates out of feed() and leaves the parser in an unspecified but valid state).
//
// Thread-safety: none; one parser per stream, used from one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/error.hpp"

namespace parley::upstream {

struct SseEvent {
  std::string event = "message";  // the `event` field, "message" when absent or empty
  std::string data;               // `data` lines joined with LF, without a trailing LF
  std::string id;                 // the last event id seen so far in the stream ("" = none)
  std::optional<int> retry;       // a valid `retry` field given in this event's block, if any

  bool operator==(const SseEvent&) const = default;
};

// 4 MiB: far above any chat-completion chunk, small enough that a broken or hostile upstream
// cannot make us buffer without bound.
inline constexpr std::size_t kDefaultMaxSseEventBytes = std::size_t{4} << 20;

class SseParser {
 public:
  explicit SseParser(bool dispatch_incomplete_at_eof = true,
                     std::size_t max_event_bytes = kDefaultMaxSseEventBytes) noexcept
      : dispatch_incomplete_at_eof_(dispatch_incomplete_at_eof), max_event_bytes_(max_event_bytes) {}

  // Parses the next bytes of the stream, dispatching every event they complete.
  template <class OnEvent>
  Status feed(std::string_view bytes, OnEvent&& on_event) {
    return feed_impl(bytes, make_sink(on_event));
  }

  // Ends the stream: handles a last line without line end and (when configured) a last event
  // without a blank line, then resets the parser to its initial state for a new stream.
  template <class OnEvent>
  Status finish(OnEvent&& on_event) {
    return finish_impl(make_sink(on_event));
  }

  // The most recent valid `retry` value of the stream (the reconnection time, in ms), also when
  // its event was never dispatched.
  [[nodiscard]] std::optional<int> reconnection_time() const noexcept { return reconnection_time_; }

  // The last event id seen so far (persists across events).
  [[nodiscard]] const std::string& last_event_id() const noexcept { return last_event_id_; }

  [[nodiscard]] bool failed() const noexcept { return error_.has_value(); }

 private:
  // A non-owning reference to the caller's callback, so that feed() needs no allocation.
  struct Sink {
    void* callback;
    void (*invoke)(void* callback, SseEvent&& event);
    void operator()(SseEvent&& event) const { invoke(callback, std::move(event)); }
  };

  template <class OnEvent>
  static Sink make_sink(OnEvent& on_event) {
    using Callback = std::remove_reference_t<OnEvent>;
    static_assert(std::is_invocable_v<Callback&, SseEvent&&>, "on_event must accept SseEvent&&");
    return Sink{
        const_cast<void*>(static_cast<const void*>(std::addressof(on_event))),
        [](void* callback, SseEvent&& event) { (*static_cast<Callback*>(callback))(std::move(event)); }};
  }

  Status feed_impl(std::string_view bytes, const Sink& sink);
  Status finish_impl(const Sink& sink);
  Status process_line(std::string_view line, const Sink& sink);
  void dispatch(const Sink& sink);
  Status fail_too_large(std::string_view what);
  void reset_stream() noexcept;

  bool dispatch_incomplete_at_eof_;
  std::size_t max_event_bytes_;

  std::size_t bom_matched_ = 0;  // bytes of the UTF-8 BOM seen so far at stream start
  bool bom_done_ = false;        // past the point where a BOM could occur
  bool skip_lf_ = false;         // the previous chunk ended with CR: a leading LF is its pair
  std::string line_;             // an incomplete line carried over between feed() calls

  std::string data_;
  std::string event_type_;
  std::string last_event_id_;
  std::optional<int> event_retry_;
  std::optional<int> reconnection_time_;

  std::optional<Error> error_;
};

// True for the `[DONE]` sentinel that ends OpenAI-style streams (`data: [DONE]`); surrounding ASCII
// whitespace is tolerated.
[[nodiscard]] bool is_done_marker(std::string_view data) noexcept;

}  // namespace parley::upstream
