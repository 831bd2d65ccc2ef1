#include "api/conversations.hpp"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <limits>

#include "api/answer_feed.hpp"
#include "api/json_input.hpp"
#include "api/render.hpp"

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;
using services::AnswerEnd;
using services::Generation;

namespace {

constexpr std::chrono::milliseconds kKeepAlive{15'000};  // an SSE comment when nothing else is sent
constexpr std::size_t kMaxMetadataBytes = std::size_t{16} * 1024;

// ---- reading -------------------------------------------------------------------------------

Result<std::optional<std::string>> read_metadata(const bj::object& body) {
  auto it = body.find("metadata");
  if (it == body.end() || it->value().is_null()) return std::optional<std::string>();
  if (!it->value().is_object()) return validation("metadata", "metadata must be a JSON object");
  std::string text = bj::serialize(it->value());
  if (text.size() > kMaxMetadataBytes) {
    return validation("metadata",
                      fmt::format("metadata must be at most {} bytes as JSON", kMaxMetadataBytes));
  }
  return std::optional<std::string>(std::move(text));
}

Status check_model(ConversationDeps& d, const std::optional<std::string>& model) {
  if (model && d.chat.providers().find_by_model(*model) == nullptr) {
    return validation("model", fmt::format("Unknown model \"{}\"; allowed: {}", *model,
                                           d.chat.providers().allowed_models()));
  }
  return {};
}

}  // namespace

Result<services::NewConversation> read_new_conversation(ConversationDeps& d, const bj::object& body) {
  if (auto s = only_fields(body, {"title", "system_message", "model", "metadata"}); !s)
    return std::unexpected(s.error());
  services::NewConversation c;
  auto title = get_string(body, "title", false, {1, 200, true, true});
  if (!title) return std::unexpected(title.error());
  auto system = get_string(body, "system_message", false, {0, 32'000});
  if (!system) return std::unexpected(system.error());
  auto model = get_string(body, "model", false, {1, 128, true, true});
  if (!model) return std::unexpected(model.error());
  auto metadata = read_metadata(body);
  if (!metadata) return std::unexpected(metadata.error());
  if (auto s = check_model(d, *model); !s) return std::unexpected(s.error());
  c.title = *title;
  c.system_message = *system;
  c.model = *model;
  c.metadata = *metadata;
  return c;
}

namespace {

// A nullable string field of a PATCH: absent → unchanged, null → cleared.
Result<std::optional<std::optional<std::string>>> read_nullable(const bj::object& body, std::string_view name,
                                                                StringRule rule) {
  auto it = body.find(name);
  if (it == body.end()) return std::optional<std::optional<std::string>>();
  if (it->value().is_null()) return std::optional<std::optional<std::string>>(std::optional<std::string>());
  auto v = get_string(body, name, true, rule);
  if (!v) return std::unexpected(v.error());
  return std::optional<std::optional<std::string>>(*v);
}

Result<store::ConversationUpdate> read_patch(ConversationDeps& d, const bj::object& body) {
  if (auto s = only_fields(body, {"title", "system_message", "model", "metadata"}); !s)
    return std::unexpected(s.error());
  store::ConversationUpdate u;
  auto title = get_string(body, "title", false, {1, 200, true, true});
  if (!title) return std::unexpected(title.error());
  auto system = read_nullable(body, "system_message", {0, 32'000});
  if (!system) return std::unexpected(system.error());
  auto model = read_nullable(body, "model", {1, 128, true, true});
  if (!model) return std::unexpected(model.error());
  if (*model && **model) {
    if (auto s = check_model(d, **model); !s) return std::unexpected(s.error());
  }
  auto metadata = read_metadata(body);
  if (!metadata) return std::unexpected(metadata.error());
  u.title = *title;
  u.system_message = *system;
  u.model = *model;
  if (body.contains("metadata")) u.metadata = metadata->value_or("{}");
  return u;
}

// A list cursor: "<updated_at>.<id>" of the last conversation of the previous page.
std::string make_cursor(const store::ConversationRecord& c) {
  return fmt::format("{}.{}", c.updated_at, c.id);
}

Result<std::pair<std::int64_t, std::string>> parse_cursor(std::string_view text) {
  const std::size_t dot = text.find('.');
  if (dot != std::string_view::npos && dot + 1 < text.size() && text.size() < 128) {
    if (auto at = to_int(text.substr(0, dot))) return std::pair{*at, std::string(text.substr(dot + 1))};
  }
  return validation("cursor", "cursor must be a next_cursor value from an earlier page");
}

}  // namespace

Result<MessageInput> read_message_input(ConversationDeps& d, const bj::object& body, bool content_required,
                                        std::string_view extra) {
  // (An empty `extra` repeats a name already allowed.)
  if (content_required) {
    if (auto s = only_fields(body, {"content", "stream", "model", "temperature", "max_tokens",
                                    extra.empty() ? "content" : extra});
        !s)
      return std::unexpected(s.error());
  } else if (auto s = only_fields(
                 body, {"stream", "model", "temperature", "max_tokens", extra.empty() ? "stream" : extra});
             !s) {
    return std::unexpected(s.error());
  }
  MessageInput in;
  if (content_required) {
    auto content = get_string(body, "content", true, {1, d.max_message_chars, false, false});
    if (!content) return std::unexpected(content.error());
    bool blank = true;
    for (char c : **content) blank = blank && (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    if (blank) return validation("content", "content must not be blank");
    in.content = *content;
  }
  auto stream = get_bool(body, "stream", false);
  if (!stream) return std::unexpected(stream.error());
  auto model = get_string(body, "model", false, {1, 128, true, true});
  if (!model) return std::unexpected(model.error());
  auto temperature = get_number(body, "temperature", false, 0.0, 2.0);
  if (!temperature) return std::unexpected(temperature.error());
  auto max_tokens = get_int(body, "max_tokens", false, 1, 128'000);
  if (!max_tokens) return std::unexpected(max_tokens.error());
  in.stream = stream->value_or(false);
  in.model = *model;
  in.temperature = *temperature;
  in.max_tokens = *max_tokens;
  return in;
}

namespace {

// An optional body: none (or empty) reads as {}.
Result<bj::object> read_optional_object(const RequestContext& ctx) {
  if (ctx.request.body().empty()) return bj::object{};
  return read_object(ctx);
}

// ---- the answer's events -----------------------------------------------------------------------

std::string sse_event(std::string_view message_id, std::uint64_t number, const bj::object& data) {
  return fmt::format("id: {}:{}\ndata: {}\n\n", message_id, number, bj::serialize(data));
}

bj::object token_data(std::string_view piece) {
  return bj::object{{"token", piece}};
}

Response sse_head(const std::optional<store::MessageRecord>& user_message,
                  const store::MessageRecord& answer) {
  Response head{StatusCode::ok, 11};
  head.set(boost::beast::http::field::content_type, "text/event-stream");
  head.set(boost::beast::http::field::cache_control, "no-cache");
  head.set("X-Accel-Buffering", "no");
  head.set("X-Message-Id", answer.id);
  if (user_message) head.set("X-User-Message-Id", user_message->id);
  return head;
}

// The events of an answer as Server-Sent Events ("id: <message_id>:<n>").
class SseSink final : public AnswerSink {
 public:
  explicit SseSink(http::StreamWriter& stream) : stream_(stream) {}

  asio::awaitable<bool> deliver(std::string_view message_id, std::uint64_t first,
                                std::span<const std::string> pieces, const store::MessageRecord* end,
                                std::uint64_t end_number) override {
    std::string batch;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      batch += sse_event(message_id, first + i, token_data(pieces[i]));
    }
    if (end != nullptr) batch += sse_event(message_id, end_number, render_answer_end(*end));
    co_return co_await stream_.write(batch);
  }
  asio::awaitable<bool> idle() override { co_return co_await stream_.write(": keep-alive\n\n"); }
  [[nodiscard]] bool gone() const override { return stream_.client_left(); }
  void watch(bool on) override {
    if (on) {
      watch_.emplace(stream_);
    } else {
      watch_.reset();
    }
  }

 private:
  http::StreamWriter& stream_;
  std::optional<http::CloseWatch> watch_;
};

asio::awaitable<void> stream_live(ConversationDeps& d, http::StreamWriter& stream, const auth::Principal& who,
                                  std::shared_ptr<Generation> g, std::uint64_t seen) {
  SseSink sink(stream);
  StoredAnswers source(d, who);
  co_await follow_live(sink, source, d.answers.registry(), std::move(g), seen);
}

// Waits for a generation's end while the client stays (nullopt when it left; the answer goes on).
asio::awaitable<std::optional<AnswerEnd>> await_end(http::StreamWriter& stream,
                                                    const std::shared_ptr<Generation>& g) {
  http::CloseWatch watch(stream);
  for (;;) {
    Generation::Slice slice = g->after(g->pieces(), 0);
    if (slice.end) co_return slice.end;
    if (stream.client_left()) co_return std::nullopt;
    co_await g->wait(g->pieces(), kKeepAlive);
    if (stream.client_left() && !g->finished()) co_return std::nullopt;
  }
}

// Where a client resumes: ?after=N, else Last-Event-ID ("<message_id>:<N>" or "<N>"), else 0.
Result<std::uint64_t> resume_point(const RequestContext& ctx, std::string_view message_id) {
  if (std::optional<std::string> after = ctx.query("after")) return parse_resume_point(*after, "", "after");
  std::string_view header = ctx.header("Last-Event-ID");
  if (header.empty()) return std::uint64_t{0};
  return parse_resume_point(header, message_id, "Last-Event-ID");
}

// Starts an answer (a new message, or a regeneration) and answers the request: SSE when asked to
// stream, else once the answer is over.
asio::awaitable<Response> answer(ConversationDeps& d, RequestContext& ctx, const auth::Principal& who,
                                 services::AnswerRequest request, bool stream) {
  auto started = co_await d.answers.start(std::move(request), ctx.executor);
  if (!started) co_return error_of(started.error(), ctx);
  if (stream) {
    Response head = sse_head(started->user_message, started->answer);
    http::set_rate_limit_headers(head, started->limits);
    if (!co_await ctx.stream->begin(std::move(head))) co_return Response{};
    co_await stream_live(d, *ctx.stream, who, started->generation, 0);
    co_return Response{};
  }
  auto end = co_await await_end(*ctx.stream, started->generation);
  if (!end) co_return http::client_closed_response();
  if (end->message.status == "failed") {
    Response res = error_of(
        end->error.value_or(Error(ErrorKind::kOpenAiApiError, "The answer could not be completed")), ctx);
    res.set("X-Message-Id", end->message.id);
    http::set_rate_limit_headers(res, started->limits);
    co_return res;
  }
  bj::object body{{"assistant_message", render_message(end->message)}};
  if (started->user_message) body["user_message"] = render_message(*started->user_message);
  Response res = http::json_response(StatusCode::created, body);
  http::set_rate_limit_headers(res, started->limits);
  co_return res;
}

// The conversation of a /api/v1/conversations/{conversation_id}/… route.
asio::awaitable<Result<store::ConversationRecord>> conversation_for(ConversationDeps& d,
                                                                    const RequestContext& ctx,
                                                                    const auth::Principal& who,
                                                                    auth::Access access) {
  std::string id(ctx.param("conversation_id"));
  co_return co_await d.pool.run([&] { return d.conversations.find(who, id, access); });
}

// POST …/end and …/reconnect: the conversation's new status; reconnect also returns what a client
// needs to resume (the newest messages and the answer still being generated).
asio::awaitable<Response> change_status(ConversationDeps& d, RequestContext& ctx, std::string_view status) {
  const bool reconnect = status == "active";
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  std::string user_id(ctx.param("user_id"));
  std::string id(ctx.param("conversation_id"));
  auto changed = co_await d.pool.run([&] { return d.conversations.set_status(*who, user_id, id, status); });
  if (!changed) co_return error_of(changed.error(), ctx);
  bj::object body = render_conversation(*changed);
  if (!reconnect) co_return http::json_response(StatusCode::ok, body);
  // What a client needs to resume: the newest messages and the answer still being generated.
  store::MessageQuery q;
  q.conversation_id = id;
  q.before_seq = std::numeric_limits<std::int64_t>::max();
  q.limit = 20;
  auto recent = co_await d.pool.run([&] { return d.conversations.messages(*who, q); });
  if (!recent) co_return error_of(recent.error(), ctx);
  bj::array messages;
  for (const auto& m : recent->items) messages.push_back(render_message(m));
  bj::value generating = nullptr;
  if (auto g = d.answers.registry().running_in(id); g && g->stored()) {
    generating = bj::object{
        {"message_id", g->message_id()},
        {"events", g->pieces()},
        {"stream_url", fmt::format("/api/v1/conversations/{}/messages/{}/stream", id, g->message_id())}};
  } else {
    for (const auto& m : recent->items) {
      if (m.status != "generating") continue;
      generating =
          bj::object{{"message_id", m.id},
                     {"events", services::replay_pieces(m.content, m.event_lengths).size()},
                     {"stream_url", fmt::format("/api/v1/conversations/{}/messages/{}/stream", id, m.id)}};
    }
  }
  co_return http::json_response(StatusCode::ok, bj::object{{"conversation", std::move(body)},
                                                           {"messages", std::move(messages)},
                                                           {"has_more", recent->has_more},
                                                           {"generating", std::move(generating)}});
}

// POST …/messages (a new message) and POST …/messages/{message_id}/regenerate.
asio::awaitable<Response> ask_for_answer(ConversationDeps& d, RequestContext& ctx, bool regenerate) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  auto body = regenerate ? read_optional_object(ctx) : read_object(ctx);
  if (!body) co_return error_of(body.error(), ctx);
  auto input = read_message_input(d, *body, !regenerate);
  if (!input) co_return error_of(input.error(), ctx);
  auto conversation = co_await conversation_for(d, ctx, *who, auth::Access::kWrite);
  if (!conversation) co_return error_of(conversation.error(), ctx);
  services::AnswerRequest request;
  request.who = *who;
  request.conversation = std::move(*conversation);
  request.content = input->content;
  if (regenerate) request.regenerate_message_id = std::string(ctx.param("message_id"));
  request.model = input->model;
  request.temperature = input->temperature;
  request.max_tokens = input->max_tokens;
  request.request_id = ctx.request_id;
  co_return co_await answer(d, ctx, *who, std::move(request), input->stream);
}

}  // namespace

asio::awaitable<std::optional<store::MessageRecord>> StoredAnswers::read(std::string conversation_id,
                                                                         std::string message_id) {
  auto m = co_await d_.pool.run(
      [&] { return d_.conversations.message(who_, conversation_id, message_id, auth::Access::kRead); });
  if (!m) co_return std::nullopt;
  co_return std::move(*m);
}

void register_conversation_routes(http::Router& router, ConversationDeps& d) {
  // ---- /api/v1/users/{user_id}/conversations ----
  router.add(Method::post, "/api/v1/users/{user_id}/conversations",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               auto body = read_optional_object(ctx);
               if (!body) co_return error_of(body.error(), ctx);
               auto input = read_new_conversation(d, *body);
               if (!input) co_return error_of(input.error(), ctx);
               std::string user_id(ctx.param("user_id"));
               auto created =
                   co_await d.pool.run([&] { return d.conversations.create(*who, user_id, *input); });
               if (!created) co_return error_of(created.error(), ctx);
               co_return http::json_response(StatusCode::created, render_conversation(*created));
             });

  router.add(Method::get, "/api/v1/users/{user_id}/conversations",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               auto page = read_page(ctx, 20, 100);
               if (!page) co_return error_of(page.error(), ctx);
               store::ConversationQuery q;
               q.user_id = std::string(ctx.param("user_id"));
               q.page = {page->limit, page->offset};
               if (auto status = ctx.query("status")) {
                 if (*status != "active" && *status != "ended") {
                   co_return error_of(validation("status", "status must be active or ended").error(), ctx);
                 }
                 q.status = *status;
               }
               if (auto search = ctx.query("q")) {
                 if (search->size() > 200)
                   co_return error_of(validation("q", "q must be at most 200 characters").error(), ctx);
                 if (!search->empty()) q.search = *search;
               }
               if (auto cursor = ctx.query("cursor")) {
                 auto after = parse_cursor(*cursor);
                 if (!after) co_return error_of(after.error(), ctx);
                 q.after = *after;
               }
               auto found = co_await d.pool.run([&] { return d.conversations.list(*who, q); });
               if (!found) co_return error_of(found.error(), ctx);
               bj::object body = render_page(*found, page->limit, page->offset, render_conversation);
               const bool more = static_cast<std::int64_t>(found->items.size()) == page->limit &&
                                 (q.after || page->offset + page->limit < found->total);
               body["next_cursor"] = more && !found->items.empty()
                                         ? bj::value(make_cursor(found->items.back()))
                                         : bj::value(nullptr);
               co_return http::json_response(StatusCode::ok, body);
             });

  router.add(Method::get, "/api/v1/users/{user_id}/conversations/recent",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               auto page = read_page(ctx, 10, 50);
               if (!page) co_return error_of(page.error(), ctx);
               store::ConversationQuery q;
               q.user_id = std::string(ctx.param("user_id"));
               q.page = {page->limit, 0};
               auto found = co_await d.pool.run([&] { return d.conversations.list(*who, q); });
               if (!found) co_return error_of(found.error(), ctx);
               bj::array items;
               for (const auto& c : found->items) items.push_back(render_conversation(c));
               co_return http::json_response(StatusCode::ok, bj::object{{"items", std::move(items)}});
             });

  router.add(Method::get, "/api/v1/users/{user_id}/conversations/{conversation_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string user_id(ctx.param("user_id"));
               std::string id(ctx.param("conversation_id"));
               auto found = co_await d.pool.run(
                   [&] { return d.conversations.get(*who, user_id, id, auth::Access::kRead); });
               if (!found) co_return error_of(found.error(), ctx);
               bj::object body = render_conversation(*found);
               auto g = d.answers.registry().running_in(id);
               if (g && !g->stored()) g = nullptr;
               body["generating_message_id"] = g ? bj::value(g->message_id()) : bj::value(nullptr);
               co_return http::json_response(StatusCode::ok, body);
             });

  router.add(Method::patch, "/api/v1/users/{user_id}/conversations/{conversation_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               auto body = read_object(ctx);
               if (!body) co_return error_of(body.error(), ctx);
               auto patch = read_patch(d, *body);
               if (!patch) co_return error_of(patch.error(), ctx);
               std::string user_id(ctx.param("user_id"));
               std::string id(ctx.param("conversation_id"));
               auto updated =
                   co_await d.pool.run([&] { return d.conversations.update(*who, user_id, id, *patch); });
               if (!updated) co_return error_of(updated.error(), ctx);
               co_return http::json_response(StatusCode::ok, render_conversation(*updated));
             });

  router.add(Method::delete_, "/api/v1/users/{user_id}/conversations/{conversation_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string user_id(ctx.param("user_id"));
               std::string id(ctx.param("conversation_id"));
               // An answer being generated stops first; then nothing of the conversation is left.
               if (auto g = d.answers.registry().running_in(id)) {
                 auto allowed = co_await d.pool.run(
                     [&] { return d.conversations.get(*who, user_id, id, auth::Access::kWrite); });
                 if (!allowed) co_return error_of(allowed.error(), ctx);
                 g->request_cancel();
                 co_await await_end(*ctx.stream, g);
               }
               auto removed = co_await d.pool.run([&] { return d.conversations.remove(*who, user_id, id); });
               if (!removed) co_return error_of(removed.error(), ctx);
               co_return Response{StatusCode::no_content, 11};
             });

  router.add(Method::post, "/api/v1/users/{user_id}/conversations/{conversation_id}/end",
             [&d](RequestContext& ctx) { return change_status(d, ctx, "ended"); });
  router.add(Method::post, "/api/v1/users/{user_id}/conversations/{conversation_id}/reconnect",
             [&d](RequestContext& ctx) { return change_status(d, ctx, "active"); });

  router.add(Method::get, "/api/v1/users/{user_id}/conversations/{conversation_id}/validate",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string user_id(ctx.param("user_id"));
               std::string id(ctx.param("conversation_id"));
               auto found = co_await d.pool.run(
                   [&] { return d.conversations.get(*who, user_id, id, auth::Access::kRead); });
               if (!found) co_return error_of(found.error(), ctx);
               const bool writable = auth::authorize_owned(*who, auth::Access::kWrite, user_id).has_value();
               co_return http::json_response(StatusCode::ok,
                                             bj::object{{"valid", true},
                                                        {"conversation_id", found->id},
                                                        {"user_id", found->user_id},
                                                        {"status", found->status},
                                                        {"can_send", writable && found->status == "active"}});
             });

  router.add(Method::get, "/api/v1/users/{user_id}/conversations/{conversation_id}/stats",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string user_id(ctx.param("user_id"));
               std::string id(ctx.param("conversation_id"));
               auto stats = co_await d.pool.run([&] { return d.conversations.stats(*who, user_id, id); });
               if (!stats) co_return error_of(stats.error(), ctx);
               bj::object body = render_conversation_stats(*stats);
               body["conversation_id"] = id;
               co_return http::json_response(StatusCode::ok, body);
             });

  // ---- /api/v1/conversations/{conversation_id}/messages ----
  router.add(Method::post, "/api/v1/conversations/{conversation_id}/messages",
             [&d](RequestContext& ctx) { return ask_for_answer(d, ctx, false); });

  router.add(
      Method::get, "/api/v1/conversations/{conversation_id}/messages",
      [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        auto who = co_await d.authenticator.authenticate(ctx);
        if (!who) co_return error_of(who.error(), ctx);
        store::MessageQuery q;
        q.conversation_id = std::string(ctx.param("conversation_id"));
        auto page = read_page(ctx, 50, 200);
        if (!page) co_return error_of(page.error(), ctx);
        if (ctx.query("offset")) {
          co_return error_of(validation("offset", "messages page with before / after (seq cursors)").error(),
                             ctx);
        }
        q.limit = page->limit;
        for (auto [name, field] : {std::pair{"before", &q.before_seq}, std::pair{"after", &q.after_seq}}) {
          if (auto v = ctx.query(name)) {
            auto n = to_int(*v);
            if (!n || *n < 0)
              co_return error_of(validation(name, fmt::format("{} must be a message seq", name)).error(),
                                 ctx);
            *field = *n;
          }
        }
        if (auto all = ctx.query("include_superseded")) q.include_inactive = *all == "true" || *all == "1";
        auto found = co_await d.pool.run([&] { return d.conversations.messages(*who, q); });
        if (!found) co_return error_of(found.error(), ctx);
        bj::array items;
        for (const auto& m : found->items) items.push_back(render_message(m));
        bj::object body{{"items", std::move(items)}, {"has_more", found->has_more}, {"limit", q.limit}};
        body["first_seq"] = found->items.empty() ? bj::value(nullptr) : bj::value(found->items.front().seq);
        body["last_seq"] = found->items.empty() ? bj::value(nullptr) : bj::value(found->items.back().seq);
        co_return http::json_response(StatusCode::ok, body);
      });

  router.add(Method::get, "/api/v1/conversations/{conversation_id}/messages/{message_id}",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               std::string message_id(ctx.param("message_id"));
               auto m = co_await d.pool.run(
                   [&] { return d.conversations.message(*who, id, message_id, auth::Access::kRead); });
               if (!m) co_return error_of(m.error(), ctx);
               co_return http::json_response(StatusCode::ok, render_message(*m));
             });

  router.add(Method::get, "/api/v1/conversations/{conversation_id}/messages/{message_id}/siblings",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               std::string message_id(ctx.param("message_id"));
               auto found =
                   co_await d.pool.run([&] { return d.conversations.siblings(*who, id, message_id); });
               if (!found) co_return error_of(found.error(), ctx);
               bj::array items;
               for (const auto& m : *found) items.push_back(render_message(m));
               co_return http::json_response(StatusCode::ok, bj::object{{"items", std::move(items)}});
             });

  router.add(Method::get, "/api/v1/conversations/{conversation_id}/messages/{message_id}/stream",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               std::string message_id(ctx.param("message_id"));
               auto m = co_await d.pool.run(
                   [&] { return d.conversations.message(*who, id, message_id, auth::Access::kRead); });
               if (!m) co_return error_of(m.error(), ctx);
               if (m->role != "assistant") {
                 co_return error_of(validation("message_id", "Only an answer has a stream").error(), ctx);
               }
               auto seen = resume_point(ctx, message_id);
               if (!seen) co_return error_of(seen.error(), ctx);
               if (!co_await ctx.stream->begin(sse_head(std::nullopt, *m))) co_return Response{};
               if (auto g = d.answers.registry().find(message_id)) {
                 co_await stream_live(d, *ctx.stream, *who, std::move(g), *seen);
               } else {
                 SseSink sink(*ctx.stream);
                 StoredAnswers source(d, *who);
                 co_await follow_stored(sink, source, d.answers.registry(), std::move(*m), *seen);
               }
               co_return Response{};
             });

  router.add(Method::post, "/api/v1/conversations/{conversation_id}/messages/{message_id}/regenerate",
             [&d](RequestContext& ctx) { return ask_for_answer(d, ctx, true); });

  router.add(Method::post, "/api/v1/conversations/{conversation_id}/messages/{message_id}/cancel",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               auto who = co_await d.authenticator.authenticate(ctx);
               if (!who) co_return error_of(who.error(), ctx);
               std::string id(ctx.param("conversation_id"));
               std::string message_id(ctx.param("message_id"));
               auto m = co_await d.pool.run(
                   [&] { return d.conversations.message(*who, id, message_id, auth::Access::kWrite); });
               if (!m) co_return error_of(m.error(), ctx);
               auto g = d.answers.registry().find(message_id);
               if (g && g->request_cancel()) {
                 auto end = co_await await_end(*ctx.stream, g);
                 if (!end) co_return http::client_closed_response();
                 co_return http::json_response(StatusCode::ok, render_message(end->message));
               }
               if (m->status == "generating") {
                 co_return error_of(
                     Error(ErrorKind::kConflict,
                           "The answer is being generated by another parley instance; cancel it there"),
                     ctx);
               }
               co_return error_of(
                   Error(ErrorKind::kConflict,
                         fmt::format("The answer is not being generated (status {})", m->status)),
                   ctx);
             });
}

}  // namespace parley::api
