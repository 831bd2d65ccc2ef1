#include "store/assistant_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kTurnColumns =
    "id, user_id, conversation_id, message_id, input_text, gpt_response, input_tokens, output_tokens, "
    "processing_time_ms, model_used, tts_voice, language, speech, request_id, created_at";

constexpr std::string_view kSmsColumns =
    "id, user_id, incoming_text, decision, reply_text, send_reply, model_used, input_tokens, output_tokens, "
    "request_id, created_at";

constexpr std::string_view kCallColumns =
    "id, user_id, direction, from_number, to_number, status, started_at, ended_at, duration_seconds, "
    "conversation_id, created_at";

TurnRecord turn_from_row(const Row& row) {
  TurnRecord t;
  t.id = row.get_string(0);
  t.user_id = row.get_string(1);
  t.conversation_id = row.get_optional_string(2);
  t.message_id = row.get_optional_string(3);
  t.input_text = row.get_string(4);
  t.gpt_response = row.get_string(5);
  t.input_tokens = row.get_int(6);
  t.output_tokens = row.get_int(7);
  t.processing_time_ms = row.get_double(8);
  t.model_used = row.get_string(9);
  t.tts_voice = row.get_string(10);
  t.language = row.get_string(11);
  t.speech = row.get_bool(12);
  t.request_id = row.get_string(13);
  t.created_at = row.get_int(14);
  return t;
}

SmsRecord sms_from_row(const Row& row) {
  SmsRecord s;
  s.id = row.get_string(0);
  s.user_id = row.get_string(1);
  s.incoming_text = row.get_string(2);
  s.decision = row.get_string(3);
  s.reply_text = row.get_string(4);
  s.send_reply = row.get_bool(5);
  s.model_used = row.get_string(6);
  s.input_tokens = row.get_int(7);
  s.output_tokens = row.get_int(8);
  s.request_id = row.get_string(9);
  s.created_at = row.get_int(10);
  return s;
}

CallRecord call_from_row(const Row& row) {
  CallRecord c;
  c.id = row.get_string(0);
  c.user_id = row.get_string(1);
  c.direction = row.get_string(2);
  c.from_number = row.get_string(3);
  c.to_number = row.get_string(4);
  c.status = row.get_string(5);
  c.started_at = row.get_int(6);
  c.ended_at = row.get_optional_int(7);
  c.duration_seconds = row.get_int(8);
  c.conversation_id = row.get_optional_string(9);
  c.created_at = row.get_int(10);
  return c;
}

// "$1, $2, …, $n".
std::string placeholders(std::size_t n) {
  std::string out;
  for (std::size_t i = 1; i <= n; ++i) out += fmt::format("{}${}", i > 1 ? ", " : "", i);
  return out;
}

// Turns a failed insert's error into the store's: a duplicate id names `id`; a foreign-key
// violation (the database does not say which key) is resolved by looking the user up: a missing
// user is "User not found", else the linked conversation is missing.
Error insert_error(Executor& db, Error error, std::string_view table, std::string_view user_id,
                   const std::optional<std::string>& conversation_id) {
  if (error.kind == ErrorKind::kConflict) {
    const std::string sqlite_marker = fmt::format("{}.id", table);
    const std::string postgres_marker = fmt::format("{}_pkey", table);
    return detail::name_conflict(std::move(error), {{sqlite_marker, "id"}, {postgres_marker, "id"}});
  }
  if (error.kind != ErrorKind::kNotFound) return error;
  bool user_exists = false;
  if (conversation_id) {
    Result<QueryResult> user = db.query("SELECT 1 FROM users WHERE id = $1", {user_id});
    if (!user) return error;  // keep the driver's message
    user_exists = !user->rows.empty();
  }
  if (user_exists) return Error{ErrorKind::kNotFound, "Conversation not found", "conversation_id"};
  return Error{ErrorKind::kNotFound, "User not found", "user_id"};
}

Status insert(Executor& db, std::string_view table, std::string_view columns, std::span<const Value> values,
              std::string_view user_id, const std::optional<std::string>& conversation_id) {
  Result<QueryResult> r = db.query(
      fmt::format("INSERT INTO {} ({}) VALUES ({})", table, columns, placeholders(values.size())), values);
  if (!r) return std::unexpected(insert_error(db, std::move(r.error()), table, user_id, conversation_id));
  return {};
}

// One kind's share of a history page: its table, its time column and how to read a row.
struct KindSource {
  HistoryKind kind;
  std::string_view table;
  std::string_view time_column;
  std::string_view columns;
  HistoryItem (*read)(const Row& row);
};

HistoryItem turn_item(const Row& row) {
  TurnRecord t = turn_from_row(row);
  HistoryItem item{HistoryKind::kConversation, t.created_at, t.id, {}};
  item.record = std::move(t);
  return item;
}

HistoryItem call_item(const Row& row) {
  CallRecord c = call_from_row(row);
  HistoryItem item{HistoryKind::kCall, c.started_at, c.id, {}};
  item.record = std::move(c);
  return item;
}

HistoryItem sms_item(const Row& row) {
  SmsRecord s = sms_from_row(row);
  HistoryItem item{HistoryKind::kSms, s.created_at, s.id, {}};
  item.record = std::move(s);
  return item;
}

constexpr std::array<KindSource, 3> kSources = {{
    {HistoryKind::kConversation, "assistant_turns", "created_at", kTurnColumns, &turn_item},
    {HistoryKind::kCall, "calls", "started_at", kCallColumns, &call_item},
    {HistoryKind::kSms, "sms_decisions", "created_at", kSmsColumns, &sms_item},
}};

// Does `a` come before `b` in history order (at DESC, id DESC)? Ids compare bytewise, as SQLite
// and the PostgreSQL "C" collation of the id columns do.
bool precedes(const HistoryItem& a, const HistoryItem& b) {
  if (a.at != b.at) return a.at > b.at;
  return a.id > b.id;
}

// The newest `limit` items of one kind matching the query, in history order.
Result<std::vector<HistoryItem>> read_kind(Executor& db, const KindSource& source, const HistoryQuery& query,
                                           std::int64_t limit) {
  detail::Params params;
  const std::string_view at = source.time_column;
  std::string where = fmt::format("user_id = {}", params.add(query.user_id));
  if (query.since) where += fmt::format(" AND {} >= {}", at, params.add(*query.since));
  if (query.until) where += fmt::format(" AND {} < {}", at, params.add(*query.until));
  if (query.after) {
    const std::string after_at = params.add(query.after->at);
    const std::string after_id = params.add(query.after->id);
    where += fmt::format(" AND ({0} < {1} OR ({0} = {1} AND id < {2}))", at, after_at, after_id);
  }
  const std::string limit_param = params.add(limit);
  Result<QueryResult> r =
      db.query(fmt::format("SELECT {} FROM {} WHERE {} ORDER BY {} DESC, id DESC LIMIT {}", source.columns,
                           source.table, where, at, limit_param),
               params.span());
  if (!r) return forward_error(r);
  std::vector<HistoryItem> items;
  items.reserve(r->rows.size());
  for (const Row& row : r->rows) items.push_back(source.read(row));
  return items;
}

}  // namespace

Status AssistantStore::add_turn(const TurnRecord& turn) {
  if (turn.id.empty()) return fail(ErrorKind::kInternal, "turn id is empty");
  const std::array<Value, 15> values = {
      turn.id,           turn.user_id,      turn.conversation_id, turn.message_id,         turn.input_text,
      turn.gpt_response, turn.input_tokens, turn.output_tokens,   turn.processing_time_ms, turn.model_used,
      turn.tts_voice,    turn.language,     turn.speech,          turn.request_id,         turn.created_at};
  return insert(db_, "assistant_turns", kTurnColumns, values, turn.user_id, turn.conversation_id);
}

Status AssistantStore::add_sms(const SmsRecord& sms) {
  if (sms.id.empty()) return fail(ErrorKind::kInternal, "SMS decision id is empty");
  const std::array<Value, 11> values = {
      sms.id,         sms.user_id,      sms.incoming_text, sms.decision,   sms.reply_text, sms.send_reply,
      sms.model_used, sms.input_tokens, sms.output_tokens, sms.request_id, sms.created_at};
  return insert(db_, "sms_decisions", kSmsColumns, values, sms.user_id, std::nullopt);
}

Status AssistantStore::add_call(const CallRecord& call) {
  if (call.id.empty()) return fail(ErrorKind::kInternal, "call id is empty");
  const std::array<Value, 11> values = {
      call.id,        call.user_id,    call.direction, call.from_number,      call.to_number,
      call.status,    call.started_at, call.ended_at,  call.duration_seconds, call.conversation_id,
      call.created_at};
  return insert(db_, "calls", kCallColumns, values, call.user_id, call.conversation_id);
}

Result<std::optional<CallRecord>> AssistantStore::get_call(std::string_view id) {
  Result<QueryResult> r = db_.query(fmt::format("SELECT {} FROM calls WHERE id = $1", kCallColumns), {id});
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<CallRecord>();
  return std::optional<CallRecord>(call_from_row(r->rows.front()));
}

Result<std::vector<HistoryItem>> AssistantStore::history(const HistoryQuery& query) {
  const auto limit = std::clamp<std::int64_t>(query.limit, 0, kMaxPageLimit);
  std::vector<HistoryItem> out;
  if (limit == 0) return out;

  // Each kind's newest `limit` items, each list in history order.
  std::vector<std::vector<HistoryItem>> lists;
  for (const KindSource& source : kSources) {
    if ((query.kinds & static_cast<unsigned>(source.kind)) == 0) continue;
    Result<std::vector<HistoryItem>> items = read_kind(db_, source, query, limit);
    if (!items) return forward_error(items);
    if (!items->empty()) lists.push_back(std::move(*items));
  }

  // Merged: repeatedly the first of the lists' heads.
  std::vector<std::size_t> heads(lists.size(), 0);
  while (static_cast<std::int64_t>(out.size()) < limit) {
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < lists.size(); ++i) {
      if (heads[i] == lists[i].size()) continue;
      if (!best || precedes(lists[i][heads[i]], lists[*best][heads[*best]])) best = i;
    }
    if (!best) break;
    out.push_back(std::move(lists[*best][heads[*best]++]));
  }
  return out;
}

}  // namespace parley::store
