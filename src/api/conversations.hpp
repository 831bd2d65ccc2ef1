// Conversations and messages (docs/CONVERSATIONS.md):
//   /api/v1/users/{user_id}/conversations[/recent|/{conversation_id}[/end|/reconnect|/validate|/stats]]
//   /api/v1/conversations/{conversation_id}/messages[/{message_id}[/stream|/regenerate|/cancel|/siblings]]
// Handlers parse and render; services::ConversationService decides and stores,
// services::AnswerService generates answers that outlive the request.
#pragma once

#include <cstddef>

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

}  // namespace parley::api
