// POST /api/v1/chat, /api/v1/chat/stream (SSE), /api/v1/summarize, /api/v1/translate.
#pragma once

#include "api/deps.hpp"
#include "services/chat_service.hpp"

namespace parley::api {

struct ChatDeps {
  services::ChatService& chat;
  Authenticator& authenticator;
  std::size_t max_message_chars = 4000;
};

void register_chat_routes(http::Router& router, ChatDeps& deps);

}  // namespace parley::api
