// The OpenAI-compatible gateway's domain (/v1): reads just enough of a client's request to route
// it (model, stream, stream_options.include_usage), resolves the provider and key through
// ChatService::route, prepares the body to forward (unchanged, except that a streamed request
// always asks for the usage chunk), lists the models a caller may use, and accounts usage.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/principal.hpp"
#include "services/chat_service.hpp"
#include "services/usage_recorder.hpp"

namespace parley::services {

enum class GatewayEndpoint { kChatCompletions, kEmbeddings };

struct GatewayCall {
  ChatService::Route route;
  GatewayEndpoint endpoint = GatewayEndpoint::kChatCompletions;
  std::string path;  // provider path: "/chat/completions" or "/embeddings"
  std::string body;  // what to forward
  bool stream = false;
  bool client_wants_usage = false;  // stream_options.include_usage as the client sent it
};

struct ModelCard {
  std::string id;
  std::string owned_by;  // the provider's name
};

class GatewayService {
 public:
  // `usage` may be null (no accounting).
  GatewayService(ChatService& chat, UsageRecorder* usage, std::int64_t created_s)
      : chat_(chat), usage_(usage), created_s_(created_s) {}

  // Errors: kInvalidJson, kBadRequest (not an object), kValidation (model, messages, input, stream),
  // kModelNotFound, and the credential errors of ChatService::route.
  boost::asio::awaitable<Result<GatewayCall>> prepare(const auth::Principal& who, GatewayEndpoint endpoint,
                                                      std::string body, const std::string& request_id);

  // The models this caller may use: every exact model name of every usable provider.
  boost::asio::awaitable<Result<std::vector<ModelCard>>> models(const auth::Principal& who);
  // One model (exact name or matched by a provider's prefix), if the caller may use it.
  boost::asio::awaitable<Result<ModelCard>> model(const auth::Principal& who, std::string_view id);

  void account(const auth::Principal& who, const GatewayCall& call, int status, const Usage& usage,
               std::int64_t latency_ms);

  [[nodiscard]] std::int64_t created_s() const { return created_s_; }

 private:
  ChatService& chat_;
  UsageRecorder* usage_;
  std::int64_t created_s_;
};

}  // namespace parley::services
