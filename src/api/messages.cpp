// Anthropic's Messages API on parley: POST /v1/messages and POST /v1/messages/count_tokens,
// relayed as they are to an Anthropic provider (kind "anthropic") or translated to the chat
// completions of an OpenAI-compatible provider (src/translate/anthropic.hpp, docs/TRANSLATION.md).
// Authentication, routing, limits and usage are the /v1 gateway's; answers, stream events and errors are in
// Anthropic's wire format.
#include <boost/json.hpp>
#include <chrono>
#include <vector>

#include "api/gateway.hpp"
#include "crypto/random.hpp"
#include "provider/anthropic_provider.hpp"
#include "translate/anthropic.hpp"
#include "translate/stream_event.hpp"

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
namespace bhttp = boost::beast::http;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;

namespace {

// Anthropic answers a malformed request with 400, never 422.
int anthropic_status(int status) {
  return status == 422 ? 400 : status;
}

// An error in Anthropic's shape, with `request-id` as Anthropic sends it and, for a limit's
// refusal, Retry-After and the rate-limit headers; otherwise the caller's limits when known.
Response anthropic_error_response(int status, std::string_view message, const RequestContext& ctx,
                                  const RateLimitInfo* limits) {
  status = anthropic_status(status);
  Response res = http::json_response(static_cast<StatusCode>(status),
                                     translate::anthropic_error(status, message, ctx.request_id));
  res.set("request-id", ctx.request_id);
  if (limits != nullptr) http::set_rate_limit_headers(res, *limits);
  return res;
}

Response anthropic_error_of(const Error& error, const RequestContext& ctx,
                            const RateLimitInfo* limits = nullptr) {
  const bj::object body = translate::anthropic_error(error);
  const std::string_view message = body.at("error").at("message").get_string();
  if (error.rate) limits = &*error.rate;
  return anthropic_error_response(error.status(), message, ctx, limits);
}

// A provider's own verdict on the translated request (400/404/409/413/422, OpenAI's envelope):
// its message in Anthropic's shape.
Response provider_rejection(unsigned status, std::string_view body, const RequestContext& ctx,
                            const RateLimitInfo& limits) {
  std::string message = "the provider refused the request";
  boost::system::error_code ec;
  const bj::value doc = bj::parse(body, ec);
  if (!ec && doc.is_object()) {
    const bj::object& o = doc.get_object();
    const bj::value* error = o.if_contains("error");
    if (error != nullptr && error->is_object()) {
      const bj::value* m = error->get_object().if_contains("message");
      if (m != nullptr && m->is_string() && !m->get_string().empty()) message = m->get_string();
    } else if (error != nullptr && error->is_string()) {
      message = error->get_string();
    }
  }
  return anthropic_error_response(static_cast<int>(status), message, ctx, &limits);
}

// An `error` event's data as the Error it stands for.
Error event_error_of(std::string_view data) {
  boost::system::error_code ec;
  const bj::value doc = bj::parse(data, ec);
  std::string_view type = "api_error";
  std::string_view message;
  if (!ec && doc.is_object()) {
    if (const bj::value* e = doc.get_object().if_contains("error"); e != nullptr && e->is_object()) {
      const bj::object& o = e->get_object();
      if (const bj::value* t = o.if_contains("type"); t != nullptr && t->is_string()) type = t->get_string();
      if (const bj::value* m = o.if_contains("message"); m != nullptr && m->is_string())
        message = m->get_string();
    }
  }
  return translate::error_from_anthropic_type(type, message);
}

// Authentication (a service key in x-api-key or Authorization: Bearer, or an access token), the
// anthropic-version header Anthropic requires, and the body as a JSON object.
struct Admitted {
  auth::Principal who;
  bj::object request;
};

asio::awaitable<Result<Admitted>> authenticate(GatewayDeps& d, RequestContext& ctx) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return std::unexpected(who.error());
  if (ctx.header("anthropic-version").empty()) {
    co_return fail(ErrorKind::kBadRequest, "anthropic-version: header is required");
  }
  auto body = http::parse_json_body(ctx);
  if (!body) co_return std::unexpected(body.error());
  if (!body->is_object()) co_return fail(ErrorKind::kBadRequest, "Request body must be a JSON object");
  Admitted out{std::move(*who), std::move(body->get_object())};
  co_return out;
}

Response message_response(const bj::object& message, const RequestContext& ctx,
                          const std::vector<provider::Header>& headers, const RateLimitInfo& limits,
                          const services::Route& route) {
  Response res = http::json_response(StatusCode::ok, message);
  for (const auto& [name, value] : headers) res.insert(name, value);
  add_answered_by(res, route);
  res.set("request-id", ctx.request_id);
  http::set_rate_limit_headers(res, limits);
  return res;
}

// ---------------------------------------------------------------------------------------------
// Relayed natively: the model is served by an Anthropic provider (provider/anthropic_provider.hpp).
// The body goes as the client sent it; the answer, its status and the stream's events come back as
// the provider sent them, with parley's request-id and the caller's rate-limit headers.

bool served_natively(GatewayDeps& d, const bj::object& request) {
  const bj::value* model = request.if_contains("model");
  return model != nullptr && model->is_string() && d.gateway.serves_messages_natively(model->get_string());
}

// An answer of the provider's (a message, a count, or its own error), relayed as received.
Response relay_answer(const provider::ProviderResponse& res, const RequestContext& ctx,
                      const RateLimitInfo* limits, const services::Route& route) {
  Response out{static_cast<StatusCode>(res.status), 11};
  out.set(bhttp::field::content_type, "application/json");
  for (const auto& [name, value] : res.headers) out.insert(name, value);
  add_answered_by(out, route);
  out.set("request-id", ctx.request_id);
  if (limits != nullptr) http::set_rate_limit_headers(out, *limits);
  out.body() = res.body;
  out.prepare_payload();
  return out;
}

// One non-streamed call relayed natively: the provider's answer as received, accounted (with the
// usage it reports, if any) whatever the outcome.
asio::awaitable<Response> relay_once(GatewayDeps& d, RequestContext& ctx, const auth::Principal& who,
                                     services::GatewayCall& call, std::chrono::steady_clock::time_point t0) {
  const RateLimitInfo& limits = call.route.admission.info;
  http::CloseWatch watch(*ctx.stream);
  auto res = co_await d.gateway.router().post(call.route, call.path, std::move(call.body));
  if (watch.finish()) {
    d.gateway.account(who, call, kClientClosed, {}, ms_since(t0));
    co_return http::client_closed_response();
  }
  if (!res) {
    d.gateway.account(who, call, res.error().status(), {}, ms_since(t0));
    co_return anthropic_error_of(res.error(), ctx, &limits);
  }
  d.gateway.account(who, call, static_cast<int>(res->status), res->usage.value_or(services::Usage{}),
                    ms_since(t0));
  co_return relay_answer(*res, ctx, &limits, call.route);
}

asio::awaitable<Response> relay_messages(GatewayDeps& d, RequestContext& ctx, const Admitted& admitted,
                                         std::chrono::steady_clock::time_point t0) {
  const auth::Principal& who = admitted.who;
  std::string body(ctx.request.body());
  auto prepared = co_await d.gateway.prepare_native_messages(who, admitted.request, std::move(body),
                                                             ctx.request_id, false);
  if (!prepared) co_return anthropic_error_of(prepared.error(), ctx);
  services::GatewayCall& call = *prepared;
  services::Router& router = d.gateway.router();
  const RateLimitInfo& limits = call.route.admission.info;

  http::StreamWriter& stream = *ctx.stream;
  if (!call.stream) co_return co_await relay_once(d, ctx, who, call, t0);

  // Streamed: each event as received ("event: <its type>\ndata: <its data>"), gathered per upstream
  // read; usage from message_start and message_delta; an `error` event is relayed and accounted.
  std::vector<provider::Header> head_headers;
  call.route.call.on_stream_head = [&head_headers](const std::vector<provider::Header>& h) {
    head_headers = h;
  };
  provider::AnthropicUsage usage;
  std::optional<Error> event_error;
  bool client_gone = false;
  auto start = [&]() -> asio::awaitable<bool> {
    if (stream.started()) co_return true;
    Response head = event_stream_head(head_headers, &limits);
    add_answered_by(head, call.route);
    head.set("request-id", ctx.request_id);
    co_return co_await stream.begin(std::move(head));
  };
  std::string batch;
  provider::EventSink sink = [&](std::string_view data) -> asio::awaitable<bool> {
    const std::optional<provider::AnthropicFacts> facts = provider::inspect_anthropic(data);
    if (facts) {
      usage.add(*facts);
      if (facts->type == "error") event_error = event_error_of(data);
      if (!facts->type.empty()) batch.append("event: ").append(facts->type).append("\n");
    }
    batch.append("data: ").append(data).append("\n\n");
    co_return true;
  };
  auto flush = [&]() -> asio::awaitable<bool> {
    co_return co_await flush_batch(stream, batch, client_gone, start);
  };
  call.route.call.on_stream_batch_end = flush;
  http::CloseWatch watch(stream);
  auto out = co_await router.post_stream(call.route, call.path, std::move(call.body), sink);
  const bool left = watch.finish();
  const std::int64_t latency = ms_since(t0);
  if (client_gone || left) {
    d.gateway.account(who, call, kClientClosed, usage.total(), latency);
    co_return http::client_closed_response();
  }
  if (out && out->rejected() && !stream.started()) {
    d.gateway.account(who, call, static_cast<int>(out->status), usage.total(), latency);
    provider::ProviderResponse rejected{out->status, std::move(out->error_body), out->headers, {}, {}};
    co_return relay_answer(rejected, ctx, &limits, call.route);
  }
  if (!out && !stream.started()) {
    d.gateway.account(who, call, out.error().status(), usage.total(), latency);
    co_return anthropic_error_of(out.error(), ctx, &limits);
  }
  if (out && !out->rejected()) {
    const int status = event_error ? event_error->status() : 200;
    d.gateway.account(who, call, status, usage.total(), latency);
  } else {
    const Error e = out ? Error(ErrorKind::kOpenAiApiError, "The provider failed mid-stream") : out.error();
    d.gateway.account(who, call, e.status(), usage.total(), latency);
    translate::append_sse(batch,
                          translate::StreamEvent{"error", translate::anthropic_error(e, ctx.request_id)});
  }
  const bool begun = co_await start();
  if (!begun) co_return Response{};
  co_await stream.write(batch);
  co_return Response{};
}

// Admitted as one request (no tokens) and recorded as "messages.count_tokens": it calls a provider.
asio::awaitable<Response> relay_count_tokens(GatewayDeps& d, RequestContext& ctx, const Admitted& admitted) {
  const auto t0 = std::chrono::steady_clock::now();
  const auth::Principal& who = admitted.who;
  std::string body(ctx.request.body());
  auto prepared = co_await d.gateway.prepare_native_messages(who, admitted.request, std::move(body),
                                                             ctx.request_id, true);
  if (!prepared) co_return anthropic_error_of(prepared.error(), ctx);
  co_return co_await relay_once(d, ctx, who, *prepared, t0);
}

// ---------------------------------------------------------------------------------------------
// Translated: the model is served by an OpenAI-compatible provider.

asio::awaitable<Response> messages(GatewayDeps& d, RequestContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  auto admitted = co_await authenticate(d, ctx);
  if (!admitted) co_return anthropic_error_of(admitted.error(), ctx);
  if (served_natively(d, admitted->request)) co_return co_await relay_messages(d, ctx, *admitted, t0);
  const auth::Principal& who = admitted->who;
  auto prepared = co_await d.gateway.prepare_messages(who, admitted->request, ctx.request_id);
  if (!prepared) co_return anthropic_error_of(prepared.error(), ctx);
  services::GatewayCall& call = prepared->call;
  services::Router& router = d.gateway.router();
  const RateLimitInfo& limits = call.route.admission.info;
  translate::AnthropicMeta meta{"msg_" + crypto::random_base62(24), prepared->model};

  http::StreamWriter& stream = *ctx.stream;
  if (!call.stream) {
    http::CloseWatch watch(stream);
    auto res = co_await router.post(call.route, call.path, std::move(call.body));
    const bool left = watch.finish();
    if (left) {
      d.gateway.account(who, call, kClientClosed, {}, ms_since(t0));
      co_return http::client_closed_response();
    }
    if (!res) {
      d.gateway.account(who, call, res.error().status(), {}, ms_since(t0));
      co_return anthropic_error_of(res.error(), ctx, &limits);
    }
    const services::Usage usage = res->usage.value_or(services::Usage{});
    if (!res->ok()) {
      d.gateway.account(who, call, static_cast<int>(res->status), usage, ms_since(t0));
      co_return provider_rejection(res->status, res->body, ctx, limits);
    }
    boost::system::error_code ec;
    const bj::value answer = bj::parse(res->body, ec);
    Result<bj::object> message =
        fail(ErrorKind::kOpenAiApiError, "the provider's answer is not a JSON object");
    if (!ec && answer.is_object()) message = translate::chat_response_to_anthropic(answer.get_object(), meta);
    if (!message) {
      d.gateway.account(who, call, message.error().status(), usage, ms_since(t0));
      co_return anthropic_error_of(message.error(), ctx, &limits);
    }
    d.gateway.account(who, call, 200, usage, ms_since(t0));
    co_return message_response(*message, ctx, res->headers, limits, call.route);
  }

  // Streamed: each chat chunk becomes Anthropic's events as it arrives. The head goes out with
  // the first events, so a failure before them is an ordinary error answer; after them, one
  // `error` event ends the stream.
  std::vector<provider::Header> head_headers;
  call.route.call.on_stream_head = [&head_headers](const std::vector<provider::Header>& h) {
    head_headers = h;
  };
  translate::AnthropicStream translator(std::move(meta));
  std::vector<translate::StreamEvent> events;
  services::Usage usage;
  bool client_gone = false;
  auto start = [&]() -> asio::awaitable<bool> {
    if (stream.started()) co_return true;
    Response head = event_stream_head(head_headers, &limits);
    add_answered_by(head, call.route);
    head.set("request-id", ctx.request_id);
    co_return co_await stream.begin(std::move(head));
  };
  // Events of one upstream read are gathered and sent as one chunk when the read is done.
  std::string batch;
  auto drain = [&] {
    for (const auto& event : events) translate::append_sse(batch, event);
    events.clear();
  };
  provider::EventSink sink = [&](std::string_view data) -> asio::awaitable<bool> {
    boost::system::error_code ec;
    const bj::value chunk = bj::parse(data, ec);
    if (ec || !chunk.is_object() || translator.finished()) co_return true;
    if (auto u = provider::usage_in(chunk)) usage = *u;
    translator.feed(chunk.get_object(), events);
    drain();
    co_return true;
  };
  auto flush = [&]() -> asio::awaitable<bool> {
    co_return co_await flush_batch(stream, batch, client_gone, start);
  };
  call.route.call.on_stream_batch_end = flush;
  http::CloseWatch watch(stream);
  auto out = co_await router.post_stream(call.route, call.path, std::move(call.body), sink);
  const bool left = watch.finish();
  const std::int64_t latency = ms_since(t0);
  if (client_gone || left) {
    d.gateway.account(who, call, kClientClosed, usage, latency);
    co_return http::client_closed_response();
  }
  if (out && out->rejected() && !stream.started()) {
    d.gateway.account(who, call, static_cast<int>(out->status), usage, latency);
    co_return provider_rejection(out->status, out->error_body, ctx, limits);
  }
  if (!out && !stream.started()) {
    d.gateway.account(who, call, out.error().status(), usage, latency);
    co_return anthropic_error_of(out.error(), ctx, &limits);
  }
  if (out && !out->rejected()) {
    if (!translator.finished()) translator.finish(events);
    d.gateway.account(who, call, 200, usage, latency);
  } else {
    const Error e = out ? Error(ErrorKind::kOpenAiApiError, "The provider failed mid-stream") : out.error();
    d.gateway.account(who, call, e.status(), usage, latency);
    if (!translator.finished()) translator.fail(e, events);
  }
  drain();
  const bool begun = co_await start();
  if (!begun) co_return Response{};
  co_await stream.write(batch);
  co_return Response{};
}

asio::awaitable<Response> count_tokens(GatewayDeps& d, RequestContext& ctx) {
  auto admitted = co_await authenticate(d, ctx);
  if (!admitted) co_return anthropic_error_of(admitted.error(), ctx);
  if (served_natively(d, admitted->request)) co_return co_await relay_count_tokens(d, ctx, *admitted);
  auto tokens = co_await d.gateway.count_message_tokens(admitted->who, admitted->request);
  if (!tokens) co_return anthropic_error_of(tokens.error(), ctx);
  Response res = http::json_response(StatusCode::ok, bj::object{{"input_tokens", *tokens}});
  res.set("request-id", ctx.request_id);
  co_return res;
}

}  // namespace

void register_messages_routes(http::Router& router, GatewayDeps& d) {
  router.add(Method::post, "/v1/messages",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> { co_return co_await messages(d, ctx); });
  router.add(
      Method::post, "/v1/messages/count_tokens",
      [&d](RequestContext& ctx) -> asio::awaitable<Response> { co_return co_await count_tokens(d, ctx); });
}

}  // namespace parley::api
