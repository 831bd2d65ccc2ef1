#include "api/gateway.hpp"

#include <boost/json.hpp>
#include <chrono>
#include <optional>

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
namespace bhttp = boost::beast::http;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;
using services::GatewayEndpoint;

namespace {

// The provider's pass-through headers, onto a response that has none of them yet.
void add_headers(Response& res, const std::vector<provider::Header>& headers) {
  for (const auto& [name, value] : headers) res.insert(name, value);
}

// A provider's answer (2xx or a relayable rejection), body untouched, with the caller's limits.
Response relay(unsigned status, std::string body, const std::vector<provider::Header>& headers,
               const RateLimitInfo& limits, const services::Route& route,
               std::string_view content_type = "application/json") {
  Response res{static_cast<StatusCode>(status), 11};
  res.insert(bhttp::field::content_type, content_type);
  add_headers(res, headers);
  add_answered_by(res, route);
  http::set_rate_limit_headers(res, limits);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// An error after admission: the envelope with the caller's limits.
Response failed(const Error& error, RequestContext& ctx, const RateLimitInfo& limits) {
  Response res = error_of(error, ctx);
  if (!error.rate) http::set_rate_limit_headers(res, limits);
  return res;
}

bj::object card_json(const services::ModelCard& card, std::int64_t created) {
  return bj::object{{"id", card.id}, {"object", "model"}, {"created", created}, {"owned_by", card.owned_by}};
}

// The usage chunk parley asked for on the client's behalf: drop it, or (when a provider put usage
// on a content chunk) strip the field. Returns the payload to send; empty: send nothing.
std::string without_usage(std::string_view data) {
  boost::system::error_code ec;
  bj::value doc = bj::parse(data, ec);
  if (ec || !doc.is_object()) return std::string(data);
  bj::object& o = doc.as_object();
  auto choices = o.find("choices");
  if (choices == o.end() || !choices->value().is_array() || choices->value().as_array().empty()) return {};
  o.erase("usage");
  return bj::serialize(doc);
}

asio::awaitable<Response> forward(GatewayDeps& d, RequestContext& ctx, GatewayEndpoint endpoint) {
  auto t0 = std::chrono::steady_clock::now();
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  auto call = co_await d.gateway.prepare(*who, endpoint, std::move(ctx.request.body()), ctx.request_id);
  if (!call) co_return error_of(call.error(), ctx);
  services::Router& router = d.gateway.router();
  const RateLimitInfo& limits = call->route.admission.info;

  http::StreamWriter& stream = *ctx.stream;
  if (!call->stream) {
    // A client that leaves cancels the provider call (its connection is closed, no retry follows).
    http::CloseWatch watch(stream);
    auto res = co_await router.post(call->route, call->path, std::move(call->body));
    const bool left = watch.finish();
    if (left) {
      d.gateway.account(*who, *call, kClientClosed, {}, ms_since(t0));
      co_return http::client_closed_response();
    }
    if (!res) {
      d.gateway.account(*who, *call, res.error().status(), {}, ms_since(t0));
      co_return failed(res.error(), ctx, limits);
    }
    d.gateway.account(*who, *call, static_cast<int>(res->status), res->usage.value_or(services::Usage{}),
                      ms_since(t0));
    co_return relay(res->status, std::move(res->body), res->headers, limits, call->route);
  }

  // Streamed: the head goes out with the first event, so a failure before it is an ordinary HTTP
  // error; after it, one SSE error event ends the stream.
  std::vector<provider::Header> head_headers;
  call->route.call.on_stream_head = [&head_headers](const std::vector<provider::Header>& h) {
    head_headers = h;
  };
  services::Usage usage;
  bool client_gone = false;
  auto start = [&]() -> asio::awaitable<bool> {
    if (stream.started()) co_return true;
    Response head = event_stream_head(head_headers, &limits);
    add_answered_by(head, call->route);
    co_return co_await stream.begin(std::move(head));
  };
  // Events of one upstream read are gathered and sent as one chunk when the read is done: as
  // prompt as per event (nothing waits for a later read), with one write instead of several.
  std::string batch;
  provider::EventSink sink = [&](std::string_view data) -> asio::awaitable<bool> {
    std::string_view payload = data;
    std::string rewritten;
    if (auto u = provider::usage_of(data)) {
      usage = *u;
      if (!call->client_wants_usage) {
        rewritten = without_usage(data);
        if (rewritten.empty()) co_return true;
        payload = rewritten;
      }
    }
    batch.append("data: ").append(payload).append("\n\n");
    co_return true;
  };
  auto flush = [&]() -> asio::awaitable<bool> {
    co_return co_await flush_batch(stream, batch, client_gone, start);
  };
  call->route.call.on_stream_batch_end = flush;
  http::CloseWatch watch(stream);
  auto out = co_await router.post_stream(call->route, call->path, std::move(call->body), sink);
  const bool left = watch.finish();
  std::int64_t latency = ms_since(t0);
  if (client_gone || left) {
    d.gateway.account(*who, *call, kClientClosed, usage, latency);
    co_return http::client_closed_response();
  }
  if (out && out->rejected() && !stream.started()) {
    d.gateway.account(*who, *call, static_cast<int>(out->status), usage, latency);
    co_return relay(out->status, std::move(out->error_body), {}, limits, call->route);
  }
  if (!out && !stream.started()) {
    d.gateway.account(*who, *call, out.error().status(), usage, latency);
    co_return failed(out.error(), ctx, limits);
  }
  if (!co_await start()) co_return Response{};
  // Whatever is still gathered goes out with the terminal event.
  if (out && !out->rejected()) {
    d.gateway.account(*who, *call, 200, usage, latency);
    batch.append("data: [DONE]\n\n");
  } else {
    Error e = out ? Error(ErrorKind::kOpenAiApiError, "The provider failed mid-stream") : out.error();
    d.gateway.account(*who, *call, e.status(), usage, latency);
    batch.append("data: ").append(http::error_body(e, ctx.request_id)).append("\n\n");
  }
  co_await stream.write(batch);
  co_return Response{};
}

// /v1/audio/speech and /v1/audio/transcriptions: the body goes as it came (JSON or a multipart
// upload) and the answer comes back as received (audio bytes, JSON, text or subtitles).
asio::awaitable<Response> forward_audio(GatewayDeps& d, RequestContext& ctx, GatewayEndpoint endpoint) {
  auto t0 = std::chrono::steady_clock::now();
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  std::string content_type(ctx.header("Content-Type"));
  auto call = co_await d.gateway.prepare_audio(*who, endpoint, std::move(ctx.request.body()),
                                               std::move(content_type), ctx.request_id);
  if (!call) co_return error_of(call.error(), ctx);
  const RateLimitInfo& limits = call->route.admission.info;
  http::CloseWatch watch(*ctx.stream);
  auto res = co_await d.gateway.router().post_raw(call->route, call->path, std::move(call->body),
                                                  call->content_type);
  if (watch.finish()) {
    d.gateway.account(*who, *call, kClientClosed, {}, ms_since(t0));
    co_return http::client_closed_response();
  }
  if (!res) {
    d.gateway.account(*who, *call, res.error().status(), {}, ms_since(t0));
    co_return failed(res.error(), ctx, limits);
  }
  const services::Usage usage =
      res->ok() ? services::GatewayService::audio_usage(*call, *res) : services::Usage{};
  d.gateway.account(*who, *call, static_cast<int>(res->status), usage, ms_since(t0));
  const std::string type = res->content_type.empty() ? std::string("application/json") : res->content_type;
  co_return relay(res->status, std::move(res->body), res->headers, limits, call->route, type);
}

}  // namespace

std::int64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

void add_answered_by(Response& res, const services::Route& route) {
  res.set("x-parley-provider", route.entry->provider->name());
  res.set("x-parley-model", route.model);
}

Response event_stream_head(const std::vector<provider::Header>& headers, const RateLimitInfo* limits) {
  Response head{StatusCode::ok, 11};
  head.set(bhttp::field::content_type, "text/event-stream");
  head.set(bhttp::field::cache_control, "no-cache");
  head.set("X-Accel-Buffering", "no");
  for (const auto& [name, value] : headers) head.insert(name, value);
  if (limits != nullptr) http::set_rate_limit_headers(head, *limits);
  return head;
}

void register_gateway_routes(http::Router& router, GatewayDeps& d) {
  router.add(Method::post, "/v1/audio/speech", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    co_return co_await forward_audio(d, ctx, GatewayEndpoint::kSpeech);
  });
  router.add(Method::post, "/v1/audio/transcriptions",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               co_return co_await forward_audio(d, ctx, GatewayEndpoint::kTranscriptions);
             });
  router.add(Method::post, "/v1/chat/completions", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    co_return co_await forward(d, ctx, GatewayEndpoint::kChatCompletions);
  });
  router.add(Method::post, "/v1/embeddings", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    co_return co_await forward(d, ctx, GatewayEndpoint::kEmbeddings);
  });
  router.add(Method::get, "/v1/models", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto models = co_await d.gateway.models(*who);
    if (!models) co_return error_of(models.error(), ctx);
    bj::array data;
    for (const auto& card : *models) data.push_back(card_json(card, d.gateway.created_s()));
    co_return http::json_response(StatusCode::ok, bj::object{{"object", "list"}, {"data", std::move(data)}});
  });
  router.add(Method::get, "/v1/models/{model}", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto card = co_await d.gateway.model(*who, ctx.param("model"));
    if (!card) co_return error_of(card.error(), ctx);
    co_return http::json_response(StatusCode::ok, card_json(*card, d.gateway.created_s()));
  });
}

}  // namespace parley::api
