#include "api/realtime.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json.hpp>
#include <chrono>

#include "api/answer_feed.hpp"
#include "api/deps.hpp"
#include "api/json_input.hpp"
#include "api/render.hpp"
#include "core/text.hpp"
#include "http/websocket.hpp"

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;
using services::Generation;
using SteadyClock = std::chrono::steady_clock;

RealtimeCounters::Admission RealtimeCounters::acquire(const std::string& key, std::size_t per_key, bool anon,
                                                      const RealtimeOptions& options) {
  std::lock_guard lock(mutex_);
  if (all.load() >= options.max_connections || (anon && anonymous.load() >= options.anonymous_connections)) {
    return Admission::kTotalFull;
  }
  std::size_t& n = per_key_[key];
  if (n >= per_key) {
    if (n == 0) per_key_.erase(key);
    return Admission::kKeyFull;
  }
  ++n;
  all.fetch_add(1);
  if (anon) anonymous.fetch_add(1);
  opened.fetch_add(1, std::memory_order_relaxed);
  return Admission::kAdmitted;
}

void RealtimeCounters::release(const std::string& key, bool anon) {
  std::lock_guard lock(mutex_);
  if (auto it = per_key_.find(key); it != per_key_.end() && --it->second == 0) per_key_.erase(it);
  all.fetch_sub(1);
  if (anon) anonymous.fetch_sub(1);
}

namespace {

constexpr std::size_t kMaxClientId = 128;
constexpr std::string_view kSubprotocol = "parley.chat";
constexpr std::string_view kBearerPrefix = "bearer.";

// Messages per minute as GCRA: a bucket of `per_minute` messages refilled at `per_minute` a
// minute — a client may send its minute's allowance at once, then one message every
// 60 s / per_minute. One time point per connection, no counters to reset at window edges.
class Pacer {
 public:
  bool allow(std::size_t per_minute, SteadyClock::time_point now, std::chrono::milliseconds& retry_after) {
    const auto interval =
        std::chrono::nanoseconds(std::chrono::minutes(1)) / std::max<std::size_t>(per_minute, 1);
    const auto burst = interval * static_cast<std::int64_t>(std::max<std::size_t>(per_minute, 1));
    if (next_ < now) next_ = now;
    const auto after = next_ + interval;
    if (after - now > burst) {
      retry_after = std::chrono::ceil<std::chrono::milliseconds>(after - burst - now);
      return false;
    }
    next_ = after;
    return true;
  }

 private:
  SteadyClock::time_point next_{};
};

// {"type":…,"id":…,"data":…}; `id` is the client's, as it sent it.
std::string frame(std::string_view type, const std::optional<bj::value>& id, bj::object data) {
  bj::object f;
  f.reserve(3);
  f.emplace("type", type);
  if (id) f.emplace("id", *id);
  f.emplace("data", std::move(data));
  return bj::serialize(f);
}

bj::object error_data(const Error& e, std::string_view request_id) {
  bj::object data{{"code", e.info().code},
                  {"message", e.message},
                  {"type", e.info().type},
                  {"param", e.param ? bj::value(*e.param) : bj::value(nullptr)},
                  {"request_id", request_id}};
  return data;
}

// The ids a message names: only `allowed` fields in `data`; conversation_id / message_id, when
// read, are one-line strings of 1 to 64 characters.
struct Ids {
  std::string conversation_id;            // empty unless read
  std::optional<std::string> message_id;  // unset unless given
};
Result<Ids> read_ids(const bj::object& data, std::initializer_list<std::string_view> allowed,
                     bool conversation, bool message, bool message_required) {
  if (auto s = only_fields(data, allowed); !s) return std::unexpected(s.error());
  Ids ids;
  if (conversation) {
    auto c = get_string(data, "conversation_id", true, {1, 64, true, true});
    if (!c) return std::unexpected(c.error());
    ids.conversation_id = std::move(**c);
  }
  if (message) {
    auto m = get_string(data, "message_id", message_required, {1, 64, true, true});
    if (!m) return std::unexpected(m.error());
    ids.message_id = std::move(*m);
  }
  return ids;
}

class ChatSocket;

// A followed answer's events as WebSocket messages: `token` per piece, then `message_complete`
// (or `error` for a failed answer). Waits while the connection's send queue is more than half
// full, so a slow reader slows only its own feed.
class SocketSink final : public AnswerSink {
 public:
  SocketSink(http::WebSocket& socket, const std::optional<bj::value>& id, std::string conversation_id,
             std::string request_id, bool pieces)
      : socket_(socket),
        conversation_id_(std::move(conversation_id)),
        request_id_(std::move(request_id)),
        pieces_(pieces) {
    if (id) id_json_ = ",\"id\":" + bj::serialize(*id);
    id_ = id;
  }

  asio::awaitable<bool> deliver(std::string_view message_id, std::uint64_t first,
                                std::span<const std::string> pieces, const store::MessageRecord* end,
                                std::uint64_t end_number) override {
    for (std::size_t i = 0; pieces_ && i < pieces.size(); ++i) {
      std::string out;
      out.reserve(128 + pieces[i].size() + id_json_.size());
      out.append(R"({"type":"token")").append(id_json_).append(R"(,"data":{"conversation_id":")");
      out.append(conversation_id_).append(R"(","message_id":")").append(message_id);
      out.append(R"(","event":)").append(std::to_string(first + i)).append(R"(,"token":)");
      out.append(bj::serialize(bj::string_view(pieces[i].data(), pieces[i].size()))).append("}}");
      if (!co_await socket_.writable(out.size())) co_return false;
      socket_.send(std::move(out));
    }
    if (end != nullptr) {
      bj::object data = render_answer_end(*end);
      data["conversation_id"] = conversation_id_;
      data["event"] = end_number;
      if (end->status == "failed") {
        // The error's fields beside the answer's.
        bj::object error = std::move(data["error"].as_object());
        data.erase("error");
        for (auto& [k, v] : error) data[k] = std::move(v);
        if (!data.contains("param")) data["param"] = nullptr;
        data["request_id"] = request_id_;
      }
      std::string out = frame(end->status == "failed" ? "error" : "message_complete", id_, std::move(data));
      if (!co_await socket_.writable(out.size())) co_return false;
      socket_.send(std::move(out));
    }
    socket_.touch();
    co_return socket_.open();
  }
  asio::awaitable<bool> idle() override {
    socket_.touch();
    co_return socket_.open();
  }
  [[nodiscard]] bool gone() const override { return !socket_.open(); }
  void watch(bool /*on*/) override {}

 private:
  http::WebSocket& socket_;
  std::optional<bj::value> id_;
  std::string id_json_;
  std::string conversation_id_;
  std::string request_id_;
  bool pieces_;
};

// Answers of anonymous conversations, kept in memory.
class MemorySource final : public AnswerSource {
 public:
  explicit MemorySource(services::AnonymousChat& chat) : chat_(chat) {}
  asio::awaitable<std::optional<store::MessageRecord>> read(std::string conversation_id,
                                                            std::string message_id) override {
    auto m = chat_.message(conversation_id, message_id);
    if (!m) co_return std::nullopt;
    co_return std::move(*m);
  }

 private:
  services::AnonymousChat& chat_;
};

// One connection's conversation protocol (docs/REALTIME.md, "Messages").
class ChatSocket final : public http::WebSocketHandler, public std::enable_shared_from_this<ChatSocket> {
 public:
  ChatSocket(RealtimeDeps& d, std::optional<auth::Principal> who, std::string credential, std::string slot,
             std::string request_id)
      : d_(d),
        who_(std::move(who)),
        credential_(std::move(credential)),
        slot_(std::move(slot)),
        request_id_(std::move(request_id)) {}
  ChatSocket(const ChatSocket&) = delete;
  ChatSocket& operator=(const ChatSocket&) = delete;
  ~ChatSocket() override { d_.counters.release(slot_, anonymous()); }

  void on_open(std::shared_ptr<http::WebSocket> socket) override {
    ws_ = std::move(socket);
    schedule_expiry();
    const RealtimeLimits& l = limits();
    ws_->send(frame("connected", std::nullopt,
                    bj::object{{"connection_id", request_id_},
                               {"user_id", anonymous() ? bj::value(nullptr) : bj::value(who_->user_id)},
                               {"anonymous", anonymous()},
                               {"expires_at", expires_at()},
                               {"limits", bj::object{{"messages_per_minute", l.messages_per_minute},
                                                     {"max_generations", l.max_generations},
                                                     {"max_message_bytes", d_.options.max_message_bytes}}}}));
  }

  asio::awaitable<void> on_message(std::string_view text, bool binary) override;

  void on_drain() override {
    draining_ = true;
    if (followers_ == 0) ws_->close(http::close_code::kGoingAway, "server shutting down");
  }

  void on_close() override {}

 private:
  [[nodiscard]] bool anonymous() const { return !who_.has_value(); }
  [[nodiscard]] const RealtimeLimits& limits() const {
    return anonymous() ? d_.options.guest : d_.options.user;
  }
  [[nodiscard]] services::GenerationRegistry& registry() {
    return anonymous() ? d_.anonymous.registry() : d_.conversations.answers.registry();
  }
  [[nodiscard]] bj::value expires_at() const {
    if (anonymous() || who_->token_expires_at <= 0) return nullptr;
    return bj::value(iso8601(who_->token_expires_at * 1000));
  }

  // The access token's expiry closes the connection (4001) unless a reauth moves it.
  void schedule_expiry() {
    if (anonymous() || who_->token_expires_at <= 0) {
      ws_->close_at(SteadyClock::time_point::max(), 0, {});
      return;
    }
    const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    const std::int64_t left_ms = std::max<std::int64_t>(0, who_->token_expires_at * 1000 - now_ms);
    ws_->close_at(SteadyClock::now() + std::chrono::milliseconds(left_ms), http::close_code::kTokenExpired,
                  "access token expired; send reauth before expires_at");
  }

  // Sends a reply once it fits the send queue (a client that does not read stops being read).
  asio::awaitable<void> reply(std::string out) {
    const bool fits = co_await ws_->writable(out.size());
    if (fits) ws_->send(std::move(out));
  }

  asio::awaitable<void> send_error(std::optional<bj::value> id, Error e, std::string request_id) {
    co_await send_error(std::move(id), std::move(e), std::move(request_id), bj::object{});
  }
  asio::awaitable<void> send_error(std::optional<bj::value> id, Error e, std::string request_id,
                                   bj::object extra) {
    d_.counters.errors.fetch_add(1, std::memory_order_relaxed);
    bj::object data = error_data(e, request_id);
    // A limit's refusal says when to try again (docs/LIMITS.md).
    if (e.rate && e.rate->retry_after_ms > 0) data["retry_after_ms"] = e.rate->retry_after_ms;
    for (auto& [k, v] : extra) data[k] = std::move(v);
    co_await reply(frame("error", id, std::move(data)));
  }

  asio::awaitable<void> start_conversation(std::optional<bj::value> id, bj::object data, std::string rid);
  asio::awaitable<void> send_message(std::optional<bj::value> id, bj::object data, std::string rid);
  asio::awaitable<void> end_conversation(std::optional<bj::value> id, bj::object data, std::string rid);
  asio::awaitable<void> reconnect(std::optional<bj::value> id, bj::object data, std::string rid);
  asio::awaitable<void> cancel(std::optional<bj::value> id, bj::object data, std::string rid);
  asio::awaitable<void> reauth(std::optional<bj::value> id, bj::object data, std::string rid);

  // Streams an answer to this connection on a coroutine of its own (messages keep being read).
  void follow(std::optional<bj::value> id, std::string conversation_id,
              std::shared_ptr<Generation> generation, std::optional<store::MessageRecord> stored,
              std::uint64_t seen, std::string rid, bool counts, bool pieces);
  static asio::awaitable<void> run_follow(std::shared_ptr<ChatSocket> self, std::optional<bj::value> id,
                                          std::string conversation_id, std::shared_ptr<Generation> generation,
                                          std::optional<store::MessageRecord> stored, std::uint64_t seen,
                                          std::string rid, bool counts, bool pieces);

  // The conversation this connection's user may write to (stored or anonymous).
  asio::awaitable<Result<store::ConversationRecord>> writable_conversation(
      const std::string& conversation_id);
  asio::awaitable<Result<store::ConversationRecord>> set_status(const std::string& conversation_id,
                                                                std::string_view status);

  RealtimeDeps& d_;
  std::optional<auth::Principal> who_;  // nullopt: anonymous
  std::string credential_;              // checked again before each request (held in memory only)
  std::string slot_;
  std::string request_id_;  // the upgrade request's; each message's is "<this>.<n>"
  std::uint64_t message_number_ = 0;
  std::shared_ptr<http::WebSocket> ws_;
  Pacer pacer_;
  std::size_t refused_in_row_ = 0;
  std::size_t streaming_ = 0;  // answers started here, still streaming
  std::size_t followers_ = 0;  // every feed running (drain waits for them)
  bool draining_ = false;
};

asio::awaitable<void> ChatSocket::on_message(std::string_view text, bool binary) {
  d_.counters.messages.fetch_add(1, std::memory_order_relaxed);
  const std::string rid = fmt::format("{}.{}", request_id_, ++message_number_);
  const RealtimeLimits& l = limits();
  std::chrono::milliseconds retry_after{0};
  const bool paced = pacer_.allow(l.messages_per_minute, SteadyClock::now(), retry_after);
  if (!paced && ++refused_in_row_ > l.messages_per_minute) {
    ws_->close(http::close_code::kPolicy, "too many messages over the rate limit");
    co_return;
  }
  // The client's id, when the message is a JSON object with a valid one, answers every error.
  Result<bj::value> parsed = binary
                                 ? Result<bj::value>(fail(ErrorKind::kBadRequest,
                                                          "Binary messages are not accepted; send JSON text"))
                                 : http::parse_json_text(text, "The message");
  std::optional<bj::value> id;
  bool id_valid = true;
  if (parsed && parsed->is_object()) {
    const bj::object& o = parsed->as_object();
    if (auto it = o.find("id"); it != o.end() && !it->value().is_null()) {
      const bj::value& v = it->value();
      id_valid = (v.is_string() && !v.as_string().empty() && v.as_string().size() <= kMaxClientId) ||
                 v.is_int64() || v.is_uint64();
      if (id_valid) id = v;
    }
  }
  if (!paced) {
    bj::object fields = bj::object{{"retry_after_ms", retry_after.count()}};
    co_await send_error(id,
                        Error(ErrorKind::kRateLimited,
                              fmt::format("At most {} messages a minute on one connection; retry in {} ms",
                                          l.messages_per_minute, retry_after.count())),
                        rid, fields);
    co_return;
  }
  refused_in_row_ = 0;
  if (!parsed) {
    co_await send_error(std::nullopt, parsed.error(), rid);
    co_return;
  }
  if (!parsed->is_object()) {
    co_await send_error(std::nullopt,
                        Error(ErrorKind::kBadRequest, "A message is a JSON object with a \"type\""), rid);
    co_return;
  }
  if (!id_valid) {
    co_await send_error(
        std::nullopt,
        Error(ErrorKind::kValidation, "id must be an integer or a string of 1 to 128 characters", "id"), rid);
    co_return;
  }
  bj::object& message = parsed->as_object();
  if (auto s = only_fields(message, {"type", "id", "data"}); !s) {
    co_await send_error(id, s.error(), rid);
    co_return;
  }
  auto type_it = message.find("type");
  if (type_it == message.end() || !type_it->value().is_string()) {
    co_await send_error(id, Error(ErrorKind::kValidation, "type is required (a string)", "type"), rid);
    co_return;
  }
  const std::string type(type_it->value().as_string());
  bj::object data;
  if (auto it = message.find("data"); it != message.end() && !it->value().is_null()) {
    if (!it->value().is_object()) {
      co_await send_error(id, Error(ErrorKind::kValidation, "data must be a JSON object", "data"), rid);
      co_return;
    }
    data = std::move(it->value().as_object());
  }

  if (type != "ping" && type != "reauth" && !anonymous()) {
    // A deactivated or deleted user, a revoked key, a changed role: as at the next HTTP request.
    auto who = co_await d_.conversations.authenticator.authenticate_credential(credential_);
    if (!who || who->user_id != who_->user_id) {
      Error why = who ? Error(ErrorKind::kUnauthorized, "The credentials changed owner") : who.error();
      co_await send_error(id, std::move(why), rid);
      ws_->close(http::close_code::kCredentialsRevoked, "credentials no longer valid");
      co_return;
    }
    who_ = std::move(*who);
  }
  if (type == "ping") {
    bj::object fields = bj::object{{"time", iso8601(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                        std::chrono::system_clock::now().time_since_epoch())
                                                        .count())}};
    co_await reply(frame("pong", id, fields));
  } else if (type == "start_conversation") {
    co_await start_conversation(std::move(id), std::move(data), rid);
  } else if (type == "send_message") {
    co_await send_message(std::move(id), std::move(data), rid);
  } else if (type == "end_conversation") {
    co_await end_conversation(std::move(id), std::move(data), rid);
  } else if (type == "reconnect") {
    co_await reconnect(std::move(id), std::move(data), rid);
  } else if (type == "cancel") {
    co_await cancel(std::move(id), std::move(data), rid);
  } else if (type == "reauth") {
    co_await reauth(std::move(id), std::move(data), rid);
  } else {
    co_await send_error(
        id,
        Error(ErrorKind::kBadRequest,
              fmt::format("Unknown message type \"{}\"; expected start_conversation, send_message, "
                          "end_conversation, reconnect, cancel, reauth or ping",
                          type.substr(0, 64)),
              "type"),
        rid);
  }
}

asio::awaitable<void> ChatSocket::start_conversation(std::optional<bj::value> id, bj::object data,
                                                     std::string rid) {
  if (auto it = data.find("user_id"); it != data.end()) {
    // Seed 004's clients name the user: it must be this connection's.
    const bool mine = !anonymous() && it->value().is_string() && it->value().as_string() == who_->user_id;
    if (!mine && !anonymous()) {
      co_await send_error(
          id, Error(ErrorKind::kForbidden, "user_id is not this connection's user", "user_id"), rid);
      co_return;
    }
    data.erase(it);
  }
  auto input = read_new_conversation(d_.conversations, data);
  if (!input) {
    co_await send_error(id, input.error(), rid);
    co_return;
  }
  Result<store::ConversationRecord> created;
  if (anonymous()) {
    if (input->model) {
      co_await send_error(
          id, Error(ErrorKind::kValidation, "Anonymous chat uses the deployment's model", "model"), rid);
      co_return;
    }
    created = d_.anonymous.start(*input);
  } else {
    auto& c = d_.conversations;
    created = co_await c.pool.run([&] { return c.conversations.create(*who_, who_->user_id, *input); });
  }
  if (!created) {
    co_await send_error(id, created.error(), rid);
    co_return;
  }
  bj::object fields =
      bj::object{{"conversation_id", created->id}, {"conversation", render_conversation(*created)}};
  co_await reply(frame("conversation_started", id, fields));
}

asio::awaitable<Result<store::ConversationRecord>> ChatSocket::writable_conversation(
    const std::string& conversation_id) {
  if (anonymous()) co_return d_.anonymous.get(conversation_id);
  auto& c = d_.conversations;
  co_return co_await c.pool.run(
      [&] { return c.conversations.find(*who_, conversation_id, auth::Access::kWrite); });
}

asio::awaitable<Result<store::ConversationRecord>> ChatSocket::set_status(const std::string& conversation_id,
                                                                          std::string_view status) {
  if (anonymous()) co_return d_.anonymous.set_status(conversation_id, status);
  auto found = co_await writable_conversation(conversation_id);
  if (!found) co_return found;
  auto& c = d_.conversations;
  co_return co_await c.pool.run(
      [&] { return c.conversations.set_status(*who_, found->user_id, conversation_id, status); });
}

asio::awaitable<void> ChatSocket::send_message(std::optional<bj::value> id, bj::object data,
                                               std::string rid) {
  if (draining_) {
    co_await send_error(
        id, Error(ErrorKind::kUnavailable, "The server is shutting down; reconnect in a moment"), rid);
    co_return;
  }
  auto conversation_id = get_string(data, "conversation_id", true, {1, 64, true, true});
  if (!conversation_id) {
    co_await send_error(id, conversation_id.error(), rid);
    co_return;
  }
  auto input = read_message_input(d_.conversations, data, true, "conversation_id");
  if (!input) {
    co_await send_error(id, input.error(), rid);
    co_return;
  }
  const std::string& cid = **conversation_id;
  if (streaming_ >= limits().max_generations) {
    bj::object fields = bj::object{{"conversation_id", cid}};
    co_await send_error(
        id,
        Error(ErrorKind::kRateLimited,
              fmt::format("At most {} answers stream to one connection at once; wait for one to complete",
                          limits().max_generations)),
        rid, fields);
    co_return;
  }
  Result<services::StartedAnswer> started;
  if (anonymous()) {
    if (input->model) {
      co_await send_error(
          id, Error(ErrorKind::kValidation, "Anonymous chat uses the deployment's model", "model"), rid);
      co_return;
    }
    started = co_await d_.anonymous.ask(cid, *input->content, input->temperature, input->max_tokens, rid,
                                        ws_->executor());
  } else {
    auto conversation = co_await writable_conversation(cid);
    if (!conversation) {
      bj::object fields = bj::object{{"conversation_id", cid}};
      co_await send_error(id, conversation.error(), rid, fields);
      co_return;
    }
    services::AnswerRequest request;
    request.who = *who_;
    request.conversation = std::move(*conversation);
    request.content = input->content;
    request.model = input->model;
    request.temperature = input->temperature;
    request.max_tokens = input->max_tokens;
    request.request_id = rid;
    started = co_await d_.conversations.answers.start(std::move(request), ws_->executor());
  }
  if (!started) {
    bj::object fields = bj::object{{"conversation_id", cid}};
    co_await send_error(id, started.error(), rid, fields);
    co_return;
  }
  if (!ws_->open()) co_return;  // the answer goes on; a new connection can resume it
  bj::object saved{{"conversation_id", cid}, {"answer_message_id", started->answer.id}};
  if (started->user_message) saved["message"] = render_message(*started->user_message);
  co_await reply(frame("message_saved", id, std::move(saved)));
  follow(std::move(id), cid, started->generation, std::nullopt, 0, rid, true, true);
}

asio::awaitable<void> ChatSocket::end_conversation(std::optional<bj::value> id, bj::object data,
                                                   std::string rid) {
  auto ids = read_ids(data, {"conversation_id"}, true, false, false);
  if (!ids) {
    co_await send_error(id, ids.error(), rid);
    co_return;
  }
  const std::string& cid = ids->conversation_id;
  auto ended = co_await set_status(cid, "ended");
  if (!ended) {
    bj::object fields = bj::object{{"conversation_id", cid}};
    co_await send_error(id, ended.error(), rid, fields);
    co_return;
  }
  bj::object fields =
      bj::object{{"conversation_id", ended->id}, {"conversation", render_conversation(*ended)}};
  co_await reply(frame("conversation_ended", id, fields));
}

asio::awaitable<void> ChatSocket::reconnect(std::optional<bj::value> id, bj::object data, std::string rid) {
  auto ids = read_ids(data, {"conversation_id", "message_id", "last_event"}, true, true, false);
  if (!ids) {
    co_await send_error(id, ids.error(), rid);
    co_return;
  }
  const std::string& cid = ids->conversation_id;
  // The answer to resume: the one named, else the one being generated in the conversation.
  std::optional<std::string> mid = ids->message_id;
  if (!mid) {
    if (auto g = registry().running_in(cid); g && g->stored()) mid = g->message_id();
  }
  std::uint64_t seen = 0;
  if (auto it = data.find("last_event"); it != data.end() && !it->value().is_null()) {
    const bj::value& v = it->value();
    Result<std::uint64_t> parsed = std::uint64_t{0};
    if (v.is_uint64() || (v.is_int64() && v.as_int64() >= 0)) {
      parsed = v.is_uint64() ? v.as_uint64() : static_cast<std::uint64_t>(v.as_int64());
    } else if (v.is_string() && mid) {
      parsed = parse_resume_point(std::string_view(v.as_string()), *mid, "last_event");
    } else {
      parsed = validation("last_event",
                          "last_event must be an event number, or \"<message_id>:<n>\" with message_id");
    }
    if (!parsed) {
      co_await send_error(id, parsed.error(), rid);
      co_return;
    }
    seen = *parsed;
  }
  auto conversation = co_await set_status(cid, "active");
  if (!conversation) {
    bj::object fields = bj::object{{"conversation_id", cid}};
    co_await send_error(id, conversation.error(), rid, fields);
    co_return;
  }
  std::shared_ptr<Generation> g = mid ? registry().find(*mid) : nullptr;
  std::optional<store::MessageRecord> stored;
  if (mid && (!g || g->conversation_id() != cid)) {
    g.reset();
    std::optional<store::MessageRecord> m;
    if (anonymous()) {
      MemorySource source(d_.anonymous);
      m = co_await source.read(cid, *mid);
    } else {
      StoredAnswers source(d_.conversations, *who_);
      m = co_await source.read(cid, *mid);
    }
    if (!m || m->role != "assistant") {
      bj::object fields = bj::object{{"conversation_id", cid}};
      co_await send_error(
          id,
          Error(ErrorKind::kNotFound, "No answer with this message_id in this conversation", "message_id"),
          rid, fields);
      co_return;
    }
    stored = std::move(*m);
  }
  bj::object resumed{{"conversation_id", cid},
                     {"conversation", render_conversation(*conversation)},
                     {"message_id", mid ? bj::value(*mid) : bj::value(nullptr)},
                     {"last_event", seen}};
  co_await reply(frame("reconnected", id, std::move(resumed)));
  if (g || stored) follow(std::move(id), cid, std::move(g), std::move(stored), seen, rid, false, true);
}

asio::awaitable<void> ChatSocket::cancel(std::optional<bj::value> id, bj::object data, std::string rid) {
  auto ids = read_ids(data, {"message_id", "conversation_id"}, false, true, true);
  if (!ids) {
    co_await send_error(id, ids.error(), rid);
    co_return;
  }
  const std::string& mid = *ids->message_id;
  std::shared_ptr<Generation> g = registry().find(mid);
  if (g && !anonymous()) {
    // Only who may write to the conversation may stop its answer.
    auto& c = d_.conversations;
    std::string cid = g->conversation_id();
    auto allowed =
        co_await c.pool.run([&] { return c.conversations.message(*who_, cid, mid, auth::Access::kWrite); });
    if (!allowed) g.reset();
  }
  if (!g) {
    co_await send_error(
        id,
        Error(ErrorKind::kNotFound, "No answer with this message_id is being generated here", "message_id"),
        rid);
    co_return;
  }
  if (!g->request_cancel()) {
    bj::object fields = bj::object{{"message_id", mid}, {"conversation_id", g->conversation_id()}};
    co_await send_error(id, Error(ErrorKind::kConflict, "The answer is already over"), rid, fields);
    co_return;
  }
  // The answer's end (status "cancelled", what was generated so far) answers this request.
  const std::uint64_t seen = g->pieces();
  std::string cid = g->conversation_id();
  follow(std::move(id), std::move(cid), std::move(g), std::nullopt, seen, rid, false, false);
}

asio::awaitable<void> ChatSocket::reauth(std::optional<bj::value> id, bj::object data, std::string rid) {
  if (auto s = only_fields(data, {"token"}); !s) {
    co_await send_error(id, s.error(), rid);
    co_return;
  }
  auto token = get_string(data, "token", true, {1, 8192});
  if (!token) {
    co_await send_error(id, token.error(), rid);
    co_return;
  }
  if (anonymous()) {
    co_await send_error(id, Error(ErrorKind::kBadRequest, "An anonymous connection has no token to renew"),
                        rid);
    co_return;
  }
  auto who = co_await d_.conversations.authenticator.authenticate_credential(**token);
  if (!who) {
    co_await send_error(id, who.error(), rid);
    co_return;
  }
  if (who->user_id != who_->user_id) {
    co_await send_error(id, Error(ErrorKind::kForbidden, "The token belongs to another user"), rid);
    co_return;
  }
  who_ = std::move(*who);
  credential_ = std::move(**token);
  schedule_expiry();
  bj::object fields = bj::object{{"expires_at", expires_at()}};
  co_await reply(frame("reauthenticated", id, fields));
}

void ChatSocket::follow(std::optional<bj::value> id, std::string conversation_id,
                        std::shared_ptr<Generation> generation, std::optional<store::MessageRecord> stored,
                        std::uint64_t seen, std::string rid, bool counts, bool pieces) {
  ++followers_;
  if (counts) ++streaming_;
  asio::co_spawn(ws_->executor(),
                 run_follow(shared_from_this(), std::move(id), std::move(conversation_id),
                            std::move(generation), std::move(stored), seen, std::move(rid), counts, pieces),
                 asio::detached);
}

asio::awaitable<void> ChatSocket::run_follow(std::shared_ptr<ChatSocket> self, std::optional<bj::value> id,
                                             std::string conversation_id,
                                             std::shared_ptr<Generation> generation,
                                             std::optional<store::MessageRecord> stored, std::uint64_t seen,
                                             std::string rid, bool counts, bool pieces) {
  try {
    SocketSink sink(*self->ws_, id, std::move(conversation_id), std::move(rid), pieces);
    std::unique_ptr<AnswerSource> source;
    if (self->anonymous()) {
      source = std::make_unique<MemorySource>(self->d_.anonymous);
    } else {
      source = std::make_unique<StoredAnswers>(self->d_.conversations, *self->who_);
    }
    if (generation) {
      co_await follow_live(sink, *source, self->registry(), std::move(generation), seen);
    } else if (stored) {
      co_await follow_stored(sink, *source, self->registry(), std::move(*stored), seen);
    }
  } catch (const std::exception& e) {
    spdlog::error("websocket answer feed failed: {}", e.what());
  }
  --self->followers_;
  if (counts) --self->streaming_;
  if (self->draining_ && self->followers_ == 0)
    self->ws_->close(http::close_code::kGoingAway, "server shutting down");
}

// ---- the upgrade ---------------------------------------------------------------------------

bool same_origin(std::string_view origin, std::string_view host) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.size() > scheme.size() && iequals(origin.substr(0, scheme.size()), scheme)) {
      return iequals(origin.substr(scheme.size()), host);
    }
  }
  return false;
}

// What every upgrade must get right before anyone is authenticated: the Origin (cross-site
// WebSocket hijacking), and a well-formed RFC 6455 request.
std::optional<Response> refuse_upgrade(const RealtimeDeps& d, const RequestContext& ctx) {
  std::string_view origin = ctx.header("Origin");
  if (!origin.empty() && !same_origin(origin, ctx.header("Host"))) {
    bool allowed = false;
    for (const auto& o : d.options.allowed_origins) allowed = allowed || o == "*" || iequals(o, origin);
    if (!allowed) {
      return error_of(
          Error(ErrorKind::kForbidden, "This Origin may not open a WebSocket here (cors_origins)"), ctx);
    }
  }
  if (!boost::beast::websocket::is_upgrade(ctx.request)) {
    Response res = error_of(
        Error(ErrorKind::kUpgradeRequired, "This route speaks WebSocket: send an Upgrade: websocket request"),
        ctx);
    res.set(boost::beast::http::field::upgrade, "websocket");
    res.set(boost::beast::http::field::connection, "Upgrade");
    return res;
  }
  if (ctx.header("Sec-WebSocket-Version") != "13") {
    Response res = error_of(Error(ErrorKind::kUpgradeRequired, "Only WebSocket version 13 is spoken"), ctx);
    res.set(boost::beast::http::field::sec_websocket_version, "13");
    return res;
  }
  std::string_view key = ctx.header("Sec-WebSocket-Key");
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') {
    return error_of(Error(ErrorKind::kBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64"), ctx);
  }
  return std::nullopt;
}

struct Offer {
  bool subprotocol = false;  // parley.chat offered
  bool any = false;          // any subprotocol offered
  std::string credential;    // from bearer.<token>
};

Offer read_offer(const RequestContext& ctx) {
  Offer offer;
  auto [first, last] = ctx.request.equal_range(boost::beast::http::field::sec_websocket_protocol);
  for (auto it = first; it != last; ++it) {
    std::string_view list = it->value();
    while (!list.empty()) {
      const std::size_t comma = list.find(',');
      std::string_view item = trim_blanks(list.substr(0, comma));
      offer.any = offer.any || !item.empty();
      if (item == kSubprotocol) offer.subprotocol = true;
      if (item.size() > kBearerPrefix.size() && item.starts_with(kBearerPrefix) && offer.credential.empty()) {
        offer.credential = std::string(item.substr(kBearerPrefix.size()));
      }
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return offer;
}

// The credential a connection presents: Authorization (Bearer) or X-API-Key, else the subprotocol,
// else ?token=. Empty when there is none.
std::string credential_of(const RequestContext& ctx, const Offer& offer) {
  std::string_view authorization = ctx.header("Authorization");
  if (!authorization.empty()) {
    if (authorization.size() > 7 && iequals(authorization.substr(0, 7), "bearer ")) {
      return std::string(trim_blanks(authorization.substr(7)));
    }
    return "-";  // another scheme: refused as an invalid token
  }
  if (std::string_view key = ctx.header("X-API-Key"); !key.empty()) return std::string(key);
  if (!offer.credential.empty()) return offer.credential;
  return ctx.query("token").value_or("");
}

Response admit(RealtimeDeps& d, RequestContext& ctx, std::optional<auth::Principal> who,
               std::string credential, const Offer& offer) {
  const bool anon = !who;
  const std::string slot = anon ? "anon:" + ctx.client_address : who->user_id;
  const std::size_t per_key = anon ? d.options.anonymous_per_address : d.options.connections_per_user;
  switch (d.counters.acquire(slot, per_key, anon, d.options)) {
    case RealtimeCounters::Admission::kAdmitted:
      break;
    case RealtimeCounters::Admission::kKeyFull: {
      d.counters.refused.fetch_add(1, std::memory_order_relaxed);
      Response res = error_of(
          Error(ErrorKind::kRateLimited,
                anon ? fmt::format("At most {} anonymous connections from one address", per_key)
                     : fmt::format("At most {} open connections per user; close one first", per_key)),
          ctx);
      res.set(boost::beast::http::field::retry_after, "5");
      return res;
    }
    case RealtimeCounters::Admission::kTotalFull: {
      d.counters.refused.fetch_add(1, std::memory_order_relaxed);
      Response res =
          error_of(Error(ErrorKind::kUnavailable, "Too many realtime connections; try again shortly"), ctx);
      res.set(boost::beast::http::field::retry_after, "5");
      return res;
    }
  }
  ctx.upgrade = std::make_shared<ChatSocket>(d, std::move(who), std::move(credential), slot, ctx.request_id);
  if (offer.subprotocol) ctx.upgrade_protocol = std::string(kSubprotocol);
  return Response{StatusCode::switching_protocols, 11};
}

}  // namespace

void register_realtime_routes(http::Router& router, RealtimeDeps& d) {
  router.add(
      Method::get, "/ws/chat/{user_id}",
      [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        if (auto refused = refuse_upgrade(d, ctx)) co_return std::move(*refused);
        Offer offer = read_offer(ctx);
        if (offer.any && !offer.subprotocol) {
          co_return error_of(Error(ErrorKind::kBadRequest,
                                   "Offer the parley.chat subprotocol (beside bearer.<token> when the token "
                                   "travels there)"),
                             ctx);
        }
        std::string credential = credential_of(ctx, offer);
        auto who = co_await d.conversations.authenticator.authenticate_credential(credential);
        if (!who) co_return error_of(who.error(), ctx);
        if (who->user_id != ctx.param("user_id")) {
          co_return error_of(
              Error(ErrorKind::kForbidden, "The token belongs to another user than the path names"), ctx);
        }
        co_return admit(d, ctx, std::move(*who), std::move(credential), offer);
      },
      "Realtime chat over WebSocket (authenticated)");

  router.add(
      Method::get, "/ws/chat",
      [&d](RequestContext& ctx) -> asio::awaitable<Response> {
        if (!d.options.anonymous) {
          co_return error_of(Error(ErrorKind::kForbidden,
                                   "Anonymous chat is off on this server (realtime.anonymous); use "
                                   "/ws/chat/{user_id} with a token"),
                             ctx);
        }
        if (auto refused = refuse_upgrade(d, ctx)) co_return std::move(*refused);
        Offer offer = read_offer(ctx);
        co_return admit(d, ctx, std::nullopt, {}, offer);
      },
      "Realtime chat over WebSocket (anonymous, when enabled)");
}

void add_realtime_metrics(http::Metrics& metrics, RealtimeDeps& d) {
  metrics.add_collector([&d](std::string& out) {
    const auto& c = d.counters;
    out += "# HELP parley_websocket_connections Realtime WebSocket connections open now.\n";
    out += "# TYPE parley_websocket_connections gauge\n";
    out +=
        fmt::format("parley_websocket_connections{{kind=\"user\"}} {}\n", c.all.load() - c.anonymous.load());
    out += fmt::format("parley_websocket_connections{{kind=\"anonymous\"}} {}\n", c.anonymous.load());
    out += "# HELP parley_websocket_opened_total Realtime WebSocket connections accepted.\n";
    out += "# TYPE parley_websocket_opened_total counter\n";
    out += fmt::format("parley_websocket_opened_total {}\n", c.opened.load());
    out += "# HELP parley_websocket_refused_total Upgrades refused for a connection limit.\n";
    out += "# TYPE parley_websocket_refused_total counter\n";
    out += fmt::format("parley_websocket_refused_total {}\n", c.refused.load());
    out += "# HELP parley_websocket_messages_total Messages received from realtime clients.\n";
    out += "# TYPE parley_websocket_messages_total counter\n";
    out += fmt::format("parley_websocket_messages_total {}\n", c.messages.load());
    out += "# HELP parley_websocket_errors_total error messages sent to realtime clients.\n";
    out += "# TYPE parley_websocket_errors_total counter\n";
    out += fmt::format("parley_websocket_errors_total {}\n", c.errors.load());
  });
}

}  // namespace parley::api
