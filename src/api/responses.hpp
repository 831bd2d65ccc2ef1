// OpenAI's Responses API routes (src/api/responses.cpp; docs/GATEWAY.md, "Responses API").
#pragma once

#include "api/deps.hpp"
#include "services/responses_service.hpp"

namespace parley::api {

struct ResponsesDeps {
  services::ResponsesService& responses;
  Authenticator& authenticator;
};

void register_responses_routes(http::Router& router, ResponsesDeps& deps);

}  // namespace parley::api
