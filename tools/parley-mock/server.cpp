// The HTTP side of parley-mock: one io_context run by --threads threads, one coroutine per
// connection (on its own strand when there is more than one thread). Every wait is an Asio timer.

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <exception>
#include <thread>

#include "mock.hpp"

namespace parley::mock {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// Limits. Bodies: far above any chat request a test sends, and bounds memory per connection;
// audio uploads get more.
constexpr std::uint64_t kBodyLimit = 8 << 20;
constexpr std::uint64_t kUploadBodyLimit = 32 << 20;
constexpr std::string_view kTranscriptionsPath = "/v1/audio/transcriptions";
constexpr std::string_view kMessagesPath = "/v1/messages";
constexpr std::string_view kCountTokensPath = "/v1/messages/count_tokens";
// Headers: room for long JWTs in Authorization.
constexpr std::uint32_t kHeaderLimit = 32 << 10;
// A keep-alive connection idle this long is closed; benchmarks keep theirs busy.
constexpr auto kIdleTimeout = 120s;
// One request body read or one response (or one stream event) write.
constexpr auto kIoTimeout = 60s;

constexpr std::string_view kMalformedBody =
    R"({"id":"chatcmpl-mock","object":"chat.completion","choices":[{"ind)";
constexpr std::string_view kMalformedMessage =
    R"({"id":"msg_mock","type":"message","role":"assistant","content":[{"ty)";

struct Context {
  const ServerOptions& options;
  State state;
  std::atomic<std::uint64_t> next_id{0};
};

// What the connection does after a request.
enum class Next { kKeepAlive, kClose, kGone };

using Request = http::request<http::string_body>;

// g++ 12 frees a brace-initialised aggregate temporary inside a co_await expression twice
// (seen under ASan), so replies built inside co_await go through this function instead.
Reply ok(std::string body) {
  return Reply{200, std::move(body), {}};
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
  if (duration.count() <= 0) co_return;
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(kTuple);
}

// RST instead of FIN: the peer sees ECONNRESET, not an orderly end.
void reset_connection(beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().set_option(asio::socket_base::linger(true, 0), ec);
  stream.socket().close(ec);
}

// FIN in the middle of a message: the peer sees a premature end of the body.
void drop_connection(beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream.socket().close(ec);
}

// Whose API an answer speaks. Anthropic's answers carry its request-id header (and the same id in
// error bodies) and its own rate-limit headers.
struct Flavor {
  bool anthropic = false;
  std::string_view request_id;
};
constexpr Flavor kOpenAi{};
constexpr Flavor kAnthropicNoId{true, {}};  // answers written before a request id is made

bool is_messages_path(std::string_view path) {
  return path == kMessagesPath || path.starts_with("/v1/messages/");
}

// Rate-limit headers with fixed values, so that gateways' pass-through can be observed.
template <class Message>
void set_flavor_headers(Message& res, unsigned status, const Flavor& flavor) {
  if (flavor.anthropic) {
    if (!flavor.request_id.empty()) res.set("request-id", flavor.request_id);
    res.set("anthropic-ratelimit-requests-limit", "10000");
    res.set("anthropic-ratelimit-requests-remaining", status == 429 ? "0" : "9999");
    return;
  }
  res.set("x-ratelimit-limit-requests", "10000");
  res.set("x-ratelimit-remaining-requests", status == 429 ? "0" : "9999");
}

// Beast has no phrase for unregistered codes such as Anthropic's 529.
std::string_view reason_phrase(unsigned status) {
  if (status == 529) return "Overloaded";
  const http::status known = http::int_to_status(status);
  if (known == http::status::unknown) return "Unknown";
  return http::obsolete_reason(known);
}

// "<prefix><12-digit counter>", unique within the process.
std::string make_id(Context& ctx, std::string_view prefix) {
  std::array<char, 24> digits{};
  std::snprintf(digits.data(), digits.size(), "%012llu",
                static_cast<unsigned long long>(ctx.next_id.fetch_add(1, std::memory_order_relaxed)) + 1);
  std::string id(prefix);
  id.append(digits.data());
  return id;
}

std::string_view content_type_of(const Reply& reply) {
  return reply.content_type.empty() ? std::string_view("application/json")
                                    : std::string_view(reply.content_type);
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

asio::awaitable<Next> write_reply(beast::tcp_stream& stream, unsigned version, bool keep_alive, Reply reply,
                                  const Flavor& flavor = kOpenAi) {
  http::response<http::string_body> res;
  res.version(version);
  res.result(reply.status);
  res.reason(reason_phrase(reply.status));
  res.set(http::field::content_type, content_type_of(reply));
  if (!reply.retry_after.empty()) res.set(http::field::retry_after, reply.retry_after);
  set_flavor_headers(res, reply.status, flavor);
  res.keep_alive(keep_alive);
  res.body() = std::move(reply.body);
  res.prepare_payload();
  stream.expires_after(kIoTimeout);
  auto [ec, n] = co_await http::async_write(stream, res, kTuple);
  if (ec) co_return Next::kGone;
  co_return keep_alive ? Next::kKeepAlive : Next::kClose;
}

// Headers announcing the whole body, half of it, then FIN.
asio::awaitable<Next> write_partial(beast::tcp_stream& stream, const Reply& reply) {
  std::string head = "HTTP/1.1 " + std::to_string(reply.status) + " ";
  head.append(reason_phrase(reply.status));
  head.append("\r\nContent-Type: ")
      .append(content_type_of(reply))
      .append("\r\nContent-Length: ")
      .append(std::to_string(reply.body.size()))
      .append("\r\n\r\n");
  std::array<asio::const_buffer, 2> buffers = {asio::buffer(head),
                                               asio::buffer(reply.body.data(), reply.body.size() / 2)};
  stream.expires_after(kIoTimeout);
  co_await asio::async_write(stream, buffers, kTuple);
  drop_connection(stream);
  co_return Next::kGone;
}

asio::awaitable<Next> send(beast::tcp_stream& stream, const Request& req, Reply reply,
                           std::optional<std::uint64_t> drop = std::nullopt, const Flavor& flavor = kOpenAi) {
  if (drop) co_return co_await write_partial(stream, reply);
  co_return co_await write_reply(stream, req.version(), req.keep_alive(), std::move(reply), flavor);
}

// Each event is its own chunk and its own write, so the client sees the pacing.
asio::awaitable<Next> write_stream(beast::tcp_stream& stream, const Request& req,
                                   const std::vector<std::string>& events,
                                   std::chrono::milliseconds chunk_delay, std::optional<std::uint64_t> drop,
                                   const Flavor& flavor = kOpenAi) {
  const bool chunked = req.version() >= 11;  // HTTP/1.0: the body ends when the connection closes
  http::response<http::empty_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, "text/event-stream; charset=utf-8");
  res.set(http::field::cache_control, "no-cache");
  set_flavor_headers(res, 200, flavor);
  res.keep_alive(chunked && req.keep_alive());
  if (chunked) res.chunked(true);
  http::response_serializer<http::empty_body> serializer{res};
  stream.expires_after(kIoTimeout);
  if (auto [ec, n] = co_await http::async_write_header(stream, serializer, kTuple); ec) co_return Next::kGone;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (drop && i == *drop) {
      drop_connection(stream);
      co_return Next::kGone;
    }
    if (i > 0) co_await sleep_for(chunk_delay);
    stream.expires_after(kIoTimeout);
    beast::error_code ec;
    if (chunked) {
      std::tie(ec, std::ignore) =
          co_await asio::async_write(stream, http::make_chunk(asio::buffer(events[i])), kTuple);
    } else {
      std::tie(ec, std::ignore) = co_await asio::async_write(stream, asio::buffer(events[i]), kTuple);
    }
    if (ec) co_return Next::kGone;
  }
  if (drop) {
    drop_connection(stream);
    co_return Next::kGone;
  }
  if (!chunked) co_return Next::kClose;
  stream.expires_after(kIoTimeout);
  if (auto [ec, n] = co_await asio::async_write(stream, http::make_chunk_last(), kTuple); ec)
    co_return Next::kGone;
  co_return res.keep_alive() ? Next::kKeepAlive : Next::kClose;
}

// A hung request: read and discard until the client goes away (or the server stops).
asio::awaitable<void> wait_for_client_to_leave(beast::tcp_stream& stream) {
  stream.expires_never();
  std::array<char, 512> sink{};
  for (;;) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), kTuple);
    if (ec) break;
  }
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<Reply> check_key(const Request& req, const std::vector<std::string>& keys) {
  if (keys.empty()) return std::nullopt;
  auto it = req.find(http::field::authorization);
  if (it == req.end()) {
    return api_error(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        "invalid_request_error", {}, "invalid_api_key");
  }
  std::string_view value = it->value();
  if (value.size() > 7 && iequals(value.substr(0, 7), "bearer ")) {
    std::string_view key = value.substr(7);
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) return std::nullopt;
  }
  // The key is not echoed, not even masked: tests scan responses for fragments of their keys.
  return api_error(401, "Incorrect API key provided.", "invalid_request_error", {}, "invalid_api_key");
}

Reply method_not_allowed(const Request& req, std::string_view path) {
  std::string message = "Method not allowed: ";
  message.append(req.method_string()).append(" ").append(path);
  return api_error(405, message, "invalid_request_error", {}, "method_not_allowed");
}

Reply invalid_url(const Request& req, std::string_view path) {
  std::string message = "Invalid URL (";
  message.append(req.method_string()).append(" ").append(path).append(")");
  return api_error(404, message, "invalid_request_error");
}

std::optional<std::string> header_of(const Request& req, std::string_view name) {
  auto it = req.find(name);
  if (it == req.end()) return std::nullopt;
  return std::string(it->value());
}

RecordedRequest record_of(const Request& req, std::string_view path) {
  RecordedRequest record;
  record.method = req.method_string();
  record.path = path;
  record.authorization = header_of(req, "authorization");
  record.x_api_key = header_of(req, "x-api-key");
  record.anthropic_version = header_of(req, "anthropic-version");
  // An upload is summarised, not copied: it may be megabytes of binary.
  record.body = path == kTranscriptionsPath
                    ? summarize_transcription(req[http::field::content_type], req.body())
                    : req.body();
  record.received_at_ms = unix_ms();
  return record;
}

// Anthropic takes its key in x-api-key or, as its SDKs send it since API version 2026-10-21, as
// "Authorization: Bearer KEY"; x-api-key wins when both come. A missing or wrong key is a 401
// authentication_error.
std::optional<Reply> check_anthropic_key(const Request& req, const std::vector<std::string>& keys,
                                         std::string_view request_id) {
  if (keys.empty()) return std::nullopt;
  std::optional<std::string_view> key;
  if (auto it = req.find("x-api-key"); it != req.end()) {
    key = it->value();
  } else if (auto auth = req.find(http::field::authorization); auth != req.end()) {
    std::string_view value = auth->value();
    key = value.size() > 7 && iequals(value.substr(0, 7), "bearer ") ? value.substr(7) : std::string_view();
  }
  if (!key) return anthropic_error(401, "authentication_error", "x-api-key header is required", request_id);
  if (std::find(keys.begin(), keys.end(), *key) != keys.end()) return std::nullopt;
  // Not echoed, as on the OpenAI side.
  return anthropic_error(401, "authentication_error", "invalid x-api-key", request_id);
}

// Every Messages API call names the API version it speaks, a date. Any date is taken (Anthropic adds
// versions: 2023-06-01, then 2026-10-21, which its SDK sends since 1.0); tests read the one sent
// from /_mock/requests.
std::optional<Reply> check_anthropic_version(const Request& req, std::string_view request_id) {
  auto it = req.find("anthropic-version");
  if (it == req.end()) {
    return anthropic_error(400, "invalid_request_error", "anthropic-version: header is required", request_id);
  }
  const std::string_view version = it->value();
  const bool is_date = version.size() == 10 && version[4] == '-' && version[7] == '-' &&
                       std::all_of(version.begin(), version.end(), [](char c) {
                         return c == '-' || std::isdigit(static_cast<unsigned char>(c)) != 0;
                       });
  if (is_date) return std::nullopt;
  std::string message = "anthropic-version: invalid version '";
  message.append(version).append("' (expected a date such as 2023-06-01)");
  return anthropic_error(400, "invalid_request_error", message, request_id);
}

// POST /v1/messages and /v1/messages/count_tokens, after the faults: key, path, method, version, body.
asio::awaitable<Next> handle_messages(beast::tcp_stream& stream, Request& req, std::string_view path,
                                      Context& ctx, const Flavor& flavor, std::optional<std::uint64_t> drop) {
  const std::string_view request_id = flavor.request_id;
  std::optional<Reply> refused = check_anthropic_key(req, ctx.options.keys, request_id);
  if (!refused && path != kMessagesPath && path != kCountTokensPath) {
    refused = anthropic_error(404, "not_found_error", "Not Found", request_id);
  }
  if (!refused && req.method() != http::verb::post) {
    std::string message = "Method not allowed: ";
    message.append(req.method_string()).append(" ").append(path);
    refused = anthropic_error(405, "invalid_request_error", message, request_id);
  }
  if (!refused) refused = check_anthropic_version(req, request_id);
  if (refused) co_return co_await send(stream, req, std::move(*refused), drop, flavor);

  if (path == kCountTokensPath) {
    auto count = count_message_tokens(req.body(), request_id);
    if (!count) co_return co_await send(stream, req, std::move(count.error()), drop, flavor);
    co_return co_await send(stream, req, ok(std::move(*count)), drop, flavor);
  }
  auto plan = plan_messages(req.body(), ctx.options.chunks, request_id);
  if (!plan) co_return co_await send(stream, req, std::move(plan.error()), drop, flavor);
  const std::string id = make_id(ctx, "msg_mock");
  const std::string tool_id = plan->tool_name.empty() ? std::string() : make_id(ctx, "toolu_mock");
  if (plan->stream) {
    const std::vector<std::string> events = render_message_events(*plan, id, tool_id);
    co_return co_await write_stream(stream, req, events, ctx.options.chunk_delay, drop, flavor);
  }
  co_return co_await send(stream, req, ok(render_message(*plan, id, tool_id)), drop, flavor);
}

// POST /v1/responses (OpenAI's Responses API, minimal: see mock.hpp).
asio::awaitable<Next> handle_responses(beast::tcp_stream& stream, Request& req, std::string_view path,
                                       Context& ctx, std::optional<std::uint64_t> drop) {
  if (req.method() != http::verb::post)
    co_return co_await send(stream, req, method_not_allowed(req, path), drop);
  auto plan = plan_responses(req.body(), ctx.options.chunks);
  if (!plan) co_return co_await send(stream, req, std::move(plan.error()), drop);
  const std::string id = make_id(ctx, "resp_mock");
  const std::int64_t created = unix_ms() / 1000;
  if (plan->stream) {
    const std::vector<std::string> events = render_response_events(*plan, id, created);
    co_return co_await write_stream(stream, req, events, ctx.options.chunk_delay, drop);
  }
  co_return co_await send(stream, req, ok(render_response(*plan, id, created)), drop);
}

asio::awaitable<Next> handle_api(beast::tcp_stream& stream, Request& req, std::string_view path,
                                 Context& ctx) {
  const ServerOptions& options = ctx.options;
  std::optional<Fault> fault =
      ctx.state.on_request(options.record_limit > 0 ? record_of(req, path) : RecordedRequest{});
  // The Messages API answers in Anthropic's shape from the first fault on.
  std::string request_id;
  Flavor flavor;
  if (is_messages_path(path)) {
    request_id = make_id(ctx, "req_mock");
    flavor.anthropic = true;
    flavor.request_id = request_id;
  }

  std::optional<std::uint64_t> drop;
  if (fault) {
    co_await sleep_for(std::chrono::milliseconds(fault->delay_ms));
    if (fault->reset) {
      reset_connection(stream);
      co_return Next::kGone;
    }
    if (fault->hang) {
      co_await wait_for_client_to_leave(stream);
      co_return Next::kGone;
    }
  }
  co_await sleep_for(options.ttfb);
  if (fault) {
    if (fault->status) {
      Reply reply = fault->body        ? Reply{*fault->status, *fault->body, {}}
                    : flavor.anthropic ? default_anthropic_error(*fault->status, request_id)
                                       : default_error(*fault->status);
      reply.retry_after = fault->retry_after;
      co_return co_await send(stream, req, std::move(reply), std::nullopt, flavor);
    }
    if (fault->malformed) {
      Reply malformed = ok(std::string(flavor.anthropic ? kMalformedMessage : kMalformedBody));
      co_return co_await send(stream, req, std::move(malformed), std::nullopt, flavor);
    }
    drop = fault->drop_after_chunks;
  }
  if (flavor.anthropic) co_return co_await handle_messages(stream, req, path, ctx, flavor, drop);

  // Anthropic's GET /v1/models takes its key as the Messages API does (a request naming an
  // anthropic-version is Anthropic's).
  const bool anthropic_models = path.starts_with("/v1/models") && req.find("anthropic-version") != req.end();
  std::optional<Reply> denied = anthropic_models
                                    ? check_anthropic_key(req, options.keys, make_id(ctx, "req_mock"))
                                    : check_key(req, options.keys);
  if (denied) co_return co_await send(stream, req, std::move(*denied), drop);

  const http::verb method = req.method();
  if (path == "/v1/chat/completions") {
    if (method != http::verb::post) co_return co_await send(stream, req, method_not_allowed(req, path), drop);
    auto plan = plan_chat(req.body(), options.chunks);
    if (!plan) co_return co_await send(stream, req, std::move(plan.error()), drop);
    const std::string id = make_id(ctx, "chatcmpl-mock");
    const std::int64_t created = unix_ms() / 1000;
    if (plan->stream) {
      const std::vector<std::string> events = render_chat_events(*plan, id, created);
      co_return co_await write_stream(stream, req, events, options.chunk_delay, drop);
    }
    co_return co_await send(stream, req, ok(render_chat(*plan, id, created)), drop);
  }
  if (path == "/v1/responses") co_return co_await handle_responses(stream, req, path, ctx, drop);
  if (path == "/v1/embeddings") {
    if (method != http::verb::post) co_return co_await send(stream, req, method_not_allowed(req, path), drop);
    auto body = render_embeddings(req.body(), options.embedding_dimensions);
    if (!body) co_return co_await send(stream, req, std::move(body.error()), drop);
    co_return co_await send(stream, req, ok(std::move(*body)), drop);
  }
  if (path == "/v1/audio/speech") {
    if (method != http::verb::post) co_return co_await send(stream, req, method_not_allowed(req, path), drop);
    auto audio = render_speech(req.body());
    if (!audio) co_return co_await send(stream, req, std::move(audio.error()), drop);
    co_return co_await send(stream, req, std::move(*audio), drop);
  }
  if (path == kTranscriptionsPath) {
    if (method != http::verb::post) co_return co_await send(stream, req, method_not_allowed(req, path), drop);
    auto transcript = render_transcription(req[http::field::content_type], req.body());
    if (!transcript) co_return co_await send(stream, req, std::move(transcript.error()), drop);
    co_return co_await send(stream, req, std::move(*transcript), drop);
  }
  if (path == "/v1/models") {
    if (method != http::verb::get) co_return co_await send(stream, req, method_not_allowed(req, path), drop);
    co_return co_await send(stream, req, ok(render_models(options.models)), drop);
  }
  if (path.starts_with("/v1/models/")) {
    if (method != http::verb::get) co_return co_await send(stream, req, method_not_allowed(req, path), drop);
    std::string_view id = path.substr(std::string_view("/v1/models/").size());
    if (std::optional<std::string> model = render_model(options.models, id)) {
      co_return co_await send(stream, req, ok(std::move(*model)), drop);
    }
    std::string message = "The model '";
    message.append(id).append("' does not exist");
    co_return co_await send(
        stream, req, api_error(404, message, "invalid_request_error", "model", "model_not_found"), drop);
  }
  co_return co_await send(stream, req, invalid_url(req, path), drop);
}

asio::awaitable<Next> handle_control(beast::tcp_stream& stream, Request& req, std::string_view path,
                                     Context& ctx) {
  const http::verb method = req.method();
  if (path == "/_mock/faults") {
    if (method != http::verb::post) co_return co_await send(stream, req, method_not_allowed(req, path));
    auto faults = parse_faults(req.body());
    if (!faults)
      co_return co_await send(stream, req, api_error(400, faults.error(), "invalid_request_error"));
    std::size_t pending = ctx.state.add_faults(std::move(*faults));
    co_return co_await send(stream, req, ok("{\"queued\":" + std::to_string(pending) + "}"));
  }
  if (path == "/_mock/requests") {
    if (method != http::verb::get) co_return co_await send(stream, req, method_not_allowed(req, path));
    co_return co_await send(stream, req, ok(ctx.state.render_requests()));
  }
  if (path == "/_mock/reset") {
    if (method != http::verb::post) co_return co_await send(stream, req, method_not_allowed(req, path));
    ctx.state.reset();
    co_return co_await send(stream, req, ok("{\"reset\":true}"));
  }
  co_return co_await send(stream, req, invalid_url(req, path));
}

asio::awaitable<Next> handle(beast::tcp_stream& stream, Request& req, Context& ctx) {
  std::string_view target = req.target();
  std::string_view path = path_of(target);
  if (ctx.options.log_requests) {
    std::fprintf(stderr, "parley-mock: %.*s %.*s\n", static_cast<int>(req.method_string().size()),
                 req.method_string().data(), static_cast<int>(target.size()), target.data());
  }
  if (path == "/v1" || path.starts_with("/v1/")) co_return co_await handle_api(stream, req, path, ctx);
  if (path.starts_with("/_mock/")) co_return co_await handle_control(stream, req, path, ctx);
  co_return co_await send(stream, req, invalid_url(req, path));
}

asio::awaitable<void> session(tcp::socket socket, Context& ctx) {
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    // The largest limit while the header is read (Beast checks Content-Length against it there),
    // then the one for the path, before any body byte is parsed.
    parser.body_limit(kUploadBodyLimit);
    stream.expires_after(kIdleTimeout);
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
    if (!ec) {
      const std::uint64_t limit =
          path_of(parser.get().target()) == kTranscriptionsPath ? kUploadBodyLimit : kBodyLimit;
      parser.body_limit(limit);
      if (parser.content_length() && *parser.content_length() > limit) ec = http::error::body_limit;
    }
    if (!ec && !parser.is_done()) {
      auto expect = parser.get().find(http::field::expect);
      if (expect != parser.get().end() && iequals(expect->value(), "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        stream.expires_after(kIoTimeout);
        std::tie(ec, n) = co_await asio::async_write(stream, asio::buffer(kContinue), kTuple);
      }
      if (!ec) {
        stream.expires_after(kIoTimeout);
        std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, kTuple);
      }
    }
    if (ec) {
      Next next = Next::kGone;
      if (ec == http::error::body_limit && is_messages_path(path_of(parser.get().target()))) {
        next = co_await write_reply(stream, 11, false, default_anthropic_error(413, {}), kAnthropicNoId);
      } else if (ec == http::error::body_limit) {
        next = co_await write_reply(stream, 11, false,
                                    api_error(413, "Request body too large.", "invalid_request_error"));
      } else if (ec == http::error::header_limit) {
        next = co_await write_reply(stream, 11, false,
                                    api_error(431, "Request headers too large.", "invalid_request_error"));
      } else if (ec.category() == beast::error_code(http::error::bad_target).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message) {
        next = co_await write_reply(stream, 11, false,
                                    api_error(400, "Malformed HTTP request.", "invalid_request_error"));
      }
      if (next == Next::kGone) co_return;
      break;
    }
    Request& req = parser.get();
    Next next = co_await handle(stream, req, ctx);
    if (next == Next::kGone) co_return;
    if (next == Next::kClose) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

void report_failure(const std::exception_ptr& failure) {
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parley-mock: connection failed: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "parley-mock: connection failed\n");
  }
}

asio::awaitable<void> accept_loop(asio::io_context& io, tcp::acceptor& acceptor, Context& ctx) {
  for (;;) {
    asio::any_io_executor executor = io.get_executor();
    if (ctx.options.threads > 1) executor = asio::make_strand(io);
    auto [ec, socket] = co_await acceptor.async_accept(executor, kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of descriptors or a transient error: back off rather than spin.
      co_await sleep_for(10ms);
      continue;
    }
    // The executor is read before the socket is moved into the session.
    auto socket_executor = socket.get_executor();
    asio::co_spawn(socket_executor, session(std::move(socket), ctx), report_failure);
  }
}

std::expected<tcp::endpoint, std::string> parse_listen(std::string_view listen) {
  std::size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return std::unexpected("--listen wants HOST:PORT");
  std::string_view host = listen.substr(0, colon);
  std::string_view port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  unsigned port = 0;
  auto [end, err] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (err != std::errc{} || end != port_text.data() + port_text.size() || port > 65535) {
    return std::unexpected("--listen: bad port '" + std::string(port_text) + "'");
  }
  beast::error_code ec;
  asio::ip::address address = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::unexpected("--listen: bad address '" + std::string(host) + "'");
  if (!address.is_loopback()) {
    return std::unexpected("--listen: refusing non-loopback address " + address.to_string() +
                           " (parley-mock serves loopback only)");
  }
  return tcp::endpoint(address, static_cast<unsigned short>(port));
}

}  // namespace

int run_server(const ServerOptions& options) {
  auto endpoint = parse_listen(options.listen);
  if (!endpoint) {
    std::fprintf(stderr, "parley-mock: %s\n", endpoint.error().c_str());
    return 2;
  }
  if (options.threads == 0) {
    std::fprintf(stderr, "parley-mock: --threads must be at least 1\n");
    return 2;
  }

  Context ctx{options, State(options.record_limit)};
  asio::io_context io(options.threads == 1 ? 1 : static_cast<int>(options.threads));
  // The acceptor, its loop and the signal handler that closes it share one strand.
  asio::any_io_executor control = asio::make_strand(io);
  tcp::acceptor acceptor(control);
  beast::error_code ec;
  acceptor.open(endpoint->protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(*endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "parley-mock: cannot listen on %s: %s\n", options.listen.c_str(),
                 ec.message().c_str());
    return 1;
  }
  tcp::endpoint bound = acceptor.local_endpoint();
  std::string host = bound.address().to_string();
  if (bound.address().is_v6()) host = "[" + host + "]";
  // Registered before the port is announced: a SIGTERM sent as soon as the line is read stops the
  // mock cleanly instead of killing it.
  asio::signal_set signals(control, SIGINT, SIGTERM);
  std::printf("listening on http://%s:%u\n", host.c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  signals.async_wait([&](const beast::error_code& error, int) {
    if (error) return;
    beast::error_code ignored;
    acceptor.close(ignored);
    io.stop();
  });
  asio::co_spawn(control, accept_loop(io, acceptor, ctx), report_failure);

  std::vector<std::thread> threads;
  threads.reserve(options.threads - 1);
  for (unsigned i = 1; i < options.threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (std::thread& t : threads) t.join();
  return 0;
}

}  // namespace parley::mock
