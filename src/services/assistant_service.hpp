// The voice and SMS assistant (issue 15, seed 001; docs/ASSISTANT.md): conversation turns with
// their text-to-speech metadata (and audio on request), yes/no decisions on incoming SMS with a
// drafted reply, the call log, and one history of the three per user.
//
// turn() and sms_decision() are asynchronous (coroutines on the caller's loop: store work on the
// blocking pool, the model through ChatService, a conversation turn through AnswerService);
// add_call(), get_call() and history() are BLOCKING: call them on the pool.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "http/blocking_pool.hpp"
#include "services/chat_service.hpp"
#include "services/conversation_service.hpp"
#include "services/preference_service.hpp"
#include "store/assistant_store.hpp"
#include "store/database.hpp"

namespace parley::services {

struct AssistantOptions {
  std::string speech_model = "tts-1";         // defaults.speech_model
  std::chrono::milliseconds slow_turn{2000};  // assistant.slow_turn_ms
  std::size_t max_text_chars = 4000;          // chat.max_message_chars
};

struct TurnInput {
  std::string user_id;
  std::string text;
  std::optional<std::string> conversation_id;
  bool speech = false;
  std::optional<std::string> model;
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
};

struct TurnAudio {
  std::string format;        // "mp3", "wav", …
  std::string content_type;  // "audio/mpeg", …
  std::string data;          // the bytes
};

struct TurnResult {
  store::TurnRecord turn;
  std::optional<TurnAudio> audio;
  RateLimitInfo limits;
};

struct SmsInput {
  std::string user_id;
  std::string text;
  std::optional<std::string> model;
};

struct SmsResult {
  store::SmsRecord sms;
  bool auto_reply_enabled = false;
  RateLimitInfo limits;
};

struct CallInput {
  std::string user_id;
  std::string direction;
  std::string from_number;
  std::string to_number;
  std::string status;
  std::int64_t started_at = 0;  // unix ms
  std::optional<std::int64_t> ended_at;
  std::optional<std::int64_t> duration_seconds;
  std::optional<std::string> conversation_id;
};

struct HistoryRequest {
  std::string user_id;
  unsigned kinds = 7;  // store::HistoryKind mask
  std::optional<std::int64_t> since;
  std::optional<std::int64_t> until;
  std::optional<std::string> cursor;  // a next_cursor given earlier
  std::int64_t limit = 50;
};

struct HistoryPage {
  std::vector<store::HistoryItem> items;
  std::optional<std::string> next_cursor;
};

// A model's SMS decision, validated (docs/ASSISTANT.md): one JSON object, optionally inside one
// Markdown code fence; `decision` yes/no in any case (returned lower case); `reply_text` a string
// of at most 1600 characters. kModelOutputInvalid with the reason otherwise.
struct SmsAnswer {
  std::string decision;
  std::string reply_text;
};
Result<SmsAnswer> parse_sms_answer(std::string_view text);

// The structured-output request of an SMS decision (a serialized response_format object).
const std::string& sms_response_format();

// Call records' rules: direction, E.164 numbers, status, times and duration (kValidation naming
// the field). `now_ms` bounds started_at (at most a day ahead).
Status check_call(const CallInput& call, std::int64_t now_ms);

// History cursors: opaque text for (at, id).
std::string encode_history_cursor(const store::HistoryCursor& cursor);
Result<store::HistoryCursor> decode_history_cursor(std::string_view text);

class AssistantService {
 public:
  AssistantService(ChatService& chat, AnswerService& answers, ConversationService& conversations,
                   PreferenceService& preferences, http::BlockingPool& pool, store::Database& db,
                   const Clock& clock, AssistantOptions options)
      : chat_(chat),
        answers_(answers),
        conversations_(conversations),
        preferences_(preferences),
        pool_(pool),
        db_(db),
        clock_(clock),
        options_(std::move(options)) {}

  // One turn: the answer (in a stored conversation when conversation_id is set), its audio when
  // asked, stored as a turn. Errors: kNotFound (user or conversation not the caller's to see),
  // kForbidden (a manager acting for another user), kConflict (conversation ended or busy), and
  // those of the model call.
  boost::asio::awaitable<Result<TurnResult>> turn(const auth::Principal& who, TurnInput input,
                                                  std::string request_id,
                                                  boost::asio::any_io_executor executor);

  // A yes/no decision on an incoming SMS with a drafted reply; a malformed answer is asked for
  // once more, then kModelOutputInvalid (nothing stored).
  boost::asio::awaitable<Result<SmsResult>> sms_decision(const auth::Principal& who, SmsInput input,
                                                         std::string request_id);

  Result<store::CallRecord> add_call(const auth::Principal& who, const CallInput& input);
  Result<store::CallRecord> get_call(const auth::Principal& who, std::string_view call_id);
  Result<HistoryPage> history(const auth::Principal& who, const HistoryRequest& request);

 private:
  // The user's preferences once the caller may act for them (kWrite).
  boost::asio::awaitable<Result<store::PreferencesRecord>> acting_for(const auth::Principal& who,
                                                                      const std::string& user_id);
  // The answer's audio through /audio/speech of the provider serving options_.speech_model, else of
  // the provider that answered (`answered_model`).
  boost::asio::awaitable<Result<TurnAudio>> speak(const auth::Principal& who,
                                                  const std::string& answered_model, const std::string& text,
                                                  const std::string& voice, const std::string& request_id);

  ChatService& chat_;
  AnswerService& answers_;
  ConversationService& conversations_;
  PreferenceService& preferences_;
  http::BlockingPool& pool_;
  store::Database& db_;
  const Clock& clock_;
  AssistantOptions options_;
};

}  // namespace parley::services
