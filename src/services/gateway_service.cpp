#include "services/gateway_service.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <unordered_set>

#include "upstream/json_outline.hpp"

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

  auto route = co_await chat_.route(who, model_name, request_id);
  if (!route) {
    if (route.error().kind == ErrorKind::kValidation && route.error().param == "model") {
      co_return std::unexpected(not_found(model_name, chat_.providers()));
    }
    co_return std::unexpected(route.error());
  }
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
  if (usage_ == nullptr) {
    ChatService::settle(call.route, status, usage);
    return;
  }
  store::UsageEvent e;
  e.user_id = who.user_id;
  e.api_key_id = who.api_key_id;
  e.provider = call.route.entry->provider->name();
  e.model = call.route.model;
  e.endpoint = call.endpoint == GatewayEndpoint::kEmbeddings ? "embeddings" : "chat.completions";
  e.status = status;
  e.streamed = call.stream;
  e.prompt_tokens = usage.prompt_tokens;
  e.completion_tokens = usage.completion_tokens;
  e.total_tokens = usage.total_tokens;
  e.latency_ms = latency_ms;
  e.request_id = call.route.call.request_id;
  e.cost_nanos = ChatService::settle(call.route, status, usage);
  usage_->record(std::move(e));
}

}  // namespace parley::services
