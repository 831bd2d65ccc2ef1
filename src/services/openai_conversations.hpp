// OpenAI's Conversations API over parley's own conversations (docs/CONVERSATIONS.md, "Conversations
// API"; docs/GATEWAY.md): /v1/conversations[/{id}[/items[/{item_id}]]]. A conversation of this API
// IS a parley conversation (same id, same store, same owner), and its items are parley messages
// (item id = message id), so the console, /api/v1/conversations and /v1/conversations show one
// history.
//
// Items and messages:
// - a message item (role user / assistant / system / developer; content a string or input_text /
//   output_text / text / refusal parts) is a message with the parley role (developer → system) and
//   the parts' text joined by newlines;
// - function_call and function_call_output items are messages too: an assistant message
//   "[function_call] name(arguments)" and a user message "[function_call_output] output", readable
//   in the console and given as such to the model by parley's own chat;
// - whatever role and content cannot hold exactly (those two types, a developer role, several
//   parts, extra fields) is kept in the message's `item` column (migration 0010) and returned as it
//   was sent; the rest is rebuilt from role and content.
// Only active messages are items: a regenerated answer's older siblings are not listed.
//
// OpenAiConversations serves the routes and is the ConversationItems of the Responses API.
// Authorization is ConversationService's (docs/IDENTITY.md): owner, admin; others 404.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "http/blocking_pool.hpp"
#include "services/conversation_items.hpp"
#include "services/conversation_service.hpp"
#include "services/generation.hpp"
#include "store/conversation_store.hpp"
#include "store/database.hpp"

namespace parley::services {

inline constexpr std::size_t kMaxItemsPerRequest = 20;  // items of one create / items.create
inline constexpr std::size_t kMaxMetadataPairs = 16;    // OpenAI's metadata bounds
inline constexpr std::size_t kMaxMetadataKeyChars = 64;
inline constexpr std::size_t kMaxMetadataValueChars = 512;
inline constexpr std::size_t kMaxItemBytes = std::size_t{1024} * 1024;  // one item, as JSON

// ---- pure conversions (unit-tested) ---------------------------------------------------------------

// One item as a message to store: role, content, and `item` when role and content cannot rebuild
// it exactly. `param` names the item in errors ("items[3]"). kValidation (with the offending
// field's param) for what is not an item parley can hold.
Result<store::MessageRecord> item_to_message(const boost::json::value& item, const std::string& param);

// The stored message as an item: {id, type, status, …}.
boost::json::object message_to_item(const store::MessageRecord& message);

// OpenAI's metadata: an object of at most 16 string values, keys ≤ 64 and values ≤ 512 characters;
// null reads as {}. The serialized object, or kValidation with param "metadata".
Result<std::string> read_openai_metadata(const boost::json::value& metadata);

// {id, object: "conversation", created_at (unix seconds), metadata}.
boost::json::object conversation_object(const store::ConversationRecord& conversation);

// ---- the service ----------------------------------------------------------------------------------

struct ItemQuery {
  std::optional<std::string> after;  // an item id: the page starts after it in `order`
  std::int64_t limit = 20;           // 1..100
  bool ascending = false;            // order=asc; OpenAI's default is desc (newest first)
};

struct ItemPage {
  std::vector<store::MessageRecord> items;  // in the order asked for
  bool has_more = false;
};

struct CreatedConversation {
  store::ConversationRecord conversation;
  std::vector<store::MessageRecord> items;
};

class OpenAiConversations final : public ConversationItems {
 public:
  // `history_max_messages`: at most this many messages make a history (as for parley's own model
  // context, conversations.context_max_messages).
  OpenAiConversations(ConversationService& conversations, GenerationRegistry& generations,
                      http::BlockingPool& pool, store::Database& db, const Clock& clock,
                      std::int64_t history_max_messages)
      : conversations_(conversations),
        generations_(generations),
        pool_(pool),
        db_(db),
        clock_(clock),
        history_max_messages_(history_max_messages) {}

  // The routes. `items` come from item_to_message; metadata from read_openai_metadata.
  boost::asio::awaitable<Result<CreatedConversation>> create(const auth::Principal& who,
                                                             std::vector<store::MessageRecord> items,
                                                             std::optional<std::string> metadata);
  boost::asio::awaitable<Result<store::ConversationRecord>> get(const auth::Principal& who, std::string id);
  boost::asio::awaitable<Result<store::ConversationRecord>> update(const auth::Principal& who, std::string id,
                                                                   std::string metadata);
  // Stops an answer being generated in it first, as DELETE /api/v1/…/conversations/{id} does.
  boost::asio::awaitable<Status> remove(const auth::Principal& who, std::string id);
  boost::asio::awaitable<Result<ItemPage>> list_items(const auth::Principal& who, std::string id,
                                                      ItemQuery query);
  // kConflict when the conversation has ended or an answer is being generated in it.
  boost::asio::awaitable<Result<std::vector<store::MessageRecord>>> add_items(
      const auth::Principal& who, std::string id, std::vector<store::MessageRecord> items);
  boost::asio::awaitable<Result<store::MessageRecord>> get_item(const auth::Principal& who, std::string id,
                                                                std::string item_id);
  // Returns the conversation. kConflict for an ended conversation or an answer being generated.
  boost::asio::awaitable<Result<store::ConversationRecord>> delete_item(const auth::Principal& who,
                                                                        std::string id, std::string item_id);

  // ConversationItems (the Responses API).
  boost::asio::awaitable<Result<boost::json::array>> history(const auth::Principal& who,
                                                             const std::string& conversation_id) override;
  boost::asio::awaitable<Status> append(const auth::Principal& who, const std::string& conversation_id,
                                        const boost::json::array& input_items,
                                        const boost::json::array& output_items,
                                        const std::string& model) override;

 private:
  // BLOCKING: the conversation, writable by `who`, that takes new items now.
  Result<store::ConversationRecord> writable(const auth::Principal& who, const std::string& id);
  // BLOCKING: stores `items` (ids, times and sender filled in here).
  Result<std::vector<store::MessageRecord>> store_items(const auth::Principal& who, const std::string& id,
                                                        std::vector<store::MessageRecord> items);

  ConversationService& conversations_;
  GenerationRegistry& generations_;
  http::BlockingPool& pool_;
  store::Database& db_;
  const Clock& clock_;
  std::int64_t history_max_messages_;
};

}  // namespace parley::services
