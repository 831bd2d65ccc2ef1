#include "api/assistant.hpp"

#include <boost/json.hpp>

#include "api/json_input.hpp"
#include "api/render.hpp"
#include "crypto/encoding.hpp"

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;
using store::HistoryKind;

namespace {

bj::object render_turn(const store::TurnRecord& t) {
  return bj::object{{"id", t.id},
                    {"user_id", t.user_id},
                    {"input_text", t.input_text},
                    {"gpt_response", t.gpt_response},
                    {"input_tokens", t.input_tokens},
                    {"output_tokens", t.output_tokens},
                    {"processing_time_ms", t.processing_time_ms},
                    {"model_used", t.model_used},
                    {"created_at", iso8601(t.created_at)},
                    {"conversation_id", opt(t.conversation_id)},
                    {"message_id", opt(t.message_id)},
                    {"speech", t.speech},
                    {"tts", bj::object{{"voice", t.tts_voice}, {"language", t.language}}}};
}

bj::object render_sms(const store::SmsRecord& s) {
  return bj::object{{"id", s.id},
                    {"user_id", s.user_id},
                    {"incoming_text", s.incoming_text},
                    {"decision", s.decision},
                    {"reply_text", s.reply_text},
                    {"send_reply", s.send_reply},
                    {"model_used", s.model_used},
                    {"input_tokens", s.input_tokens},
                    {"output_tokens", s.output_tokens},
                    {"created_at", iso8601(s.created_at)}};
}

bj::object render_call(const store::CallRecord& c) {
  return bj::object{{"id", c.id},
                    {"user_id", c.user_id},
                    {"direction", c.direction},
                    {"from_number", c.from_number},
                    {"to_number", c.to_number},
                    {"status", c.status},
                    {"started_at", iso8601(c.started_at)},
                    {"ended_at", opt_time(c.ended_at)},
                    {"duration_seconds", c.duration_seconds},
                    {"conversation_id", opt(c.conversation_id)},
                    {"created_at", iso8601(c.created_at)}};
}

bj::object render_item(const store::HistoryItem& item) {
  bj::object out;
  std::string_view type = "conversation";
  if (const auto* t = std::get_if<store::TurnRecord>(&item.record)) {
    out = render_turn(*t);
  } else if (const auto* c = std::get_if<store::CallRecord>(&item.record)) {
    out = render_call(*c);
    type = "call";
  } else {
    out = render_sms(std::get<store::SmsRecord>(item.record));
    type = "sms";
  }
  out["type"] = type;
  out["at"] = iso8601(item.at);
  return out;
}

Result<std::optional<std::int64_t>> get_time(const bj::object& body, std::string_view name, bool required) {
  auto text = get_string(body, name, required, {1, 64, true});
  if (!text) return std::unexpected(text.error());
  if (!*text) return std::optional<std::int64_t>{};
  auto ms = parse_iso8601(**text);
  if (!ms)
    return validation(std::string(name),
                      std::string(name) + " must be an ISO 8601 time, e.g. 2026-12-06T10:30:00Z");
  return std::optional<std::int64_t>(*ms);
}

Result<std::optional<std::int64_t>> query_time(const RequestContext& ctx, std::string_view name) {
  std::optional<std::string> text = ctx.query(name);
  if (!text) return std::optional<std::int64_t>{};
  auto ms = parse_iso8601(*text);
  if (!ms) return validation(std::string(name), std::string(name) + " must be an ISO 8601 time");
  return std::optional<std::int64_t>(*ms);
}

Result<services::TurnInput> read_turn(const bj::object& body) {
  if (auto s = only_fields(
          body, {"user_id", "text", "conversation_id", "speech", "model", "temperature", "max_tokens"});
      !s) {
    return std::unexpected(s.error());
  }
  services::TurnInput in;
  auto user_id = get_string(body, "user_id", true, {1, 64, true, true});
  if (!user_id) return std::unexpected(user_id.error());
  auto text = get_string(body, "text", true, {0, 1'000'000});
  if (!text) return std::unexpected(text.error());
  auto conversation_id = get_string(body, "conversation_id", false, {1, 64, true, true});
  if (!conversation_id) return std::unexpected(conversation_id.error());
  auto speech = get_bool(body, "speech", false);
  if (!speech) return std::unexpected(speech.error());
  auto model = get_string(body, "model", false, {1, 128, true, true});
  if (!model) return std::unexpected(model.error());
  auto temperature = get_number(body, "temperature", false, 0.0, 2.0);
  if (!temperature) return std::unexpected(temperature.error());
  auto max_tokens = get_int(body, "max_tokens", false, 1, 128'000);
  if (!max_tokens) return std::unexpected(max_tokens.error());
  in.user_id = **user_id;
  in.text = **text;
  in.conversation_id = *conversation_id;
  in.speech = speech->value_or(false);
  in.model = *model;
  in.temperature = *temperature;
  in.max_tokens = *max_tokens;
  return in;
}

Result<services::CallInput> read_call(const bj::object& body) {
  if (auto s = only_fields(body, {"user_id", "direction", "from_number", "to_number", "status", "started_at",
                                  "ended_at", "duration_seconds", "conversation_id"});
      !s) {
    return std::unexpected(s.error());
  }
  services::CallInput in;
  auto user_id = get_string(body, "user_id", true, {1, 64, true, true});
  if (!user_id) return std::unexpected(user_id.error());
  auto direction = get_string(body, "direction", true, {1, 16, true, true});
  if (!direction) return std::unexpected(direction.error());
  auto from = get_string(body, "from_number", true, {1, 32, true, true});
  if (!from) return std::unexpected(from.error());
  auto to = get_string(body, "to_number", true, {1, 32, true, true});
  if (!to) return std::unexpected(to.error());
  auto status = get_string(body, "status", true, {1, 16, true, true});
  if (!status) return std::unexpected(status.error());
  auto started = get_time(body, "started_at", true);
  if (!started) return std::unexpected(started.error());
  auto ended = get_time(body, "ended_at", false);
  if (!ended) return std::unexpected(ended.error());
  auto duration = get_int(body, "duration_seconds", false, 0, 604'800);
  if (!duration) return std::unexpected(duration.error());
  auto conversation_id = get_string(body, "conversation_id", false, {1, 64, true, true});
  if (!conversation_id) return std::unexpected(conversation_id.error());
  in.user_id = **user_id;
  in.direction = **direction;
  in.from_number = **from;
  in.to_number = **to;
  in.status = **status;
  in.started_at = **started;
  in.ended_at = *ended;
  in.duration_seconds = *duration;
  in.conversation_id = *conversation_id;
  return in;
}

asio::awaitable<Response> history(AssistantDeps& d, RequestContext& ctx, unsigned kinds) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  services::HistoryRequest request;
  request.user_id = std::string(ctx.param("user_id"));
  request.kinds = kinds;
  if (std::optional<std::string> limit = ctx.query("limit")) {
    std::optional<std::int64_t> n = to_int(*limit);
    if (!n || *n < 1 || *n > 200)
      co_return error_of(Error(ErrorKind::kValidation, "limit must be a whole number from 1 to 200", "limit"),
                         ctx);
    request.limit = *n;
  }
  auto since = query_time(ctx, "since");
  if (!since) co_return error_of(since.error(), ctx);
  auto until = query_time(ctx, "until");
  if (!until) co_return error_of(until.error(), ctx);
  request.since = *since;
  request.until = *until;
  request.cursor = ctx.query("cursor");
  auto page = co_await d.pool.run([&] { return d.assistant.history(*who, request); });
  if (!page) co_return error_of(page.error(), ctx);
  bj::array items;
  for (const auto& item : page->items) items.push_back(render_item(item));
  co_return http::json_response(StatusCode::ok, bj::object{{"items", std::move(items)},
                                                           {"next_cursor", opt(page->next_cursor)},
                                                           {"limit", request.limit}});
}

}  // namespace

void register_assistant_routes(http::Router& router, AssistantDeps& d) {
  router.add(Method::post, "/api/v1/conversation", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    auto input = read_turn(*body);
    if (!input) co_return error_of(input.error(), ctx);
    auto out = co_await d.assistant.turn(*who, std::move(*input), ctx.request_id, ctx.executor);
    if (!out) co_return error_of(out.error(), ctx);
    bj::object rendered = render_turn(out->turn);
    if (out->audio) {
      rendered["audio"] = bj::object{{"format", out->audio->format},
                                     {"content_type", out->audio->content_type},
                                     {"bytes", out->audio->data.size()},
                                     {"data", crypto::base64_encode(out->audio->data)}};
    }
    Response res = http::json_response(StatusCode::ok, rendered);
    http::set_rate_limit_headers(res, out->limits);
    co_return res;
  });

  router.add(Method::post, "/api/v1/sms/decision", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    if (auto s = only_fields(*body, {"user_id", "text", "model"}); !s) co_return error_of(s.error(), ctx);
    auto user_id = get_string(*body, "user_id", true, {1, 64, true, true});
    if (!user_id) co_return error_of(user_id.error(), ctx);
    auto text = get_string(*body, "text", true, {0, 1'000'000});
    if (!text) co_return error_of(text.error(), ctx);
    auto model = get_string(*body, "model", false, {1, 128, true, true});
    if (!model) co_return error_of(model.error(), ctx);
    services::SmsInput input;
    input.user_id = **user_id;
    input.text = **text;
    input.model = *model;
    auto out = co_await d.assistant.sms_decision(*who, std::move(input), ctx.request_id);
    if (!out) co_return error_of(out.error(), ctx);
    bj::object rendered = render_sms(out->sms);
    rendered["auto_reply_enabled"] = out->auto_reply_enabled;
    Response res = http::json_response(StatusCode::ok, rendered);
    http::set_rate_limit_headers(res, out->limits);
    co_return res;
  });

  router.add(Method::post, "/api/v1/calls", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    auto input = read_call(*body);
    if (!input) co_return error_of(input.error(), ctx);
    auto call = co_await d.pool.run([&] { return d.assistant.add_call(*who, *input); });
    if (!call) co_return error_of(call.error(), ctx);
    co_return http::json_response(StatusCode::created, render_call(*call));
  });

  router.add(Method::get, "/api/v1/calls/{call_id}", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    std::string id(ctx.param("call_id"));
    auto call = co_await d.pool.run([&] { return d.assistant.get_call(*who, id); });
    if (!call) co_return error_of(call.error(), ctx);
    co_return http::json_response(StatusCode::ok, render_call(*call));
  });

  constexpr auto kAll = static_cast<unsigned>(HistoryKind::kConversation) |
                        static_cast<unsigned>(HistoryKind::kCall) | static_cast<unsigned>(HistoryKind::kSms);
  router.add(
      Method::get, "/api/v1/history/{user_id}",
      [&d](RequestContext& ctx) -> asio::awaitable<Response> { co_return co_await history(d, ctx, kAll); });
  router.add(Method::get, "/api/v1/history/{user_id}/conversations",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               co_return co_await history(d, ctx, static_cast<unsigned>(HistoryKind::kConversation));
             });
  router.add(Method::get, "/api/v1/history/{user_id}/calls",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               co_return co_await history(d, ctx, static_cast<unsigned>(HistoryKind::kCall));
             });
  router.add(Method::get, "/api/v1/history/{user_id}/sms",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               co_return co_await history(d, ctx, static_cast<unsigned>(HistoryKind::kSms));
             });
}

}  // namespace parley::api
