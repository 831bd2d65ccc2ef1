#include "services/gateway_service.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <unordered_set>

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

}  // namespace

asio::awaitable<Result<GatewayCall>> GatewayService::prepare(const auth::Principal& who,
                                                             GatewayEndpoint endpoint, std::string body,
                                                             const std::string& request_id) {
  GatewayCall call;
  call.endpoint = endpoint;
  call.path = endpoint == GatewayEndpoint::kEmbeddings ? "/embeddings" : "/chat/completions";
  boost::system::error_code ec;
  bj::value doc = bj::parse(body, ec);
  if (ec) co_return fail(ErrorKind::kInvalidJson, "Request body is not valid JSON");
  if (!doc.is_object()) co_return fail(ErrorKind::kBadRequest, "Request body must be a JSON object");
  bj::object& o = doc.as_object();

  auto model = o.find("model");
  if (model == o.end() || !model->value().is_string() || model->value().as_string().empty() ||
      model->value().as_string().size() > 256) {
    co_return validation("model", "model must be a non-empty string naming the model to use");
  }
  // Copied now: adding stream_options below may rehash the object and invalidate iterators.
  const std::string model_name(model->value().as_string());
  if (endpoint == GatewayEndpoint::kChatCompletions) {
    auto messages = o.find("messages");
    if (messages == o.end() || !messages->value().is_array() || messages->value().as_array().empty()) {
      co_return validation("messages", "messages must be a non-empty array");
    }
  } else {
    auto input = o.find("input");
    if (input == o.end() || input->value().is_null()) co_return validation("input", "input is required");
  }
  if (auto stream = o.find("stream"); stream != o.end() && !stream->value().is_null()) {
    if (!stream->value().is_bool()) co_return validation("stream", "stream must be a boolean");
    call.stream = stream->value().as_bool();
  }
  if (call.stream && endpoint == GatewayEndpoint::kEmbeddings) {
    co_return validation("stream", "embeddings cannot be streamed");
  }
  if (call.stream) {
    auto so = o.find("stream_options");
    if (so != o.end() && !so->value().is_null() && !so->value().is_object()) {
      co_return validation("stream_options", "stream_options must be an object");
    }
    if (so != o.end() && so->value().is_object()) {
      auto iu = so->value().as_object().find("include_usage");
      call.client_wants_usage = iu != so->value().as_object().end() && iu->value() == true;
    }
    if (!call.client_wants_usage) {
      // Ask the provider for the usage chunk; the handler removes it from what the client sees.
      if (so == o.end() || !so->value().is_object()) {
        o["stream_options"] = bj::object{{"include_usage", true}};
      } else {
        so->value().as_object()["include_usage"] = true;
      }
      body = bj::serialize(doc);
    }
  }

  auto route = co_await chat_.route(who, model_name, request_id);
  if (!route) {
    if (route.error().kind == ErrorKind::kValidation && route.error().param == "model") {
      co_return std::unexpected(not_found(model_name, chat_.providers()));
    }
    co_return std::unexpected(route.error());
  }
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
  if (usage_ == nullptr) return;
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
  usage_->record(std::move(e));
}

}  // namespace parley::services
