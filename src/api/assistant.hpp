// The voice and SMS assistant (docs/ASSISTANT.md): POST /api/v1/conversation,
// POST /api/v1/sms/decision, POST /api/v1/calls, GET /api/v1/calls/{call_id},
// GET /api/v1/history/{user_id}[/conversations|/calls|/sms]. Handlers parse and render;
// services::AssistantService decides and stores.
#pragma once

#include <cstddef>

#include "api/deps.hpp"
#include "services/assistant_service.hpp"

namespace parley::api {

struct AssistantDeps {
  services::AssistantService& assistant;
  Authenticator& authenticator;
  http::BlockingPool& pool;
};

void register_assistant_routes(http::Router& router, AssistantDeps& deps);

}  // namespace parley::api
