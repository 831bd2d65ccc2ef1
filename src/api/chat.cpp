#include "api/chat.hpp"

#include <boost/json.hpp>
#include <chrono>
#include <optional>

#include "api/json_input.hpp"

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;

namespace {

// Asks the model unless the client leaves first; then the provider call is cancelled (nullopt).
asio::awaitable<std::optional<Result<services::ChatOutput>>> ask(ChatDeps& d, RequestContext& ctx,
                                                                 const auth::Principal& who,
                                                                 const services::ChatInput& input) {
  http::CloseWatch watch(*ctx.stream);
  auto out = co_await d.chat.chat(who, input, ctx.request_id);
  if (watch.finish()) co_return std::nullopt;
  co_return out;
}

bj::object render_usage(const services::Usage& u) {
  return bj::object{{"prompt_tokens", u.prompt_tokens},
                    {"completion_tokens", u.completion_tokens},
                    {"total_tokens", u.total_tokens}};
}

// Reads model / temperature / max_tokens shared by every task endpoint.
Status read_options(const bj::object& body, services::ChatInput& input) {
  auto model = get_string(body, "model", false, {1, 128, true});
  if (!model) return std::unexpected(model.error());
  auto temperature = get_number(body, "temperature", false, 0.0, 2.0);
  if (!temperature) return std::unexpected(temperature.error());
  auto max_tokens = get_int(body, "max_tokens", false, 1, 128'000);
  if (!max_tokens) return std::unexpected(max_tokens.error());
  input.model = *model;
  input.temperature = *temperature;
  input.max_tokens = *max_tokens;
  return {};
}

Result<services::ChatInput> read_chat(const bj::object& body, std::size_t max_chars) {
  if (auto s = only_fields(body, {"messages", "model", "temperature", "max_tokens"}); !s) {
    return std::unexpected(s.error());
  }
  services::ChatInput input;
  auto it = body.find("messages");
  if (it == body.end() || !it->value().is_array()) return validation("messages", "messages must be an array");
  for (std::size_t i = 0; i < it->value().as_array().size(); ++i) {
    const auto& m = it->value().as_array()[i];
    std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object()) return validation(param, "each message must be an object with role and content");
    const auto& mo = m.as_object();
    if (auto s = only_fields(mo, {"role", "content", "name"}); !s)
      return validation(param + "." + *s.error().param, s.error().message);
    auto role = get_string(mo, "role", true, {1, 16});
    if (!role) return validation(param + ".role", role.error().message);
    auto content = get_string(mo, "content", true, {0, max_chars * 4});
    if (!content) return validation(param + ".content", content.error().message);
    input.messages.push_back({**role, **content});
  }
  if (auto s = read_options(body, input); !s) return std::unexpected(s.error());
  if (auto s = services::check_messages(input.messages, max_chars); !s) return std::unexpected(s.error());
  return input;
}

// A task's answer with the caller's rate-limit headers.
Response answered(const services::ChatOutput& out, const bj::object& body) {
  Response res = http::json_response(StatusCode::ok, body);
  http::set_rate_limit_headers(res, out.limits);
  return res;
}

Response chat_result(const services::ChatOutput& out) {
  return answered(out, bj::object{{"content", out.content},
                                  {"model", out.model},
                                  {"usage", render_usage(out.usage)},
                                  {"latency_ms", out.latency_ms}});
}

std::string summarize_prompt(std::string_view style, std::int64_t max_length) {
  std::string how = style == "bullet_points" ? "as a list of bullet points"
                    : style == "detailed"    ? "in a detailed paragraph"
                                             : "concisely";
  return fmt::format(
      "Summarize the user's text {} in at most {} words. Reply with the summary only, in the text's "
      "language.",
      how, max_length);
}

std::string translate_prompt(std::string_view source, std::string_view target) {
  if (source == "auto") {
    return fmt::format(
        "Detect the language of the user's text and translate it into {}. Reply with the translation "
        "only.",
        target);
  }
  return fmt::format("Translate the user's text from {} into {}. Reply with the translation only.", source,
                     target);
}

}  // namespace

void register_chat_routes(http::Router& router, ChatDeps& d) {
  router.add(Method::post, "/api/v1/chat", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    auto input = read_chat(*body, d.max_message_chars);
    if (!input) co_return error_of(input.error(), ctx);
    auto asked = co_await ask(d, ctx, *who, *input);
    if (!asked) co_return http::client_closed_response();
    if (!*asked) co_return error_of(asked->error(), ctx);
    co_return chat_result(**asked);
  });

  router.add(Method::post, "/api/v1/chat/stream", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    auto input = read_chat(*body, d.max_message_chars);
    if (!input) co_return error_of(input.error(), ctx);
    // Errors found before the first token are ordinary HTTP errors; after it, one SSE error event.
    const auto t0 = std::chrono::steady_clock::now();
    auto route = co_await d.chat.prepare(*who, *input, ctx.request_id);
    if (!route) co_return error_of(route.error(), ctx);
    http::StreamWriter& stream = *ctx.stream;
    bool client_gone = false;
    auto start = [&]() -> asio::awaitable<bool> {
      if (stream.started()) co_return true;
      Response head{StatusCode::ok, 11};
      head.set(boost::beast::http::field::content_type, "text/event-stream");
      head.set(boost::beast::http::field::cache_control, "no-cache");
      head.set("X-Accel-Buffering", "no");
      http::set_rate_limit_headers(head, route->admission.info);
      co_return co_await stream.begin(std::move(head));
    };
    services::TokenSink sink = [&](std::string_view token) -> asio::awaitable<bool> {
      if (!co_await start()) {
        client_gone = true;
        co_return false;
      }
      std::string event = "data: " + bj::serialize(bj::object{{"token", token}}) + "\n\n";
      if (!co_await stream.write(event)) {
        client_gone = true;
        co_return false;
      }
      co_return true;
    };
    http::CloseWatch watch(stream);
    auto out = co_await d.chat.stream(*who, *route, *input, sink, t0);
    const bool left = watch.finish();
    if (client_gone || left) co_return http::client_closed_response();
    if (!out && !stream.started()) co_return error_of(out.error(), ctx);
    if (!co_await start()) co_return Response{};
    std::string final_event;
    if (out) {
      final_event = "data: " +
                    bj::serialize(bj::object{{"done", true},
                                             {"full_text", out->content},
                                             {"model", out->model},
                                             {"usage", render_usage(out->usage)},
                                             {"latency_ms", out->latency_ms}}) +
                    "\n\n";
    } else {
      final_event = "data: " + http::error_body(out.error(), ctx.request_id) + "\n\n";
    }
    co_await stream.write(final_event);
    co_return Response{};
  });

  router.add(Method::post, "/api/v1/summarize", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    if (auto s = only_fields(*body, {"text", "max_length", "style", "model", "temperature", "max_tokens"});
        !s) {
      co_return error_of(s.error(), ctx);
    }
    auto text = get_string(*body, "text", true, {1, d.max_message_chars * 4});
    if (!text) co_return error_of(text.error(), ctx);
    auto max_length = get_int(*body, "max_length", false, 10, 2000);
    if (!max_length) co_return error_of(max_length.error(), ctx);
    auto style = get_string(*body, "style", false, {1, 32});
    if (!style) co_return error_of(style.error(), ctx);
    std::string st = style->value_or("concise");
    if (st != "concise" && st != "detailed" && st != "bullet_points") {
      co_return error_of(
          Error(ErrorKind::kValidation, "style must be concise, detailed or bullet_points", "style"), ctx);
    }
    services::ChatInput input;
    if (auto s = read_options(*body, input); !s) co_return error_of(s.error(), ctx);
    std::int64_t words = max_length->value_or(150);
    input.messages = {{"system", summarize_prompt(st, words)}, {"user", **text}};
    input.endpoint = "summarize";
    auto asked = co_await ask(d, ctx, *who, input);
    if (!asked) co_return http::client_closed_response();
    auto& out = *asked;
    if (!out) co_return error_of(out.error(), ctx);
    co_return answered(*out, bj::object{{"summary", out->content},
                                        {"style", st},
                                        {"max_length", words},
                                        {"model", out->model},
                                        {"usage", render_usage(out->usage)},
                                        {"latency_ms", out->latency_ms}});
  });

  router.add(Method::post, "/api/v1/translate", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto who = co_await d.authenticator.authenticate(ctx);
    if (!who) co_return error_of(who.error(), ctx);
    auto body = read_object(ctx);
    if (!body) co_return error_of(body.error(), ctx);
    if (auto s = only_fields(
            *body, {"text", "source_language", "target_language", "model", "temperature", "max_tokens"});
        !s) {
      co_return error_of(s.error(), ctx);
    }
    auto text = get_string(*body, "text", true, {1, d.max_message_chars * 4});
    if (!text) co_return error_of(text.error(), ctx);
    auto source = get_string(*body, "source_language", false, {2, 64, true});
    if (!source) co_return error_of(source.error(), ctx);
    auto target = get_string(*body, "target_language", true, {2, 64, true});
    if (!target) co_return error_of(target.error(), ctx);
    services::ChatInput input;
    if (auto s = read_options(*body, input); !s) co_return error_of(s.error(), ctx);
    std::string src = source->value_or("auto");
    input.messages = {{"system", translate_prompt(src, **target)}, {"user", **text}};
    input.endpoint = "translate";
    auto asked = co_await ask(d, ctx, *who, input);
    if (!asked) co_return http::client_closed_response();
    auto& out = *asked;
    if (!out) co_return error_of(out.error(), ctx);
    co_return answered(*out, bj::object{{"translated_text", out->content},
                                        {"source_language", src},
                                        {"target_language", **target},
                                        {"model", out->model},
                                        {"usage", render_usage(out->usage)},
                                        {"latency_ms", out->latency_ms}});
  });
}

}  // namespace parley::api
