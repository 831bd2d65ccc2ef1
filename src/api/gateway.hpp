// The OpenAI-compatible gateway: POST /v1/chat/completions (streamed and not), POST /v1/embeddings,
// GET /v1/models, GET /v1/models/{model}. Request bodies are forwarded as sent; provider answers are
// relayed byte for byte (streams chunk by chunk, as they arrive), with the provider's x-ratelimit-*
// headers. Errors use parley's envelope, which is OpenAI's shape.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "api/deps.hpp"
#include "services/gateway_service.hpp"

namespace parley::api {

struct GatewayDeps {
  services::GatewayService& gateway;
  Authenticator& authenticator;
};

// Shared by the /v1 handlers (gateway.cpp, messages.cpp, responses.cpp):
// the status a call whose client left is accounted with;
inline constexpr int kClientClosed = static_cast<int>(http::kClientClosedStatus);
// milliseconds since `t0` (a call's latency);
std::int64_t ms_since(std::chrono::steady_clock::time_point t0);
// x-parley-provider and x-parley-model: who answered, after any fallback (docs/GATEWAY.md,
// "Routing and fallbacks");
void add_answered_by(http::Response& res, const services::Route& route);
// the head of a streamed answer (text/event-stream, no caching or proxy buffering) with the
// provider's pass-through headers and, when given, the caller's rate-limit headers.
http::Response event_stream_head(const std::vector<provider::Header>& headers, const RateLimitInfo* limits);

// A streamed /v1 answer sends the events of one upstream read together: flush_batch writes what
// `batch` gathered (starting the response with `start()` first, once), then empties it. False, with
// `client_gone` set, when the client is gone.
template <class Start>
boost::asio::awaitable<bool> flush_batch(http::StreamWriter& stream, std::string& batch, bool& client_gone,
                                         Start& start) {
  if (batch.empty()) co_return true;
  const bool begun = co_await start();
  if (!begun || !co_await stream.write(batch)) {
    client_gone = true;
    co_return false;
  }
  batch.clear();
  co_return true;
}

void register_gateway_routes(http::Router& router, GatewayDeps& deps);

// Anthropic's Messages API (src/api/messages.cpp): POST /v1/messages (streamed and not) and
// POST /v1/messages/count_tokens, translated to the chat completions of the provider serving the
// model (docs/TRANSLATION.md). Errors in Anthropic's shape, with `request-id`.
void register_messages_routes(http::Router& router, GatewayDeps& deps);

}  // namespace parley::api
