#include "store/conversation_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kConversationColumns =
    "id, user_id, title, system_message, model, metadata, status, message_count, last_message_at, "
    "created_at, updated_at, ended_at";

// The same, qualified by the alias `c` (the list query's conditions name c.seq and c.id).
constexpr std::string_view kAliasedConversationColumns =
    "c.id, c.user_id, c.title, c.system_message, c.model, c.metadata, c.status, c.message_count, "
    "c.last_message_at, c.created_at, c.updated_at, c.ended_at";

constexpr std::string_view kMessageColumns =
    "seq, id, conversation_id, parent_id, role, sender_id, content, status, active, model, prompt_tokens, "
    "completion_tokens, latency_ms, error_code, event_lengths, created_at, updated_at, item";

// The INSERT of one message ($1..$17, every column but seq), returning the stored row.
constexpr std::string_view kInsertMessage =
    "INSERT INTO messages (id, conversation_id, parent_id, role, sender_id, content, status, active, model, "
    "prompt_tokens, completion_tokens, latency_ms, error_code, event_lengths, created_at, updated_at, item) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING "
    "seq, id, conversation_id, parent_id, role, sender_id, content, status, active, model, prompt_tokens, "
    "completion_tokens, latency_ms, error_code, event_lengths, created_at, updated_at, item";

ConversationRecord conversation_from_row(const Row& row) {
  ConversationRecord c;
  c.id = row.get_string(0);
  c.user_id = row.get_string(1);
  c.title = row.get_string(2);
  c.system_message = row.get_optional_string(3);
  c.model = row.get_optional_string(4);
  c.metadata = row.get_string(5);
  c.status = row.get_string(6);
  c.message_count = row.get_int(7);
  c.last_message_at = row.get_optional_int(8);
  c.created_at = row.get_int(9);
  c.updated_at = row.get_int(10);
  c.ended_at = row.get_optional_int(11);
  return c;
}

MessageRecord message_from_row(const Row& row) {
  MessageRecord m;
  m.seq = row.get_int(0);
  m.id = row.get_string(1);
  m.conversation_id = row.get_string(2);
  m.parent_id = row.get_optional_string(3);
  m.role = row.get_string(4);
  m.sender_id = row.get_optional_string(5);
  m.content = row.get_string(6);
  m.status = row.get_string(7);
  m.active = row.get_bool(8);
  m.model = row.get_optional_string(9);
  m.prompt_tokens = row.get_int(10);
  m.completion_tokens = row.get_int(11);
  m.latency_ms = row.get_optional_int(12);
  m.error_code = row.get_optional_string(13);
  m.event_lengths = row.get_string(14);
  m.created_at = row.get_int(15);
  m.updated_at = row.get_int(16);
  m.item = row.get_optional_string(17);
  return m;
}

Result<std::optional<ConversationRecord>> first_conversation(Result<QueryResult>& r) {
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<ConversationRecord>();
  return std::optional<ConversationRecord>(conversation_from_row(r->rows.front()));
}

Result<std::vector<MessageRecord>> all_messages(Result<QueryResult>& r) {
  if (!r) return forward_error(r);
  std::vector<MessageRecord> out;
  out.reserve(r->rows.size());
  for (const Row& row : r->rows) out.push_back(message_from_row(row));
  return out;
}

Result<MessageRecord> insert_message(Executor& db, const MessageRecord& m) {
  if (m.id.empty()) return fail(ErrorKind::kInternal, "message id is empty");
  Result<QueryResult> r = db.query(
      kInsertMessage, {m.id, m.conversation_id, m.parent_id, m.role, m.sender_id, m.content, m.status,
                       m.active, m.model, m.prompt_tokens, m.completion_tokens, m.latency_ms, m.error_code,
                       m.event_lengths, m.created_at, m.updated_at, m.item});
  if (!r) {
    return std::unexpected(
        detail::name_conflict(std::move(r.error()), {{"messages.id", "id"}, {"messages_id_key", "id"}}));
  }
  if (r->rows.empty()) return fail(ErrorKind::kDatabase, "message insert returned no row");
  return message_from_row(r->rows.front());
}

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

// The words of `search`: runs of ASCII letters and digits and of bytes >= 0x80 (so that UTF-8
// encoded letters of any script stay inside their word), ASCII lower-cased.
std::vector<std::string> search_words(std::string_view search) {
  std::vector<std::string> words;
  std::string word;
  for (const char ch : search) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_word_byte(c)) {
      word += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : ch;
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

// `word` between `quote`s, with each quote (and for to_tsquery each backslash) doubled or escaped.
std::string quoted(std::string_view word, char quote, bool escape_backslash) {
  std::string out(1, quote);
  for (const char c : word) {
    if (c == quote) out += quote;
    if (escape_backslash && c == '\\') out += '\\';
    out += c;
  }
  out += quote;
  return out;
}

// The search condition on the conversation aliased `c`: its title or any of its messages matches
// the full-text query in parameter `q`.
std::string search_condition(Dialect dialect, const std::string& q) {
  if (dialect == Dialect::kSqlite) {
    // Driven from the matches (one set of conversation rowids), not from the user's conversations:
    // a rare word costs its few matches however many conversations the user has.
    return fmt::format(
        "c.seq IN (SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH {0} UNION "
        "SELECT c2.seq FROM messages m JOIN conversations c2 ON c2.id = m.conversation_id WHERE m.seq IN "
        "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH {0}))",
        q);
  }
  return fmt::format(
      "(c.title_tsv @@ to_tsquery('simple', {0}) OR c.id IN "
      "(SELECT m.conversation_id FROM messages m WHERE m.content_tsv @@ to_tsquery('simple', {0})))",
      q);
}

bool is_final(std::string_view status) {
  return status != "generating";
}

}  // namespace

std::optional<std::string> full_text_query(std::string_view search, Dialect dialect) {
  const std::vector<std::string> words = search_words(search);
  if (words.empty()) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const bool last = i + 1 == words.size();
    if (dialect == Dialect::kSqlite) {
      if (i > 0) out += " AND ";
      out += quoted(words[i], '"', false);
      if (last) out += '*';
    } else {
      if (i > 0) out += " & ";
      out += quoted(words[i], '\'', true);
      if (last) out += ":*";
    }
  }
  return out;
}

Result<ConversationRecord> ConversationStore::create_conversation(const ConversationRecord& c) {
  if (c.id.empty()) return fail(ErrorKind::kInternal, "conversation id is empty");
  Result<QueryResult> r = db_.query(
      fmt::format(
          "INSERT INTO conversations ({0}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
          "RETURNING {0}",
          kConversationColumns),
      {c.id, c.user_id, c.title, c.system_message, c.model, c.metadata, c.status, c.message_count,
       c.last_message_at, c.created_at, c.updated_at, c.ended_at});
  if (!r) {
    return std::unexpected(detail::name_conflict(std::move(r.error()),
                                                 {{"conversations.id", "id"}, {"conversations_pkey", "id"}}));
  }
  if (r->rows.empty()) return fail(ErrorKind::kDatabase, "conversation insert returned no row");
  return conversation_from_row(r->rows.front());
}

Result<std::optional<ConversationRecord>> ConversationStore::get_conversation(std::string_view id) {
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT {} FROM conversations WHERE id = $1", kConversationColumns), {id});
  return first_conversation(r);
}

Result<Page<ConversationRecord>> ConversationStore::list_conversations(const ConversationQuery& query) {
  const PageRequest page = detail::clamp_page(query.page);
  Page<ConversationRecord> out;
  detail::Params params;
  // With a search on SQLite, `+` keeps the planner from scanning the user's conversations by index
  // instead of looking up the matches (see search_condition).
  const bool by_matches = query.search && db_.dialect() == Dialect::kSqlite;
  std::string where =
      fmt::format(" WHERE {}c.user_id = {}", by_matches ? "+" : "", params.add(query.user_id));
  if (query.status) where += fmt::format(" AND c.status = {}", params.add(*query.status));
  if (query.search) {
    std::optional<std::string> text = full_text_query(*query.search, db_.dialect());
    if (!text) return out;  // no word: nothing matches
    where += " AND " + search_condition(db_.dialect(), params.add(std::move(*text)));
  }

  Result<QueryResult> total =
      db_.query(fmt::format("SELECT COUNT(*) FROM conversations c{}", where), params.span());
  if (!total) return forward_error(total);
  out.total = total->rows.empty() ? 0 : total->rows.front().get_int(0);
  if (page.limit == 0 || out.total == 0) return out;

  std::string tail;
  if (query.after) {
    const std::string at = params.add(query.after->first);
    const std::string id = params.add(query.after->second);
    where += fmt::format(" AND (c.updated_at < {0} OR (c.updated_at = {0} AND c.id < {1}))", at, id);
    tail = fmt::format(" LIMIT {}", params.add(page.limit));
  } else {
    const std::string limit = params.add(page.limit);
    tail = fmt::format(" LIMIT {} OFFSET {}", limit, params.add(page.offset));
  }
  Result<QueryResult> rows =
      db_.query(fmt::format("SELECT {} FROM conversations c{} ORDER BY c.updated_at DESC, c.id DESC{}",
                            kAliasedConversationColumns, where, tail),
                params.span());
  if (!rows) return forward_error(rows);
  out.items.reserve(rows->rows.size());
  for (const Row& row : rows->rows) out.items.push_back(conversation_from_row(row));
  return out;
}

Result<std::optional<ConversationRecord>> ConversationStore::update_conversation(
    std::string_view id, const ConversationUpdate& u) {
  detail::Params params;
  std::string sets;
  auto set = [&](std::string_view column, Value v) {
    sets += fmt::format(", {} = {}", column, params.add(std::move(v)));
  };
  const std::string now = params.add(u.now_ms);
  if (u.title) set("title", *u.title);
  if (u.system_message) set("system_message", *u.system_message);
  if (u.model) set("model", *u.model);
  if (u.metadata) set("metadata", *u.metadata);
  if (u.status) {
    set("status", *u.status);
    if (*u.status == "ended") {
      // Ending an ended conversation keeps the time it first ended.
      sets += fmt::format(", ended_at = CASE WHEN status = 'ended' THEN ended_at ELSE {} END", now);
    } else {
      sets += ", ended_at = NULL";
    }
  }
  const std::string id_param = params.add(id);
  Result<QueryResult> r =
      db_.query(fmt::format("UPDATE conversations SET updated_at = {}{} WHERE id = {} RETURNING {}", now,
                            sets, id_param, kConversationColumns),
                params.span());
  return first_conversation(r);
}

Result<bool> ConversationStore::delete_conversation(std::string_view id) {
  Result<QueryResult> r = db_.query("DELETE FROM conversations WHERE id = $1", {id});
  if (!r) return forward_error(r);
  return r->affected_rows > 0;
}

Result<std::pair<std::optional<MessageRecord>, MessageRecord>> ConversationStore::add_exchange(
    const std::optional<MessageRecord>& user_message, const MessageRecord& answer) {
  if (user_message && user_message->conversation_id != answer.conversation_id) {
    return fail(ErrorKind::kInternal,
                "add_exchange: the user message and the answer are in different conversations");
  }
  std::pair<std::optional<MessageRecord>, MessageRecord> out;
  const std::int64_t inserted = user_message ? 2 : 1;
  Status done = db_.transaction([&](Connection& c) -> Status {
    // First, so that concurrent exchanges of one conversation queue on its row (PostgreSQL) and
    // number their messages in the order they commit; no row means no conversation.
    Result<QueryResult> bumped = c.query(
        "UPDATE conversations SET message_count = message_count + $2, last_message_at = $3, updated_at = $3 "
        "WHERE id = $1",
        {answer.conversation_id, inserted, answer.created_at});
    if (!bumped) return forward_error(bumped);
    if (bumped->affected_rows == 0) {
      return fail(ErrorKind::kNotFound, "conversation not found", "conversation_id");
    }
    if (user_message) {
      Result<MessageRecord> stored = insert_message(c, *user_message);
      if (!stored) return forward_error(stored);
      out.first = std::move(*stored);
    }
    if (answer.parent_id) {
      Result<QueryResult> superseded = c.query(
          "UPDATE messages SET active = 0 WHERE parent_id = $1 AND conversation_id = $2 AND active = 1",
          {*answer.parent_id, answer.conversation_id});
      if (!superseded) return forward_error(superseded);
    }
    Result<MessageRecord> stored = insert_message(c, answer);
    if (!stored) return forward_error(stored);
    out.second = std::move(*stored);
    return {};
  });
  if (!done) return std::unexpected(std::move(done.error()));
  return out;
}

Result<std::vector<MessageRecord>> ConversationStore::append_messages(
    std::string_view conversation_id, const std::vector<MessageRecord>& messages, std::int64_t now_ms) {
  std::vector<MessageRecord> out;
  if (messages.empty()) return out;
  out.reserve(messages.size());
  Status done = db_.transaction([&](Connection& c) -> Status {
    // First, as in add_exchange: concurrent appends to one conversation queue on its row.
    Result<QueryResult> bumped = c.query(
        "UPDATE conversations SET message_count = message_count + $2, last_message_at = $3, updated_at = $3 "
        "WHERE id = $1 AND status = 'active'",
        {conversation_id, static_cast<std::int64_t>(messages.size()), now_ms});
    if (!bumped) return forward_error(bumped);
    if (bumped->affected_rows == 0) {
      Result<QueryResult> found =
          c.query("SELECT status FROM conversations WHERE id = $1", {conversation_id});
      if (!found) return forward_error(found);
      if (found->rows.empty()) return fail(ErrorKind::kNotFound, "conversation not found", "conversation_id");
      return fail(ErrorKind::kConflict, "The conversation has ended");
    }
    for (const MessageRecord& m : messages) {
      if (m.conversation_id != conversation_id) {
        return fail(ErrorKind::kInternal, "append_messages: a message of another conversation");
      }
      Result<MessageRecord> stored = insert_message(c, m);
      if (!stored) return forward_error(stored);
      out.push_back(std::move(*stored));
    }
    return {};
  });
  if (!done) return std::unexpected(std::move(done.error()));
  return out;
}

Result<bool> ConversationStore::delete_message(std::string_view conversation_id, std::string_view message_id,
                                               std::int64_t now_ms) {
  bool deleted = false;
  Status done = db_.transaction([&](Connection& c) -> Status {
    Result<QueryResult> r = c.query(
        "DELETE FROM messages WHERE id = $1 AND conversation_id = $2 AND status <> 'generating' "
        "RETURNING parent_id, active",
        {message_id, conversation_id});
    if (!r) return forward_error(r);
    if (r->rows.empty()) return {};
    deleted = true;
    // The active one of its siblings (a regenerated answer): the newest remaining sibling becomes
    // the active one, as it was before the deleted one superseded it.
    const std::optional<std::string> parent = r->rows.front().get_optional_string(0);
    if (parent && r->rows.front().get_bool(1)) {
      Result<QueryResult> revived = c.query(
          "UPDATE messages SET active = 1 WHERE id = (SELECT id FROM messages WHERE conversation_id = $1 "
          "AND parent_id = $2 ORDER BY created_at DESC, id DESC LIMIT 1) AND NOT EXISTS (SELECT 1 FROM "
          "messages WHERE conversation_id = $1 AND parent_id = $2 AND active = 1)",
          {conversation_id, *parent});
      if (!revived) return forward_error(revived);
    }
    Result<QueryResult> bumped =
        c.query("UPDATE conversations SET message_count = message_count - 1, updated_at = $2 WHERE id = $1",
                {conversation_id, now_ms});
    if (!bumped) return forward_error(bumped);
    return {};
  });
  if (!done) return std::unexpected(std::move(done.error()));
  return deleted;
}

Result<bool> ConversationStore::update_answer(std::string_view message_id, const AnswerUpdate& u) {
  // A checkpoint or the final state; the model is kept when the update does not name one.
  // With `append`, the text and the piece lengths are added to what is stored (checkpoints write
  // only what is new).
  constexpr std::string_view kReplace =
      "UPDATE messages SET content = $2, status = $3, model = COALESCE($4, model), prompt_tokens = $5, "
      "completion_tokens = $6, latency_ms = $7, error_code = $8, event_lengths = $9, updated_at = $10 "
      "WHERE id = $1 AND status = 'generating' RETURNING conversation_id";
  constexpr std::string_view kAppend =
      "UPDATE messages SET content = content || CAST($2 AS TEXT), status = $3, model = COALESCE($4, model), "
      "prompt_tokens = $5, completion_tokens = $6, latency_ms = $7, error_code = $8, "
      "event_lengths = CASE WHEN CAST($9 AS TEXT) = '' THEN event_lengths WHEN event_lengths = '' THEN "
      "CAST($9 AS TEXT) ELSE event_lengths || ',' || CAST($9 AS TEXT) END, updated_at = $10 "
      "WHERE id = $1 AND status = 'generating' RETURNING conversation_id";
  const std::string_view update_sql = u.append ? kAppend : kReplace;
  const std::initializer_list<Value> params = {
      message_id,          u.content,    u.status,     u.model,         u.prompt_tokens,
      u.completion_tokens, u.latency_ms, u.error_code, u.event_lengths, u.now_ms};
  if (!is_final(u.status)) {
    Result<QueryResult> r = db_.query(update_sql, params);
    if (!r) return forward_error(r);
    return !r->rows.empty();
  }
  bool changed = false;
  Status done = db_.transaction([&](Connection& c) -> Status {
    Result<QueryResult> r = c.query(update_sql, params);
    if (!r) return forward_error(r);
    if (r->rows.empty()) return {};
    changed = true;
    Result<QueryResult> bumped =
        c.query("UPDATE conversations SET last_message_at = $2, updated_at = $2 WHERE id = $1",
                {r->rows.front().get_string(0), u.now_ms});
    if (!bumped) return forward_error(bumped);
    return {};
  });
  if (!done) return std::unexpected(std::move(done.error()));
  return changed;
}

Result<std::optional<MessageRecord>> ConversationStore::get_message(std::string_view id) {
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT {} FROM messages WHERE id = $1", kMessageColumns), {id});
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<MessageRecord>();
  return std::optional<MessageRecord>(message_from_row(r->rows.front()));
}

Result<MessagePage> ConversationStore::list_messages(const MessageQuery& query) {
  const std::int64_t limit = std::clamp<std::int64_t>(query.limit, 1, kMaxPageLimit);
  detail::Params params;
  std::string where = fmt::format(" WHERE conversation_id = {}", params.add(query.conversation_id));
  if (query.after_seq) where += fmt::format(" AND seq > {}", params.add(*query.after_seq));
  if (query.before_seq) where += fmt::format(" AND seq < {}", params.add(*query.before_seq));
  if (!query.include_inactive) where += " AND active = 1";
  // Reading backwards from before_seq takes the newest messages below it; otherwise the oldest.
  const bool backwards = query.before_seq && !query.after_seq;
  const std::string limit_param = params.add(limit + 1);
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT {} FROM messages{} ORDER BY seq {} LIMIT {}", kMessageColumns, where,
                            backwards ? "DESC" : "ASC", limit_param),
                params.span());
  Result<std::vector<MessageRecord>> rows = all_messages(r);
  if (!rows) return forward_error(rows);
  MessagePage page;
  page.items = std::move(*rows);
  if (static_cast<std::int64_t>(page.items.size()) > limit) {
    page.has_more = true;
    page.items.pop_back();
  }
  if (backwards) std::reverse(page.items.begin(), page.items.end());
  return page;
}

Result<std::vector<MessageRecord>> ConversationStore::siblings(std::string_view parent_id) {
  Result<QueryResult> r = db_.query(
      fmt::format("SELECT {} FROM messages WHERE parent_id = $1 ORDER BY seq", kMessageColumns), {parent_id});
  return all_messages(r);
}

Result<std::vector<MessageRecord>> ConversationStore::recent_for_context(std::string_view conversation_id,
                                                                         std::int64_t max_messages) {
  if (max_messages <= 0) return std::vector<MessageRecord>();
  Result<QueryResult> r = db_.query(
      fmt::format(
          "SELECT {} FROM messages WHERE conversation_id = $1 AND active = 1 AND (status = 'complete' "
          "OR (role = 'assistant' AND status IN ('failed', 'cancelled') AND content <> '')) "
          "ORDER BY seq DESC LIMIT $2",
          kMessageColumns),
      {conversation_id, max_messages});
  return all_messages(r);
}

Result<ConversationStats> ConversationStore::stats(std::string_view conversation_id) {
  // Roles count active messages; failures and tokens count every answer; the times span every
  // message's creation; the latency averages complete answers that recorded one.
  Result<QueryResult> r = db_.query(
      "SELECT "
      "COALESCE(SUM(CASE WHEN active = 1 AND role = 'user' THEN 1 ELSE 0 END), 0), "
      "COALESCE(SUM(CASE WHEN active = 1 AND role = 'assistant' THEN 1 ELSE 0 END), 0), "
      "COALESCE(SUM(CASE WHEN active = 1 AND role = 'system' THEN 1 ELSE 0 END), 0), "
      "COALESCE(SUM(CASE WHEN role = 'assistant' AND status IN ('failed', 'cancelled') THEN 1 ELSE 0 END), "
      "0), "
      "COALESCE(SUM(CASE WHEN role = 'assistant' THEN prompt_tokens ELSE 0 END), 0), "
      "COALESCE(SUM(CASE WHEN role = 'assistant' THEN completion_tokens ELSE 0 END), 0), "
      "MIN(created_at), MAX(created_at), "
      "AVG(CASE WHEN role = 'assistant' AND status = 'complete' THEN CAST(latency_ms AS DOUBLE PRECISION) "
      "END) "
      "FROM messages WHERE conversation_id = $1",
      {conversation_id});
  if (!r) return forward_error(r);
  ConversationStats s;
  if (r->rows.empty()) return s;
  const Row& row = r->rows.front();
  s.user_messages = row.get_int(0);
  s.assistant_messages = row.get_int(1);
  s.system_messages = row.get_int(2);
  s.failed_messages = row.get_int(3);
  s.prompt_tokens = row.get_int(4);
  s.completion_tokens = row.get_int(5);
  s.first_message_at = row.get_optional_int(6);
  s.last_message_at = row.get_optional_int(7);
  if (!row.is_null(8)) s.average_latency_ms = row.get_double(8);
  return s;
}

Result<std::int64_t> ConversationStore::fail_stale_answers(std::int64_t stale_before_ms,
                                                           std::int64_t now_ms) {
  Result<QueryResult> r = db_.query(
      "UPDATE messages SET status = 'failed', error_code = 'INTERRUPTED', updated_at = $2 "
      "WHERE status = 'generating' AND updated_at < $1",
      {stale_before_ms, now_ms});
  if (!r) return forward_error(r);
  return r->affected_rows;
}

}  // namespace parley::store
