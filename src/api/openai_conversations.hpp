// OpenAI's Conversations API (docs/GATEWAY.md, "Conversations API"; docs/CONVERSATIONS.md):
//   POST/GET/DELETE /v1/conversations[/{conversation_id}]
//   GET/POST /v1/conversations/{conversation_id}/items, GET/DELETE …/items/{item_id}
// over parley's own conversations (services/openai_conversations.hpp). Authenticated like every
// /v1 route (a service key or an access token); no provider is called, so no usage is recorded.
#pragma once

#include "api/deps.hpp"
#include "services/openai_conversations.hpp"

namespace parley::api {

struct OpenAiConversationDeps {
  services::OpenAiConversations& conversations;
  Authenticator& authenticator;
};

void register_openai_conversation_routes(http::Router& router, OpenAiConversationDeps& deps);

}  // namespace parley::api
