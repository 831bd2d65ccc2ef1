// Conversations and their messages (migration 0005). A conversation belongs to one user and
// cascades with them; its messages cascade with it, and so do their full-text search rows
// (SQLite FTS5, PostgreSQL tsvector + GIN): deleting a conversation leaves nothing behind.
//
// Messages are ordered by `seq`, a number the database assigns on insert (increasing within a
// conversation; also the paging cursor). An assistant message answers the user message named by
// `parent_id`; regenerating an answer adds a sibling with the same parent, and only the newest
// sibling is `active` (the one listed and given to the model as context); older siblings stay
// stored and are listed by siblings().
//
// An answer is inserted with status "generating" and an empty content, checkpointed while it is
// generated (content so far, `event_lengths`: the byte length of each streamed piece, so that a
// stored answer can be replayed as exactly the events that were sent) and finished once with its
// final status: complete, failed or cancelled.
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kNotFound from
// create_conversation when the user does not exist, from add_exchange when the conversation does
// not; kDatabase/kUnavailable otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "store/database.hpp"
#include "store/page.hpp"

namespace parley::store {

struct ConversationRecord {
  std::string id;
  std::string user_id;
  std::string title;
  std::optional<std::string> system_message;
  std::optional<std::string> model;
  std::string metadata = "{}";                  // a JSON object, serialized
  std::string status = "active";                // active | ended
  std::int64_t message_count = 0;               // every stored message, superseded siblings included
  std::optional<std::int64_t> last_message_at;  // unix ms
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;  // changes on PATCH, end, reconnect and each new message
  std::optional<std::int64_t> ended_at;
};

struct ConversationUpdate {
  std::optional<std::string> title;
  std::optional<std::optional<std::string>> system_message;  // set, or cleared with nullopt inside
  std::optional<std::optional<std::string>> model;
  std::optional<std::string> metadata;
  std::optional<std::string> status;  // ended_at is set when it becomes "ended", cleared on "active"
  std::int64_t now_ms = 0;            // becomes updated_at
};

struct ConversationQuery {
  std::string user_id;
  std::optional<std::string> status;  // active | ended
  // Words to find in the title or in any message's content (full-text, case-insensitive, each
  // word must match; the last word also matches as a prefix). Only letters and digits count as
  // word characters; a query with no word matches nothing.
  std::optional<std::string> search;
  PageRequest page;
  // Keyset paging instead of offset: conversations strictly after this (updated_at, id) in the
  // newest-first order. When set, page.offset is ignored.
  std::optional<std::pair<std::int64_t, std::string>> after;
};

struct MessageRecord {
  std::int64_t seq = 0;  // assigned by the database
  std::string id;
  std::string conversation_id;
  std::optional<std::string> parent_id;  // an answer's user message
  std::string role;                      // user | assistant | system
  std::optional<std::string> sender_id;  // the user who sent it; empty for answers
  std::string content;
  std::string status = "complete";  // complete | generating | failed | cancelled
  bool active = true;
  std::optional<std::string> model;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::optional<std::int64_t> latency_ms;
  std::optional<std::string> error_code;
  std::string event_lengths;  // comma-separated byte lengths of the streamed pieces ("" if none)
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
  // An OpenAI Conversations API item that role and content cannot hold exactly (migration 0010):
  // the item as JSON without its id; role and content are then a readable rendering of it.
  std::optional<std::string> item;
};

struct MessageQuery {
  std::string conversation_id;
  std::optional<std::int64_t> before_seq;  // only messages with seq < this
  std::optional<std::int64_t> after_seq;   // only messages with seq > this
  bool include_inactive = false;           // superseded answers too
  std::int64_t limit = 50;                 // clamped to [1, kMaxPageLimit]
  // Oldest first. With before_seq (and no after_seq) the page is the `limit` messages just before
  // it, still returned oldest first.
};

struct MessagePage {
  std::vector<MessageRecord> items;
  bool has_more = false;  // more messages exist beyond the page in the direction read
};

struct ConversationStats {
  std::int64_t user_messages = 0;  // active messages by role
  std::int64_t assistant_messages = 0;
  std::int64_t system_messages = 0;
  std::int64_t failed_messages = 0;  // answers whose status is failed or cancelled
  std::int64_t prompt_tokens = 0;    // summed over all answers
  std::int64_t completion_tokens = 0;
  std::optional<std::int64_t> first_message_at;
  std::optional<std::int64_t> last_message_at;
  std::optional<double> average_latency_ms;  // over complete answers
};

// What a finished answer stores.
struct AnswerUpdate {
  std::string content;
  std::string status;  // complete | failed | cancelled (or "generating" for a checkpoint)
  std::optional<std::string> model;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::optional<std::int64_t> latency_ms;
  std::optional<std::string> error_code;
  std::string event_lengths;
  std::int64_t now_ms = 0;  // becomes updated_at (and the conversation's last_message_at when final)
  // Add `content` and `event_lengths` to the stored ones instead of replacing them: a checkpoint
  // writes only the pieces since the previous one.
  bool append = false;
};

class ConversationStore {
 public:
  explicit ConversationStore(Executor& db) : db_(db) {}

  Result<ConversationRecord> create_conversation(const ConversationRecord& c);
  Result<std::optional<ConversationRecord>> get_conversation(std::string_view id);
  // Newest first by updated_at (then id), with the total matching the filter.
  Result<Page<ConversationRecord>> list_conversations(const ConversationQuery& query);
  // std::nullopt when no conversation has this id.
  Result<std::optional<ConversationRecord>> update_conversation(std::string_view id,
                                                                const ConversationUpdate& u);
  // Deletes the conversation, its messages and their search rows. false when it did not exist.
  Result<bool> delete_conversation(std::string_view id);

  // In one transaction: inserts `user_message` (unless it is null: a regeneration reuses the
  // stored one) and `answer` (status "generating"); when `answer.parent_id` has older answers they
  // become inactive; bumps the conversation's message_count, last_message_at and updated_at.
  // Both records come back with their seq. kNotFound when the conversation does not exist.
  Result<std::pair<std::optional<MessageRecord>, MessageRecord>> add_exchange(
      const std::optional<MessageRecord>& user_message, const MessageRecord& answer);

  // In one transaction: inserts `messages` (complete messages of one conversation, in order) and
  // bumps the conversation's message_count, last_message_at and updated_at. The records come back
  // with their seq. kNotFound when the conversation does not exist, kConflict when it has ended.
  Result<std::vector<MessageRecord>> append_messages(std::string_view conversation_id,
                                                     const std::vector<MessageRecord>& messages,
                                                     std::int64_t now_ms);
  // Deletes one message of the conversation (never an answer still being generated) and lowers its
  // message_count; when it was the active one of its siblings, the newest remaining sibling becomes
  // active. false when no such message was deleted.
  Result<bool> delete_message(std::string_view conversation_id, std::string_view message_id,
                              std::int64_t now_ms);

  // Writes an answer's content and state (a checkpoint while status is "generating", or the final
  // state). Only an answer still "generating" is changed; false otherwise (already finished or
  // gone).
  Result<bool> update_answer(std::string_view message_id, const AnswerUpdate& u);

  Result<std::optional<MessageRecord>> get_message(std::string_view id);
  Result<MessagePage> list_messages(const MessageQuery& query);
  // Every answer with this parent, oldest first (the active one included).
  Result<std::vector<MessageRecord>> siblings(std::string_view parent_id);
  // The newest `max_messages` active messages whose status is complete (plus assistant messages
  // that failed or were cancelled with some content), newest first: the raw material of the
  // model context. Reads at most `max_messages` rows, however long the conversation.
  Result<std::vector<MessageRecord>> recent_for_context(std::string_view conversation_id,
                                                        std::int64_t max_messages);
  Result<ConversationStats> stats(std::string_view conversation_id);

  // Answers left "generating" by a process that is gone: marks those last updated before
  // `stale_before_ms` failed (error_code "INTERRUPTED"), keeping their content. Returns how many.
  Result<std::int64_t> fail_stale_answers(std::int64_t stale_before_ms, std::int64_t now_ms);

 private:
  Executor& db_;
};

// The search text as a full-text query for the dialect (FTS5 MATCH syntax for SQLite, to_tsquery
// syntax with the 'simple' configuration for PostgreSQL): words of letters and digits (any
// script), each quoted, all required, the last one also as a prefix. nullopt when there is no word.
std::optional<std::string> full_text_query(std::string_view search, Dialect dialect);

}  // namespace parley::store
