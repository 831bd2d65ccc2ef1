// Following an answer's events (services::Generation) to wherever a client reads them: an SSE
// response (api/conversations.cpp) or a WebSocket (api/realtime.cpp). The same events in the same
// numbering either way, whether the answer is followed live, resumed after a dropped connection
// or replayed from the store (docs/CONVERSATIONS.md, "Streams that survive the client").
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "services/generation.hpp"
#include "store/conversation_store.hpp"

namespace parley::api {

// Where the events go.
class AnswerSink {
 public:
  virtual ~AnswerSink() = default;
  // Events `first`, `first + 1`, … (pieces of text), then — when `end` is set — the terminal event,
  // numbered `end_number`, made from the answer as stored. False: the receiver is gone; stop.
  virtual boost::asio::awaitable<bool> deliver(std::string_view message_id, std::uint64_t first,
                                               std::span<const std::string> pieces,
                                               const store::MessageRecord* end, std::uint64_t end_number) = 0;
  // Nothing new for a while (SSE sends a keep-alive comment). False: the receiver is gone.
  virtual boost::asio::awaitable<bool> idle() = 0;
  [[nodiscard]] virtual bool gone() const = 0;
  // On while the feed waits on a live generation (SSE watches for the client leaving then).
  virtual void watch(bool on) = 0;
};

// Where an answer is kept once its text has left memory: the store, or (anonymous chat) the
// conversation in memory. nullopt when it is gone or not readable.
class AnswerSource {
 public:
  virtual ~AnswerSource() = default;
  virtual boost::asio::awaitable<std::optional<store::MessageRecord>> read(std::string conversation_id,
                                                                           std::string message_id) = 0;
};

// Delivers a live generation's events after `seen` until its terminal event or until the sink is
// gone. Events no longer in memory come from `source`.
boost::asio::awaitable<void> follow_live(AnswerSink& sink, AnswerSource& source,
                                         services::GenerationRegistry& registry,
                                         std::shared_ptr<services::Generation> generation,
                                         std::uint64_t seen);

// Delivers a kept answer's events after `seen`. While it is still being generated (by another
// instance, whose checkpoints the store has), polls `source` until it ends.
boost::asio::awaitable<void> follow_stored(AnswerSink& sink, AnswerSource& source,
                                           services::GenerationRegistry& registry,
                                           store::MessageRecord message, std::uint64_t seen);

// Where a client resumes: "<message_id>:<N>" or "<N>" (an event number); an error names `param`.
Result<std::uint64_t> parse_resume_point(std::string_view text, std::string_view message_id,
                                         std::string_view param);

}  // namespace parley::api
