// Answers being generated, decoupled from the requests that asked for them (docs/CONVERSATIONS.md,
// "Streams that survive the client").
//
// A Generation is one answer's ordered event log: events 1..N are the pieces of text in the order
// the provider sent them, event N+1 the terminal event (the stored answer: complete, failed or
// cancelled). It is written by the one coroutine that runs the provider call and read by any
// number of followers on any event loop (an HTTP request streaming it, another one resuming after
// a dropped connection, a WebSocket). Followers wait on their own loop's timer; the producer wakes
// them by posting to those loops. Thread-safe.
//
// In memory the log is the text not yet saved (and what was saved, until a memory limit asks for it
// to go) plus the length of each piece, so a follower can start from any event still in memory;
// the rest, and everything once the answer is stored, is rebuilt from the stored text and
// `event_lengths` (see replay_pieces): a follower reading the store gets exactly the same events.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "store/conversation_store.hpp"

namespace parley::services {

// How an answer ended, as its terminal event tells it.
struct AnswerEnd {
  store::MessageRecord message;  // as stored (status complete, failed or cancelled)
  std::optional<Error> error;    // why it failed (also set when storing it failed)
};

class Generation : public std::enable_shared_from_this<Generation> {
 public:
  Generation(std::string message_id, std::string conversation_id, boost::asio::any_io_executor producer);
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  [[nodiscard]] const std::string& message_id() const { return message_id_; }
  [[nodiscard]] const std::string& conversation_id() const { return conversation_id_; }

  // Producer: appends a piece (one event) and wakes the followers.
  void append(std::string_view piece);
  // Producer: the terminal event, once the answer is stored; wakes the followers. Once only. The
  // text leaves memory: from now on it is replayed from the store.
  void finish(AnswerEnd end);

  // Asks the producer to stop: the provider call is cancelled and the answer stored "cancelled".
  // False when the answer is already over.
  bool request_cancel();
  [[nodiscard]] bool cancel_requested() const;
  // Bound by the producer to its coroutine (emitted on the producer's executor by request_cancel).
  boost::asio::cancellation_signal& cancel_signal() { return cancel_signal_; }

  // Events after `seen` (at most `max_pieces` pieces), and the terminal event when every piece up
  // to it has been returned. Events are numbered from 1; `first` is the number of pieces[0].
  // `behind` says the next piece is no longer in memory (it is in the store: read it there).
  struct Slice {
    std::vector<std::string> pieces;
    std::uint64_t first = 0;
    std::optional<AnswerEnd> end;
    std::uint64_t end_number = 0;  // number of the terminal event when `end` is set
    bool behind = false;
  };
  [[nodiscard]] Slice after(std::uint64_t seen, std::size_t max_pieces = 512) const;

  // Suspends the caller (on its own executor) until there is an event after `seen`, the answer is
  // over, or `cap` has passed. Returns at once when any of these already holds.
  boost::asio::awaitable<void> wait(std::uint64_t seen, std::chrono::milliseconds cap);

  // The pieces not saved yet (producer): their text, their comma-separated byte lengths, and the
  // number of the last one.
  struct Unsaved {
    std::string text;
    std::string lengths;
    std::uint64_t through = 0;
  };
  [[nodiscard]] Unsaved unsaved() const;
  // Pieces up to `through` are in the store; with `forget`, they leave memory (followers that
  // still need them read the store).
  void saved(std::uint64_t through, bool forget);

  [[nodiscard]] std::uint64_t pieces() const;
  [[nodiscard]] bool finished() const;
  // Set by the producer once the answer's message is in the store (the generation is registered
  // before, to keep one answer per conversation): until then its id is not shown to clients, who
  // would find no message by it.
  void mark_stored() { stored_.store(true, std::memory_order_release); }
  [[nodiscard]] bool stored() const { return stored_.load(std::memory_order_acquire); }
  [[nodiscard]] std::size_t memory_bytes() const;  // text and piece ends held
  [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> finished_at() const;
  // Memory accounting shared by a registry's generations (may be null).
  void account_to(std::atomic<std::int64_t>* total);
  ~Generation();

 private:
  struct Waiter;
  void wake_locked();
  void forget_locked(std::uint64_t through);

  const std::string message_id_;
  const std::string conversation_id_;
  const boost::asio::any_io_executor producer_;
  boost::asio::cancellation_signal cancel_signal_;

  mutable std::mutex mutex_;
  std::uint64_t first_in_memory_ = 1;  // number of the piece whose text starts content_
  std::string content_;                // text of the pieces in memory
  std::vector<std::uint32_t> ends_;    // end offset in content_ of each piece in memory
  std::uint64_t saved_ = 0;            // pieces in the store
  std::optional<AnswerEnd> end_;
  std::optional<std::chrono::steady_clock::time_point> finished_at_;
  bool cancel_ = false;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  std::atomic<std::int64_t>* accounted_ = nullptr;
  std::int64_t accounted_bytes_ = 0;
  std::atomic<bool> stored_{false};
};

// The pieces of a stored answer: `content` cut at `event_lengths`. Empty when the lengths do not
// add up to the content (then the answer is replayed as one piece, if it has any text).
std::vector<std::string> replay_pieces(const std::string& content, std::string_view event_lengths);

// The answers this process is generating (or finished less than `retention` ago), by message id,
// with at most one running per conversation. Thread-safe.
class GenerationRegistry {
 public:
  explicit GenerationRegistry(std::chrono::seconds retention) : retention_(retention) {}

  // A new generation for an answer of `conversation_id`; nullptr when another answer of that
  // conversation is still running here.
  std::shared_ptr<Generation> start(const std::string& message_id, const std::string& conversation_id,
                                    boost::asio::any_io_executor producer);
  [[nodiscard]] std::shared_ptr<Generation> find(const std::string& message_id);
  // The conversation's running generation, if any.
  [[nodiscard]] std::shared_ptr<Generation> running_in(const std::string& conversation_id);
  // The answer is over: the conversation is free again; the log stays findable for `retention`.
  void finished(const Generation& generation);
  // Every generation still running (shutdown stores them).
  [[nodiscard]] std::vector<std::shared_ptr<Generation>> running();
  [[nodiscard]] std::size_t size();
  // Bytes of text held by every generation of this registry.
  [[nodiscard]] std::int64_t memory_bytes() const { return memory_.load(std::memory_order_relaxed); }

 private:
  void purge_locked(std::chrono::steady_clock::time_point now);

  static constexpr std::size_t kPurgeAtSize = 100'000;  // a sweep at once past this many kept

  const std::chrono::seconds retention_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_purge_{};
  std::unordered_map<std::string, std::shared_ptr<Generation>> by_message_;
  std::unordered_map<std::string, std::string> running_by_conversation_;  // conversation → message
  std::atomic<std::int64_t> memory_{0};
};

}  // namespace parley::services
