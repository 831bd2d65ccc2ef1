// The voice and SMS assistant's records (issue 15, seed 001; docs/ASSISTANT.md): conversation
// turns, SMS decisions and calls, one table each (migration 0008), all deleted with their user.
// A turn or call may name a stored conversation; deleting the conversation keeps the record and
// clears the link.
//
// History reads the three kinds newest first in one order: (at DESC, id DESC), `at` being a
// turn's or decision's created_at and a call's started_at. Ids carry their kind's prefix (turn_,
// sms_, call_), so they never collide across kinds and the pair is a total order; the keyset
// cursor is the last item's (at, id).
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kNotFound from the
// inserts when the user (or a linked conversation) does not exist; kDatabase/kUnavailable
// otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

struct TurnRecord {
  std::string id;  // "turn_…"
  std::string user_id;
  std::optional<std::string> conversation_id;  // the stored conversation the turn continued
  std::optional<std::string> message_id;       // its answer message in that conversation
  std::string input_text;
  std::string gpt_response;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  double processing_time_ms = 0;
  std::string model_used;
  std::string tts_voice;
  std::string language;
  bool speech = false;  // audio was made for the answer
  std::string request_id;
  std::int64_t created_at = 0;  // unix ms
};

struct SmsRecord {
  std::string id;  // "sms_…"
  std::string user_id;
  std::string incoming_text;
  std::string decision;  // "yes" | "no"
  std::string reply_text;
  bool send_reply = false;  // auto_reply_enabled and decision "yes" when decided
  std::string model_used;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::string request_id;
  std::int64_t created_at = 0;  // unix ms
};

struct CallRecord {
  std::string id;  // "call_…"
  std::string user_id;
  std::string direction;  // "inbound" | "outbound"
  std::string from_number;
  std::string to_number;
  std::string status;           // completed | missed | failed | busy | rejected | no_answer
  std::int64_t started_at = 0;  // unix ms
  std::optional<std::int64_t> ended_at;
  std::int64_t duration_seconds = 0;
  std::optional<std::string> conversation_id;
  std::int64_t created_at = 0;  // unix ms
};

enum class HistoryKind { kConversation = 1, kCall = 2, kSms = 4 };

struct HistoryItem {
  HistoryKind kind = HistoryKind::kConversation;
  std::int64_t at = 0;  // the ordering time (unix ms)
  std::string id;
  std::variant<TurnRecord, CallRecord, SmsRecord> record;
};

struct HistoryCursor {
  std::int64_t at = 0;
  std::string id;
};

struct HistoryQuery {
  std::string user_id;
  unsigned kinds = 7;                  // a mask of HistoryKind values
  std::optional<std::int64_t> since;   // at >= since
  std::optional<std::int64_t> until;   // at < until
  std::optional<HistoryCursor> after;  // only items after this one in the order (older)
  std::int64_t limit = 50;             // clamped to [0, kMaxPageLimit]
};

class AssistantStore {
 public:
  explicit AssistantStore(Executor& db) : db_(db) {}

  Status add_turn(const TurnRecord& turn);
  Status add_sms(const SmsRecord& sms);
  Status add_call(const CallRecord& call);
  Result<std::optional<CallRecord>> get_call(std::string_view id);

  // At most `limit` items of the kinds asked for, in history order.
  Result<std::vector<HistoryItem>> history(const HistoryQuery& query);

 private:
  Executor& db_;
};

}  // namespace parley::store
