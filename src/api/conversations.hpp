// Conversations and messages (docs/CONVERSATIONS.md):
//   /api/v1/users/{user_id}/conversations[/recent|/{conversation_id}[/end|/reconnect|/validate|/stats]]
//   /api/v1/conversations/{conversation_id}/messages[/{message_id}[/stream|/regenerate|/cancel|/siblings]]
// Handlers parse and render; services::ConversationService decides and stores,
// services::AnswerService generates answers that outlive the request.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <optional>
#include <string>

#include "api/answer_feed.hpp"
#include "api/deps.hpp"
#include "services/conversation_service.hpp"

namespace parley::api {

struct ConversationDeps {
  services::ConversationService& conversations;
  services::AnswerService& answers;
  services::ChatService& chat;
  Authenticator& authenticator;
  http::BlockingPool& pool;
  std::size_t max_message_chars = 4000;
};

void register_conversation_routes(http::Router& router, ConversationDeps& deps);

// Answers as `who` may read them from the store: where answer feeds (SSE and WebSocket) read what
// has left memory.
class StoredAnswers final : public AnswerSource {
 public:
  StoredAnswers(ConversationDeps& deps, auth::Principal who) : d_(deps), who_(std::move(who)) {}
  boost::asio::awaitable<std::optional<store::MessageRecord>> read(std::string conversation_id,
                                                                   std::string message_id) override;

 private:
  ConversationDeps& d_;
  auth::Principal who_;
};

// What the REST routes and the WebSocket (api/realtime.cpp) read alike.
Result<services::NewConversation> read_new_conversation(ConversationDeps& deps,
                                                        const boost::json::object& body);

struct MessageInput {
  std::optional<std::string> content;
  bool stream = false;
  std::optional<std::string> model;
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
};
// A new message (content required) or a regeneration's options; `extra` names one more field the
// caller reads itself (or is empty).
Result<MessageInput> read_message_input(ConversationDeps& deps, const boost::json::object& body,
                                        bool content_required, std::string_view extra = {});

}  // namespace parley::api
