// The OpenAI-compatible gateway's domain (/v1): reads just enough of a client's request to route
// it (model, stream, stream_options.include_usage), resolves the provider and key through
// ChatService::route, prepares the body to forward (unchanged, except that a streamed request
// always asks for the usage chunk), lists the models a caller may use, and accounts usage.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/principal.hpp"
#include "services/chat_service.hpp"
#include "services/usage_recorder.hpp"

namespace parley::services {

enum class GatewayEndpoint {
  kChatCompletions,
  kEmbeddings,
  kSpeech,
  kTranscriptions,
  kMessages,
  kResponses,
  kCountTokens,
};

// The endpoint's name in usage records: "chat.completions", "embeddings", "audio.speech",
// "audio.transcriptions", "messages" (Anthropic's Messages API), "responses" (OpenAI's Responses API),
// "messages.count_tokens" (relayed to an Anthropic provider).
std::string_view endpoint_name(GatewayEndpoint endpoint);

struct GatewayCall {
  ChatService::Route route;
  GatewayEndpoint endpoint = GatewayEndpoint::kChatCompletions;
  std::string path;  // provider path: "/chat/completions", "/embeddings", "/audio/speech", …
  std::string body;  // what to forward
  std::string content_type = "application/json";  // of the body
  bool stream = false;
  bool client_wants_usage = false;   // stream_options.include_usage as the client sent it
  std::int64_t prompt_estimate = 0;  // audio: tokens counted when the provider reports none
};

// POST /v1/messages translated to chat completions: the call to make and the model asked for.
struct MessagesCall {
  GatewayCall call;   // path "/chat/completions", body the translated request (usage asked for)
  std::string model;  // as the client named it (the message's `model` when the answer names none)
};

struct ModelCard {
  std::string id;
  std::string owned_by;  // the provider's name
};

class GatewayService {
 public:
  // Usage is recorded through the ChatService's recorder (none: no accounting).
  GatewayService(ChatService& chat, std::int64_t created_s) : chat_(chat), created_s_(created_s) {}

  // Errors: kInvalidJson, kBadRequest (not an object), kValidation (model, messages, input, stream),
  // kModelNotFound, and the credential errors of ChatService::route.
  boost::asio::awaitable<Result<GatewayCall>> prepare(const auth::Principal& who, GatewayEndpoint endpoint,
                                                      std::string body, const std::string& request_id);

  // /v1/audio/speech (a JSON body: model, input of 1 to 4096 characters, voice) and
  // /v1/audio/transcriptions (multipart/form-data: model, file, optional response_format among
  // json, text, srt, verbose_json, vtt). Routed and admitted like prepare(); the body is forwarded
  // as it came. Errors: those of prepare(), kBadRequest for a body that is not multipart/form-data.
  boost::asio::awaitable<Result<GatewayCall>> prepare_audio(const auth::Principal& who,
                                                            GatewayEndpoint endpoint, std::string body,
                                                            std::string content_type,
                                                            const std::string& request_id);
  // Anthropic's Messages API (POST /v1/messages): the request translated to chat completions
  // (translate::anthropic_request_to_chat), routed by `model` and admitted like prepare() — the
  // prompt estimated from the translated body's size. Errors: the translator's (kBadRequest,
  // kValidation), kModelNotFound, those of ChatService::route and admit.
  boost::asio::awaitable<Result<MessagesCall>> prepare_messages(const auth::Principal& who,
                                                                const boost::json::object& request,
                                                                const std::string& request_id);
  // A request whose body parley builds once it knows the provider (the Responses API's, relayed or
  // translated): route_built resolves the provider serving `model` (errors: kModelNotFound, those
  // of ChatService::route); admit_built, once call.body is set, admits it like prepare() — the
  // prompt estimated from the body's size, the answer from `max_tokens` (else the defaults).
  boost::asio::awaitable<Result<GatewayCall>> route_built(const auth::Principal& who,
                                                          GatewayEndpoint endpoint, const std::string& model,
                                                          const std::string& request_id);
  boost::asio::awaitable<Status> admit_built(const auth::Principal& who, GatewayCall& call,
                                             std::optional<std::int64_t> max_tokens);
  // POST /v1/messages/count_tokens: the prompt tokens admission would reserve for these messages
  // (a quarter token per byte of the translated chat request, without max_tokens). No provider
  // call, nothing admitted or accounted; the model must be one the caller may use.
  boost::asio::awaitable<Result<std::int64_t>> count_message_tokens(const auth::Principal& who,
                                                                    const boost::json::object& request);

  // Whether the provider serving `model` speaks Anthropic's Messages API: POST /v1/messages (and
  // count_tokens) to it are relayed natively, not translated.
  [[nodiscard]] bool serves_messages_natively(std::string_view model) const;
  // POST /v1/messages relayed to an Anthropic provider: `body` as the client sent it to path
  // "/messages", routed by `model` and admitted like prepare_messages() (a quarter token per byte
  // of the body; max_tokens when an integer). With `count_tokens`, path "/messages/count_tokens",
  // routed only (nothing admitted, as the translated count). Anthropic validates the rest.
  // Errors: kValidation (model, stream), kModelNotFound, those of ChatService::route and admit.
  boost::asio::awaitable<Result<GatewayCall>> prepare_native_messages(const auth::Principal& who,
                                                                      const boost::json::object& request,
                                                                      std::string body,
                                                                      const std::string& request_id,
                                                                      bool count_tokens);

  // Token counts of an audio answer: a transcription's `usage` (tokens, or seconds of audio as input
  // tokens at 10 per second) when it has one; else the estimate made in prepare_audio plus, for
  // text, its words.
  static Usage audio_usage(const GatewayCall& call, const provider::ProviderResponse& answer);

  // The models this caller may use: every exact model name of every usable provider.
  boost::asio::awaitable<Result<std::vector<ModelCard>>> models(const auth::Principal& who);
  // One model (exact name or matched by a provider's prefix), if the caller may use it.
  boost::asio::awaitable<Result<ModelCard>> model(const auth::Principal& who, std::string_view id);

  void account(const auth::Principal& who, const GatewayCall& call, int status, const Usage& usage,
               std::int64_t latency_ms);

  [[nodiscard]] std::int64_t created_s() const { return created_s_; }
  // The provider calls of a prepared call go through it (deployments, cooldowns, fallbacks).
  [[nodiscard]] Router& router() { return chat_.router(); }

 private:
  boost::asio::awaitable<Result<ChatService::Route>> route_model(const auth::Principal& who,
                                                                 const std::string& model,
                                                                 const std::string& request_id);

  ChatService& chat_;
  std::int64_t created_s_;
};

}  // namespace parley::services
