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
// Headers: room for long JWTs in Authorization.
constexpr std::uint32_t kHeaderLimit = 32 << 10;
// A keep-alive connection idle this long is closed; benchmarks keep theirs busy.
constexpr auto kIdleTimeout = 120s;
// One request body read or one response (or one stream event) write.
constexpr auto kIoTimeout = 60s;

constexpr std::string_view kMalformedBody =
    R"({"id":"chatcmpl-mock","object":"chat.completion","choices":[{"ind)";

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

// OpenAI's rate-limit headers, fixed values, so that gateways' pass-through can be observed.
template <class Message>
void set_rate_limit_headers(Message& res, unsigned status) {
  res.set("x-ratelimit-limit-requests", "10000");
  res.set("x-ratelimit-remaining-requests", status == 429 ? "0" : "9999");
}

std::string_view content_type_of(const Reply& reply) {
  return reply.content_type.empty() ? std::string_view("application/json")
                                    : std::string_view(reply.content_type);
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

asio::awaitable<Next> write_reply(beast::tcp_stream& stream, unsigned version, bool keep_alive, Reply reply) {
  http::response<http::string_body> res;
  res.version(version);
  res.result(reply.status);
  res.set(http::field::content_type, content_type_of(reply));
  if (!reply.retry_after.empty()) res.set(http::field::retry_after, reply.retry_after);
  set_rate_limit_headers(res, reply.status);
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
  head.append(http::obsolete_reason(http::int_to_status(reply.status)));
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
                           std::optional<std::uint64_t> drop = std::nullopt) {
  if (drop) co_return co_await write_partial(stream, reply);
  co_return co_await write_reply(stream, req.version(), req.keep_alive(), std::move(reply));
}

// Each event is its own chunk and its own write, so the client sees the pacing.
asio::awaitable<Next> write_stream(beast::tcp_stream& stream, const Request& req,
                                   const std::vector<std::string>& events,
                                   std::chrono::milliseconds chunk_delay, std::optional<std::uint64_t> drop) {
  const bool chunked = req.version() >= 11;  // HTTP/1.0: the body ends when the connection closes
  http::response<http::empty_body> res{http::status::ok, req.version()};
  res.set(http::field::content_type, "text/event-stream; charset=utf-8");
  res.set(http::field::cache_control, "no-cache");
  set_rate_limit_headers(res, 200);
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

asio::awaitable<Next> handle_api(beast::tcp_stream& stream, Request& req, std::string_view path,
                                 Context& ctx) {
  const ServerOptions& options = ctx.options;
  RecordedRequest record;
  if (options.record_limit > 0) {
    record.method = req.method_string();
    record.path = path;
    if (auto it = req.find(http::field::authorization); it != req.end()) record.authorization = it->value();
    // An upload is summarised, not copied: it may be megabytes of binary.
    record.body = path == kTranscriptionsPath
                      ? summarize_transcription(req[http::field::content_type], req.body())
                      : req.body();
    record.received_at_ms = unix_ms();
  }
  std::optional<Fault> fault = ctx.state.on_request(std::move(record));

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
      Reply reply = fault->body ? Reply{*fault->status, *fault->body, {}} : default_error(*fault->status);
      reply.retry_after = fault->retry_after;
      co_return co_await send(stream, req, std::move(reply));
    }
    if (fault->malformed) co_return co_await send(stream, req, ok(std::string(kMalformedBody)));
    drop = fault->drop_after_chunks;
  }

  if (std::optional<Reply> denied = check_key(req, options.keys)) {
    co_return co_await send(stream, req, std::move(*denied), drop);
  }

  const http::verb method = req.method();
  if (path == "/v1/chat/completions") {
    if (method != http::verb::post) co_return co_await send(stream, req, method_not_allowed(req, path), drop);
    auto plan = plan_chat(req.body(), options.chunks);
    if (!plan) co_return co_await send(stream, req, std::move(plan.error()), drop);
    std::array<char, 32> id{};
    std::snprintf(id.data(), id.size(), "chatcmpl-mock%012llu",
                  static_cast<unsigned long long>(ctx.next_id.fetch_add(1, std::memory_order_relaxed)) + 1);
    const std::int64_t created = unix_ms() / 1000;
    if (plan->stream) {
      const std::vector<std::string> events = render_chat_events(*plan, id.data(), created);
      co_return co_await write_stream(stream, req, events, options.chunk_delay, drop);
    }
    co_return co_await send(stream, req, ok(render_chat(*plan, id.data(), created)), drop);
  }
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
      if (ec == http::error::body_limit) {
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
  std::printf("listening on http://%s:%u\n", host.c_str(), static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  asio::signal_set signals(control, SIGINT, SIGTERM);
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
