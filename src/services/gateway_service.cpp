#include "services/gateway_service.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <unordered_set>

#include "core/text.hpp"
#include "translate/anthropic.hpp"
#include "upstream/json_outline.hpp"
#include "upstream/multipart.hpp"

namespace parley::services {

namespace asio = boost::asio;
namespace bj = boost::json;

namespace {

Error not_found(std::string_view model, const provider::ProviderRegistry& providers) {
  return {ErrorKind::kModelNotFound,
          fmt::format("The model \"{}\" does not exist or you do not have access to it; configured: {}",
                      model, providers.allowed_models()),
          std::string("model")};
}

// Adds "stream_options": {"include_usage": true} to a request body, rarely: when the client sent
// stream_options as null or without include_usage (the common case, no stream_options at all, is
// handled by inserting the member as text).
std::string with_usage_requested(std::string_view body) {
  bj::value doc = bj::parse(body);
  bj::object& o = doc.as_object();
  auto so = o.find("stream_options");
  if (so == o.end() || !so->value().is_object()) {
    o["stream_options"] = bj::object{{"include_usage", true}};
  } else {
    so->value().as_object()["include_usage"] = true;
  }
  return bj::serialize(doc);
}

}  // namespace

asio::awaitable<Result<GatewayCall>> GatewayService::prepare(const auth::Principal& who,
                                                             GatewayEndpoint endpoint, std::string body,
                                                             const std::string& request_id) {
  using upstream::JsonKind;
  GatewayCall call;
  call.endpoint = endpoint;
  call.path = endpoint == GatewayEndpoint::kEmbeddings ? "/embeddings" : "/chat/completions";
  // Only these members are read; the body itself is forwarded as it came (see json_outline.hpp).
  static constexpr std::string_view kPaths[] = {"model",          "messages",
                                                "input",          "stream",
                                                "stream_options", "stream_options.include_usage",
                                                "max_tokens",     "max_completion_tokens"};
  std::optional<upstream::JsonOutline> doc = upstream::outline(body, kPaths);
  if (!doc) co_return fail(ErrorKind::kInvalidJson, "Request body is not valid JSON");
  if (doc->root != JsonKind::kObject)
    co_return fail(ErrorKind::kBadRequest, "Request body must be a JSON object");
  // parley routes by the last "model" while a provider may read the first.
  if (doc->repeated)
    co_return fail(ErrorKind::kBadRequest, "A member of the request body appears more than once");
  const upstream::JsonMember& model = doc->members[0];
  const upstream::JsonMember& messages = doc->members[1];
  const upstream::JsonMember& input = doc->members[2];
  const upstream::JsonMember& stream = doc->members[3];
  const upstream::JsonMember& stream_options = doc->members[4];
  const upstream::JsonMember& include_usage = doc->members[5];

  if (model.kind != JsonKind::kString || model.text.empty() || model.text.size() > 256) {
    co_return validation("model", "model must be a non-empty string naming the model to use");
  }
  const std::string& model_name = model.text;
  if (endpoint == GatewayEndpoint::kChatCompletions) {
    if (messages.kind != JsonKind::kArray || messages.size == 0) {
      co_return validation("messages", "messages must be a non-empty array");
    }
  } else if (input.kind == JsonKind::kAbsent || input.kind == JsonKind::kNull) {
    co_return validation("input", "input is required");
  }
  if (stream.kind != JsonKind::kAbsent && stream.kind != JsonKind::kNull) {
    if (stream.kind != JsonKind::kBool) co_return validation("stream", "stream must be a boolean");
    call.stream = stream.boolean;
  }
  if (call.stream && endpoint == GatewayEndpoint::kEmbeddings) {
    co_return validation("stream", "embeddings cannot be streamed");
  }
  if (call.stream) {
    if (stream_options.kind != JsonKind::kAbsent && stream_options.kind != JsonKind::kNull &&
        stream_options.kind != JsonKind::kObject) {
      co_return validation("stream_options", "stream_options must be an object");
    }
    call.client_wants_usage = include_usage.kind == JsonKind::kBool && include_usage.boolean;
    if (!call.client_wants_usage) {
      // Ask the provider for the usage chunk; the handler removes it from what the client sees.
      if (stream_options.kind == JsonKind::kAbsent) {
        std::size_t open = body.find('{');  // the root is an object: its first non-blank byte
        body.insert(open + 1, R"("stream_options":{"include_usage":true},)");
      } else {
        body = with_usage_requested(body);
      }
    }
  }

  auto route = co_await route_model(who, model_name, request_id);
  if (!route) co_return std::unexpected(route.error());
  // The prompt is estimated from the body's size (a quarter token per byte, JSON syntax included)
  // without parsing it; the answer from max_tokens, max_completion_tokens or the default.
  std::optional<std::int64_t> max_tokens;
  if (endpoint == GatewayEndpoint::kEmbeddings) {
    max_tokens = 0;
  } else {
    for (const upstream::JsonMember* m : {&doc->members[7], &doc->members[6]}) {
      if (m->kind == JsonKind::kInt && m->integer >= 0)
        max_tokens = std::min<std::int64_t>(m->integer, 1'000'000'000);
    }
  }
  const auto prompt = static_cast<std::int64_t>((body.size() + 3) / 4);
  Status admitted = co_await chat_.admit(who, *route, prompt, max_tokens);
  if (!admitted) co_return std::unexpected(admitted.error());
  call.route = std::move(*route);
  call.body = std::move(body);
  co_return call;
}

asio::awaitable<Result<ChatService::Route>> GatewayService::route_model(const auth::Principal& who,
                                                                        const std::string& model,
                                                                        const std::string& request_id) {
  auto route = co_await chat_.route(who, model, request_id);
  if (!route && route.error().kind == ErrorKind::kValidation && route.error().param == "model") {
    co_return std::unexpected(not_found(model, chat_.providers()));
  }
  co_return route;
}

asio::awaitable<Result<MessagesCall>> GatewayService::prepare_messages(const auth::Principal& who,
                                                                       const bj::object& request,
                                                                       const std::string& request_id) {
  auto chat = translate::anthropic_request_to_chat(request);
  if (!chat) co_return std::unexpected(std::move(chat.error()));
  MessagesCall out;
  out.model = std::string(chat->at("model").get_string());
  out.call.endpoint = GatewayEndpoint::kMessages;
  out.call.path = "/chat/completions";
  out.call.stream = chat->contains("stream");
  // The translated body always asks for the usage chunk when streamed; the client sees
  // Anthropic's events, which carry the usage themselves.
  std::optional<std::int64_t> max_tokens;
  if (const bj::value& m = chat->at("max_tokens"); m.is_int64()) {
    max_tokens = std::clamp<std::int64_t>(m.get_int64(), 0, 1'000'000'000);
  } else if (m.is_uint64()) {
    max_tokens = 1'000'000'000;
  }
  out.call.body = bj::serialize(*chat);
  auto route = co_await route_model(who, out.model, request_id);
  if (!route) co_return std::unexpected(route.error());
  // The same estimate as prepare(): a quarter token per byte of the body sent to the provider.
  const auto prompt = static_cast<std::int64_t>((out.call.body.size() + 3) / 4);
  Status admitted = co_await chat_.admit(who, *route, prompt, max_tokens);
  if (!admitted) co_return std::unexpected(admitted.error());
  out.call.route = std::move(*route);
  co_return out;
}

asio::awaitable<Result<GatewayCall>> GatewayService::route_built(const auth::Principal& who,
                                                                 GatewayEndpoint endpoint,
                                                                 const std::string& model,
                                                                 const std::string& request_id) {
  auto route = co_await route_model(who, model, request_id);
  if (!route) co_return std::unexpected(route.error());
  GatewayCall call;
  call.endpoint = endpoint;
  call.route = std::move(*route);
  co_return call;
}

asio::awaitable<Status> GatewayService::admit_built(const auth::Principal& who, GatewayCall& call,
                                                    std::optional<std::int64_t> max_tokens) {
  const auto prompt = static_cast<std::int64_t>((call.body.size() + 3) / 4);
  co_return co_await chat_.admit(who, call.route, prompt, max_tokens);
}

asio::awaitable<Result<std::int64_t>> GatewayService::count_message_tokens(const auth::Principal& who,
                                                                           const bj::object& request) {
  // count_tokens takes no max_tokens; the translator requires one, and it is no part of the prompt.
  bj::object copy = request;
  if (!copy.contains("max_tokens")) copy.emplace("max_tokens", 1);
  auto chat = translate::anthropic_request_to_chat(copy);
  if (!chat) co_return std::unexpected(std::move(chat.error()));
  const std::string model(chat->at("model").get_string());
  auto card = co_await this->model(who, model);
  if (!card) co_return std::unexpected(card.error());
  chat->erase("max_tokens");
  chat->erase("stream");
  chat->erase("stream_options");
  co_return static_cast<std::int64_t>((bj::serialize(*chat).size() + 3) / 4);
}

bool GatewayService::serves_messages_natively(std::string_view model) const {
  const provider::ProviderEntry* entry = chat_.providers().find_by_model(model);
  return entry != nullptr && entry->provider->kind() == provider::ProviderKind::kAnthropic;
}

asio::awaitable<Result<GatewayCall>> GatewayService::prepare_native_messages(const auth::Principal& who,
                                                                             const bj::object& request,
                                                                             std::string body,
                                                                             const std::string& request_id,
                                                                             bool count_tokens) {
  const bj::value* model = request.if_contains("model");
  if (model == nullptr || !model->is_string() || model->get_string().empty() ||
      model->get_string().size() > 256) {
    co_return validation("model", "model must be a non-empty string naming the model to use");
  }
  GatewayCall call;
  call.endpoint = GatewayEndpoint::kMessages;
  call.path = count_tokens ? "/messages/count_tokens" : "/messages";
  if (const bj::value* stream = request.if_contains("stream"); !count_tokens && stream != nullptr) {
    if (!stream->is_bool() && !stream->is_null()) co_return validation("stream", "stream must be a boolean");
    call.stream = stream->is_bool() && stream->get_bool();
  }
  const std::string model_name(model->get_string());
  auto route = co_await route_model(who, model_name, request_id);
  if (!route) co_return std::unexpected(route.error());
  // The body goes as sent: only deployments that speak the Messages API can take it (a model may
  // also have OpenAI-compatible deployments, which the weighted order may have put first).
  std::erase_if(route->candidates, [](const Candidate& c) {
    return c.entry->provider->kind() != provider::ProviderKind::kAnthropic;
  });
  if (!route->candidates.empty()) {
    const Candidate& first = route->candidates.front();
    route->entry = first.entry;
    route->model = first.model;
    route->call.api_key = first.api_key;
  }
  if (route->entry->provider->kind() != provider::ProviderKind::kAnthropic) {
    co_return fail(ErrorKind::kBadRequest, "The provider serving this model does not speak the Messages API");
  }
  if (count_tokens) {
    // A provider call, though a free one: one request against the caller's request limits, no
    // tokens reserved (accounted as "messages.count_tokens").
    call.endpoint = GatewayEndpoint::kCountTokens;
    Status admitted = co_await chat_.admit(who, *route, 0, 0);
    if (!admitted) co_return std::unexpected(admitted.error());
  } else {
    std::optional<std::int64_t> max_tokens;
    if (const bj::value* m = request.if_contains("max_tokens"); m != nullptr && m->is_int64()) {
      max_tokens = std::clamp<std::int64_t>(m->get_int64(), 0, 1'000'000'000);
    }
    const auto prompt = static_cast<std::int64_t>((body.size() + 3) / 4);
    Status admitted = co_await chat_.admit(who, *route, prompt, max_tokens);
    if (!admitted) co_return std::unexpected(admitted.error());
  }
  call.route = std::move(*route);
  call.body = std::move(body);
  co_return call;
}

std::string_view endpoint_name(GatewayEndpoint endpoint) {
  switch (endpoint) {
    case GatewayEndpoint::kChatCompletions:
      return "chat.completions";
    case GatewayEndpoint::kEmbeddings:
      return "embeddings";
    case GatewayEndpoint::kSpeech:
      return "audio.speech";
    case GatewayEndpoint::kTranscriptions:
      return "audio.transcriptions";
    case GatewayEndpoint::kMessages:
      return "messages";
    case GatewayEndpoint::kResponses:
      return "responses";
    case GatewayEndpoint::kCountTokens:
      return "messages.count_tokens";
  }
  return "chat.completions";
}

namespace {

constexpr std::string_view kTranscriptFormats[] = {"json", "text", "srt", "verbose_json", "vtt"};

}  // namespace

asio::awaitable<Result<GatewayCall>> GatewayService::prepare_audio(const auth::Principal& who,
                                                                   GatewayEndpoint endpoint, std::string body,
                                                                   std::string content_type,
                                                                   const std::string& request_id) {
  GatewayCall call;
  call.endpoint = endpoint;
  std::string model_name;
  std::optional<std::int64_t> max_tokens;
  if (endpoint == GatewayEndpoint::kSpeech) {
    call.path = "/audio/speech";
    boost::system::error_code ec;
    bj::value doc = bj::parse(body, ec);
    if (ec) co_return fail(ErrorKind::kInvalidJson, "Request body is not valid JSON");
    if (!doc.is_object()) co_return fail(ErrorKind::kBadRequest, "Request body must be a JSON object");
    const bj::object& o = doc.as_object();
    auto model = o.find("model");
    if (model == o.end() || !model->value().is_string() || model->value().as_string().empty() ||
        model->value().as_string().size() > 256) {
      co_return validation("model", "model must be a non-empty string naming the model to use");
    }
    model_name = std::string(model->value().as_string());
    auto input = o.find("input");
    if (input == o.end() || !input->value().is_string() || input->value().as_string().empty() ||
        utf8_chars(input->value().as_string()) > 4096) {
      co_return validation("input", "input must be a string of 1 to 4096 characters");
    }
    auto voice = o.find("voice");
    if (voice == o.end() || voice->value().is_null()) co_return validation("voice", "voice is required");
    call.prompt_estimate = static_cast<std::int64_t>((input->value().as_string().size() + 3) / 4);
    max_tokens = 0;
  } else {
    call.path = "/audio/transcriptions";
    auto boundary = upstream::form_boundary(content_type);
    if (!boundary) co_return fail(ErrorKind::kBadRequest, "Request body must be multipart/form-data");
    auto parts = upstream::parse_form(body, *boundary);
    if (!parts) co_return fail(ErrorKind::kBadRequest, parts.error().message);
    const upstream::FormPart* model = upstream::find_part(*parts, "model");
    if (model == nullptr || model->data.empty() || model->data.size() > 256) {
      co_return validation("model", "model must be a non-empty form field naming the model to use");
    }
    model_name = std::string(model->data);
    const upstream::FormPart* file = upstream::find_part(*parts, "file");
    if (file == nullptr || file->data.empty())
      co_return validation("file", "file must be a non-empty upload");
    if (const upstream::FormPart* format = upstream::find_part(*parts, "response_format")) {
      if (std::find(std::begin(kTranscriptFormats), std::end(kTranscriptFormats), format->data) ==
          std::end(kTranscriptFormats)) {
        co_return validation("response_format",
                             "response_format must be json, text, srt, verbose_json or vtt");
      }
    }
    call.prompt_estimate = static_cast<std::int64_t>((file->data.size() + 999) / 1000);
  }
  call.content_type = std::move(content_type);
  auto route = co_await route_model(who, model_name, request_id);
  if (!route) co_return std::unexpected(route.error());
  Status admitted = co_await chat_.admit(who, *route, call.prompt_estimate, max_tokens);
  if (!admitted) co_return std::unexpected(admitted.error());
  call.route = std::move(*route);
  call.body = std::move(body);
  co_return call;
}

Usage GatewayService::audio_usage(const GatewayCall& call, const provider::ProviderResponse& answer) {
  if (answer.usage && answer.usage->total_tokens > 0) return *answer.usage;
  Usage u;
  u.prompt_tokens = call.prompt_estimate;
  if (call.endpoint == GatewayEndpoint::kTranscriptions) {
    boost::system::error_code ec;
    bj::value doc = bj::parse(answer.body, ec);
    std::string_view text = answer.body;
    if (!ec && doc.is_object()) {
      const auto& o = doc.as_object();
      if (auto usage = o.find("usage"); usage != o.end() && usage->value().is_object()) {
        const auto& uo = usage->value().as_object();
        auto number = [&](std::string_view key) -> std::int64_t {
          auto it = uo.find(key);
          if (it == uo.end()) return 0;
          if (it->value().is_int64()) return std::max<std::int64_t>(0, it->value().as_int64());
          if (it->value().is_double())
            return static_cast<std::int64_t>(std::max(0.0, it->value().as_double()));
          return 0;
        };
        if (number("input_tokens") > 0 || number("output_tokens") > 0) {
          u.prompt_tokens = number("input_tokens");
          u.completion_tokens = number("output_tokens");
          u.total_tokens = u.prompt_tokens + u.completion_tokens;
          return u;
        }
        if (auto it = uo.find("seconds"); it != uo.end() && it->value().is_number()) {
          u.prompt_tokens = static_cast<std::int64_t>(std::ceil(it->value().to_number<double>() * 10));
        }
      }
      text = {};
      if (auto t = o.find("text"); t != o.end() && t->value().is_string()) text = t->value().as_string();
    }
    std::int64_t words = 0;
    bool in_word = false;
    for (char c : text) {
      const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
      if (!space && !in_word) ++words;
      in_word = !space;
    }
    u.completion_tokens = words;
  }
  u.total_tokens = u.prompt_tokens + u.completion_tokens;
  return u;
}

asio::awaitable<Result<std::vector<ModelCard>>> GatewayService::models(const auth::Principal& who) {
  std::vector<ModelCard> out;
  std::unordered_set<std::string> seen;
  for (const auto& entry : chat_.providers().entries()) {
    auto usable = co_await chat_.usable(who, entry);
    if (!usable) co_return std::unexpected(usable.error());
    if (!*usable) continue;
    for (const auto& m : entry.models) {
      if (m.empty() || m.back() == '*') continue;  // a prefix names no model by itself
      // The first provider serving a name is the one requests go to.
      if (chat_.providers().find_by_model(m) != &entry || !seen.insert(m).second) continue;
      out.push_back({m, entry.provider->name()});
    }
  }
  co_return out;
}

asio::awaitable<Result<ModelCard>> GatewayService::model(const auth::Principal& who, std::string_view id) {
  const provider::ProviderEntry* entry = chat_.providers().find_by_model(id);
  if (entry == nullptr) co_return std::unexpected(not_found(id, chat_.providers()));
  auto usable = co_await chat_.usable(who, *entry);
  if (!usable) co_return std::unexpected(usable.error());
  if (!*usable) co_return std::unexpected(not_found(id, chat_.providers()));
  co_return ModelCard{std::string(id), entry->provider->name()};
}

void GatewayService::account(const auth::Principal& who, const GatewayCall& call, int status,
                             const Usage& usage, std::int64_t latency_ms) {
  chat_.account(who, call.route, endpoint_name(call.endpoint), status, call.stream, usage, latency_ms);
}

}  // namespace parley::services
