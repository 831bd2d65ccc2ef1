// OpenAI's Responses API on parley: POST /v1/responses (streamed and not, background),
// GET/DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items, POST /v1/responses/{id}/cancel,
// and GET /v1/responses/{id}?stream=true&starting_after=N to follow or resume a background
// response's events. Translated to chat completions (src/translate/responses.hpp) or relayed to a
// provider that offers the Responses API; parley keeps the state (services/responses_service.hpp,
// docs/GATEWAY.md "Responses API"). Errors use parley's envelope, which is OpenAI's shape.
#include "api/responses.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <optional>
#include <vector>

#include "api/gateway.hpp"
#include "translate/responses.hpp"
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

// An error after admission: the envelope with the caller's limits.
Response failed(const Error& error, RequestContext& ctx, const RateLimitInfo& limits) {
  Response res = error_of(error, ctx);
  if (!error.rate) http::set_rate_limit_headers(res, limits);
  return res;
}

// A provider's own verdict on the request (400/404/409/413/422), relayed as it came.
Response rejection(unsigned status, std::string body, const RateLimitInfo& limits) {
  Response res{static_cast<StatusCode>(status), 11};
  res.set(bhttp::field::content_type, "application/json");
  http::set_rate_limit_headers(res, limits);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// 200 with a response object's JSON text, the provider's headers and the caller's limits.
Response response_text(std::string text, const std::vector<provider::Header>& headers,
                       const RateLimitInfo* limits) {
  Response res = http::text_response(StatusCode::ok, std::move(text), "application/json");
  for (const auto& [name, value] : headers) res.insert(name, value);
  if (limits != nullptr) http::set_rate_limit_headers(res, *limits);
  return res;
}

Response response_json(const bj::object& response, const std::vector<provider::Header>& headers,
                       const RateLimitInfo* limits) {
  return response_text(bj::serialize(response), headers, limits);
}

// The SSE text of an event relayed from a provider that offers the Responses API, its response
// owned by parley (id, store, previous_response_id); the terminal event's response kept in `final_response`.
std::string relayed_event(const services::ResponsesCall& call, bj::object& event,
                          std::optional<bj::object>& final_response) {
  const bj::value* type = event.if_contains("type");
  const std::string name = type != nullptr && type->is_string() ? std::string(type->get_string()) : "message";
  if (bj::value* response = event.if_contains("response"); response != nullptr && response->is_object()) {
    services::ResponsesService::own(call, response->get_object());
    if (name == "response.completed" || name == "response.incomplete" || name == "response.failed") {
      final_response = response->get_object();
    }
  }
  std::string text = "event: ";
  text.append(name).append("\ndata: ").append(bj::serialize(event)).append("\n\n");
  return text;
}

asio::awaitable<Response> create_foreground(ResponsesDeps& d, RequestContext& ctx, const auth::Principal& who,
                                            services::ResponsesCall& rc,
                                            std::chrono::steady_clock::time_point t0) {
  services::GatewayService& gateway = d.responses.gateway();
  services::GatewayCall& call = rc.call;
  services::Router& router = gateway.router();
  const RateLimitInfo& limits = call.route.admission.info;
  http::StreamWriter& stream = *ctx.stream;

  if (!call.stream) {
    http::CloseWatch watch(stream);
    auto res = co_await router.post(call.route, call.path, std::move(call.body));
    const bool left = watch.finish();
    if (left) {
      gateway.account(who, call, kClientClosed, {}, ms_since(t0));
      co_return http::client_closed_response();
    }
    if (!res) {
      gateway.account(who, call, res.error().status(), {}, ms_since(t0));
      co_return failed(res.error(), ctx, limits);
    }
    services::Usage usage = res->usage.value_or(services::Usage{});
    if (!res->ok()) {
      gateway.account(who, call, static_cast<int>(res->status), usage, ms_since(t0));
      co_return rejection(res->status, std::move(res->body), limits);
    }
    boost::system::error_code ec;
    bj::value answer = bj::parse(res->body, ec, rc.request.storage());
    Result<bj::object> response =
        fail(ErrorKind::kOpenAiApiError, "the provider's answer is not a JSON object");
    if (!ec && answer.is_object()) {
      if (rc.relay) {
        response = std::move(answer.get_object());
        usage = services::usage_of_response(*response);
      } else if (!rc.store && !rc.conversation) {
        // Nothing to keep: the response goes out as written from the answer, no object built (its
        // id, store, background and previous_response_id echo the request as keep() would set them).
        auto text = translate::chat_response_to_responses_text(answer.get_object(), rc.request,
                                                               {rc.id, rc.created_at});
        if (text) {
          gateway.account(who, call, 200, usage, ms_since(t0));
          Response out = response_text(std::move(*text), res->headers, &limits);
          add_answered_by(out, call.route);
          co_return out;
        }
        response = std::unexpected(std::move(text.error()));
      } else {
        response = translate::chat_response_to_responses(answer.get_object(), rc.request,
                                                         {rc.id, rc.created_at}, rc.request.storage());
      }
    }
    if (!response) {
      gateway.account(who, call, response.error().status(), usage, ms_since(t0));
      co_return failed(response.error(), ctx, limits);
    }
    gateway.account(who, call, 200, usage, ms_since(t0));
    bj::object kept = co_await d.responses.keep(who, rc, std::move(*response));
    Response out = response_json(kept, res->headers, &limits);
    add_answered_by(out, call.route);
    co_return out;
  }

  // Streamed: each chat chunk becomes Responses events as it arrives (or, relayed, each event goes
  // as it came). The head goes out with the first events, so a failure before them is an ordinary
  // error answer; after them, response.failed ends the stream.
  std::vector<provider::Header> head_headers;
  call.route.call.on_stream_head = [&head_headers](const std::vector<provider::Header>& h) {
    head_headers = h;
  };
  translate::ResponsesStream translator(rc.request, {rc.id, rc.created_at});
  std::optional<bj::object> relayed;
  std::vector<translate::StreamEvent> events;
  services::Usage usage;
  bool client_gone = false;
  auto start = [&]() -> asio::awaitable<bool> {
    if (stream.started()) co_return true;
    Response head = event_stream_head(head_headers, &limits);
    add_answered_by(head, call.route);
    co_return co_await stream.begin(std::move(head));
  };
  std::string batch;
  auto drain = [&] {
    for (const auto& event : events) translate::append_sse(batch, event);
    events.clear();
  };
  // A translated chunk is parsed into one buffer reused for every chunk: nothing of a chunk
  // outlives its feed (the translator copies what it keeps into its own storage).
  std::vector<unsigned char> chunk_buffer(rc.relay ? 0 : 4096);
  bj::monotonic_resource chunk_memory(chunk_buffer.data(), chunk_buffer.size());
  auto translate_chunk = [&](std::string_view data) {
    {
      boost::system::error_code ec;
      bj::value chunk = bj::parse(data, ec, &chunk_memory);
      if (!ec && chunk.is_object() && !translator.finished()) {
        if (auto u = provider::usage_in(chunk)) usage = *u;
        translator.feed(chunk.get_object(), events);
        drain();
      }
    }
    chunk_memory.release();
  };
  provider::EventSink sink = [&](std::string_view data) -> asio::awaitable<bool> {
    if (!rc.relay) {
      translate_chunk(data);
      co_return true;
    }
    boost::system::error_code ec;
    bj::value chunk = bj::parse(data, ec);
    if (ec || !chunk.is_object()) co_return true;
    batch.append(relayed_event(rc, chunk.get_object(), relayed));
    if (relayed) usage = services::usage_of_response(*relayed);
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
    gateway.account(who, call, kClientClosed, usage, latency);
    co_return http::client_closed_response();
  }
  if (out && out->rejected() && !stream.started()) {
    gateway.account(who, call, static_cast<int>(out->status), usage, latency);
    co_return rejection(out->status, std::move(out->error_body), limits);
  }
  if (!out && !stream.started()) {
    gateway.account(who, call, out.error().status(), usage, latency);
    co_return failed(out.error(), ctx, limits);
  }
  std::optional<bj::object> result;
  if (out && !out->rejected()) {
    if (!rc.relay && !translator.finished()) translator.finish(events);
    gateway.account(who, call, 200, usage, latency);
  } else {
    const Error e = out ? Error(ErrorKind::kOpenAiApiError, "The provider failed mid-stream") : out.error();
    gateway.account(who, call, e.status(), usage, latency);
    if (!rc.relay && !translator.finished()) translator.fail(e, events);
    if (rc.relay)
      batch.append("event: error\ndata: ").append(http::error_body(e, ctx.request_id)).append("\n\n");
  }
  drain();
  if (rc.relay) {
    result = relayed;
  } else if (rc.store || rc.conversation) {  // else nothing keeps the response: no copy of it
    result = translator.response();
  }
  if (result) {
    bj::object answer = std::move(*result);
    co_await d.responses.keep(who, rc, std::move(answer));
  }
  const bool begun = co_await start();
  if (!begun) co_return Response{};
  co_await stream.write(batch);
  co_return Response{};
}

// Writes a background response's events after `seen` (events are numbered from 1; event n has
// sequence_number n - 1) until its end, from the live generation and then from the store, or, when
// another instance generates it, by polling the store until it is over.
asio::awaitable<Response> follow(ResponsesDeps& d, RequestContext& ctx, const auth::Principal& who,
                                 services::ResponseFollow f, std::uint64_t seen,
                                 const RateLimitInfo* limits) {
  http::StreamWriter& stream = *ctx.stream;
  Response head = event_stream_head({}, limits);
  if (!co_await stream.begin(std::move(head))) co_return Response{};
  const std::string id = f.stored.id;
  if (f.live) {
    for (;;) {
      services::Generation::Slice slice = f.live->after(seen);
      if (slice.behind) break;  // over and stored: the rest comes from the store
      if (!slice.pieces.empty()) {
        std::string batch;
        for (const auto& piece : slice.pieces) batch.append(piece);
        seen += slice.pieces.size();
        if (!co_await stream.write(batch)) co_return Response{};
      }
      if (slice.end) co_return Response{};
      if (slice.pieces.empty() && f.live->finished()) break;  // nothing after `seen`
      if (slice.pieces.empty()) {
        bool left = false;
        {
          http::CloseWatch watch(stream);
          co_await f.live->wait(seen, std::chrono::seconds(15));
          left = watch.finish();
        }
        if (left) co_return Response{};
        const bool quiet = f.live->after(seen).pieces.empty() && !f.live->finished();
        if (quiet && !co_await stream.write(": keep-alive\n\n")) co_return Response{};
      }
    }
    auto again = co_await d.responses.record(who, id);
    if (!again) co_return Response{};
    f.stored = std::move(*again);
  } else {
    // Generated elsewhere: poll the store until it is over.
    const auto deadline = std::chrono::steady_clock::now() + d.responses.options().poll_cap;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!services::response_over(f.stored.status) && std::chrono::steady_clock::now() < deadline) {
      timer.expires_after(d.responses.options().poll);
      bool left = false;
      {
        http::CloseWatch watch(stream);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        left = watch.finish();
      }
      if (left) co_return Response{};
      auto again = co_await d.responses.record(who, id);
      if (!again) co_return Response{};
      f.stored = std::move(*again);
    }
  }
  if (!f.stored.events || !f.stored.event_lengths) co_return Response{};
  const std::vector<std::string> pieces = services::replay_pieces(*f.stored.events, *f.stored.event_lengths);
  std::string batch;
  for (std::size_t n = seen + 1; n <= pieces.size(); ++n) batch.append(pieces[n - 1]);
  if (!batch.empty()) co_await stream.write(batch);
  co_return Response{};
}

asio::awaitable<Response> create(ResponsesDeps& d, RequestContext& ctx) {
  const auto t0 = std::chrono::steady_clock::now();
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  // The request, the provider's answer and the response built from them are short-lived trees of
  // small allocations: one monotonic resource per call holds them all, so that allocating is a
  // pointer bump, values hold no reference count and nothing is freed or destroyed one by one.
  // Nothing built in it outlives this call: a background job copies its request out
  // (ResponsesService::start_background), and what is stored is serialized.
  bj::monotonic_resource scratch(4096);
  auto body = http::parse_json_body(ctx, &scratch);
  if (!body) co_return error_of(body.error(), ctx);
  if (!body->is_object())
    co_return error_of(Error(ErrorKind::kBadRequest, "Request body must be a JSON object"), ctx);
  auto prepared = co_await d.responses.prepare(*who, std::move(body->get_object()), ctx.request_id);
  if (!prepared) co_return error_of(prepared.error(), ctx);
  if (!prepared->background) co_return co_await create_foreground(d, ctx, *who, *prepared, t0);

  const RateLimitInfo limits = prepared->call.route.admission.info;
  bool stream = false;
  if (const bj::value* s = prepared->request.if_contains("stream"); s != nullptr && s->is_bool())
    stream = s->get_bool();
  auto executor = co_await asio::this_coro::executor;
  auto started = co_await d.responses.start_background(*who, std::move(*prepared), executor);
  if (!started) co_return failed(started.error(), ctx, limits);
  if (!stream) co_return response_json(started->response, {}, &limits);
  services::ResponseFollow f;
  f.live = started->generation;
  f.stored.id = std::string(started->response.at("id").get_string());
  co_return co_await follow(d, ctx, *who, std::move(f), 0, &limits);
}

Result<std::uint64_t> parse_count(std::string_view text, std::string_view param) {
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || ptr != text.data() + text.size() || n > (std::uint64_t{1} << 53)) {
    return validation(std::string(param), std::string(param) + " must be a whole number");
  }
  return n;
}

asio::awaitable<Response> retrieve(ResponsesDeps& d, RequestContext& ctx) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  const std::string id(ctx.param("id"));
  const std::optional<std::string> stream = ctx.query("stream");
  if (stream && *stream == "true") {
    std::uint64_t seen = 0;
    if (auto after = ctx.query("starting_after")) {
      auto n = parse_count(*after, "starting_after");
      if (!n) co_return error_of(n.error(), ctx);
      seen = *n + 1;  // event n + 1 has sequence_number n
    }
    auto f = co_await d.responses.follow(*who, id);
    if (!f) co_return error_of(f.error(), ctx);
    co_return co_await follow(d, ctx, *who, std::move(*f), seen, nullptr);
  }
  auto response = co_await d.responses.get(*who, id);
  if (!response) co_return error_of(response.error(), ctx);
  co_return http::json_response(StatusCode::ok, *response);
}

asio::awaitable<Response> input_items(ResponsesDeps& d, RequestContext& ctx) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  services::InputItemsQuery q;
  if (auto after = ctx.query("after")) q.after = *after;
  if (auto limit = ctx.query("limit")) {
    auto n = parse_count(*limit, "limit");
    if (!n || *n < 1 || *n > 100)
      co_return error_of(Error(ErrorKind::kValidation, "limit must be a whole number from 1 to 100", "limit"),
                         ctx);
    q.limit = static_cast<std::int64_t>(*n);
  }
  if (auto order = ctx.query("order")) {
    if (*order != "asc" && *order != "desc")
      co_return error_of(Error(ErrorKind::kValidation, "order must be asc or desc", "order"), ctx);
    q.ascending = *order == "asc";
  }
  auto page = co_await d.responses.input_items(*who, std::string(ctx.param("id")), q);
  if (!page) co_return error_of(page.error(), ctx);
  co_return http::json_response(StatusCode::ok, *page);
}

}  // namespace

void register_responses_routes(http::Router& router, ResponsesDeps& d) {
  router.add(Method::post, "/v1/responses",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> { co_return co_await create(d, ctx); });
  router.add(Method::get, "/v1/responses/{id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> { co_return co_await retrieve(d, ctx); });
  router.add(Method::delete_, "/v1/responses/{id}", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto deleted = co_await d.responses.remove(*who, std::string(ctx.param("id")));
    if (!deleted) co_return error_of(deleted.error(), ctx);
    co_return http::json_response(StatusCode::ok, *deleted);
  });
  router.add(
      Method::get, "/v1/responses/{id}/input_items",
      [&d](RequestContext& ctx) -> asio::awaitable<Response> { co_return co_await input_items(d, ctx); });
  router.add(Method::post, "/v1/responses/{id}/cancel",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               auto cancelled = co_await d.responses.cancel(*who, std::string(ctx.param("id")));
               if (!cancelled) co_return error_of(cancelled.error(), ctx);
               co_return http::json_response(StatusCode::ok, *cancelled);
             });
}

}  // namespace parley::api
