#include "http/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <list>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/text.hpp"
#include "http/request_reader.hpp"
#include "http/websocket_connection.hpp"
#include "log/log.hpp"

namespace parley::http {

namespace {
// Bodies larger than this are written through a send buffer of this size (see the session loop).
constexpr std::size_t kLargeBody = std::size_t{256} * 1024;
}  // namespace

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' || c == ':';
  });
}

// Request ids need to be unique, not secret: a per-thread random prefix and a counter.
std::string new_request_id() {
  thread_local std::uint64_t prefix = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  thread_local std::uint64_t counter = 0;
  return fmt::format("req_{:012x}{:08x}", prefix & 0xffffffffffffULL, ++counter);
}

std::string_view host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    std::size_t end = host.find(']');
    return end == std::string_view::npos ? host : host.substr(1, end - 1);
  }
  std::size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && host.find(':') == colon) return host.substr(0, colon);
  return host;
}

}  // namespace

// Reads from `socket` into `buffer` and feeds the reader until it has the head
// (`head_only`) or the whole message, or fails.
asio::awaitable<boost::system::error_code> read_request(tcp::socket& socket, beast::flat_buffer& buffer,
                                                        RequestReader& reader, bool head_only) {
  for (;;) {
    FeedResult fed = reader.feed(buffer, head_only);
    if (!fed.need_more) co_return fed.ec;
    const std::size_t room = std::min<std::size_t>(buffer.max_size() - buffer.size(), 65536);
    auto [ec, n] = co_await socket.async_read_some(buffer.prepare(room), kTuple);
    buffer.commit(n);
    if (ec == asio::error::eof) co_return reader.finish_at_eof(head_only);
    if (ec) co_return ec;
  }
}

constexpr auto kNever = std::chrono::steady_clock::time_point::max();
// After a FIN during a provider call, how long the interim 100 Continue gets to draw a reset from
// a client that closed (a loopback or LAN round trip is well under this).
constexpr auto kProbeWait = 200ms;
// Lingering close after an error answered mid-request: how long, and how much, to read and discard.
constexpr auto kLingerTime = 2s;
constexpr std::size_t kLingerBytes = std::size_t{4} << 20;
// How often each worker looks for connections past their deadline.
constexpr auto kSweepInterval = 100ms;

// One connection's bookkeeping, touched only on its worker's thread. I/O deadlines (idle, head,
// body, write) are checked by the worker's sweeper every kSweepInterval rather than by a timer
// per operation: arming one is a store, and a passed one cancels the connection's pending I/O,
// which then completes with operation_aborted and `expired` set.
struct SessionSlot {
  tcp::socket* socket = nullptr;
  bool idle = true;  // waiting for the next request: may be closed at once when draining
  std::chrono::steady_clock::time_point deadline = kNever;
  bool expired = false;

  void arm(std::chrono::milliseconds after) {
    expired = false;
    deadline = std::chrono::steady_clock::now() + after;
  }
  void disarm() { deadline = kNever; }
};

// Per connection, shared with the callbacks of its close watch (which may run after a request is
// over, and must then do nothing). `signal` is bound to the session coroutine: emitting it cancels
// whatever that coroutine awaits.
struct CloseWatchState {
  asio::cancellation_signal signal;
  std::uint64_t generation = 0;  // bumped on every arm and disarm: stale callbacks see a mismatch
  bool left = false;
  bool responding = false;  // a streamed response has begun: its writes tell whether the client is there
  char peeked = 0;
  std::unique_ptr<asio::steady_timer> probe_timer;

  void leave() {
    left = true;
    signal.emit(asio::cancellation_type::terminal);
  }
};

struct Worker {
  asio::io_context io{1};
  std::list<SessionSlot*> sessions;
  std::list<WsConnection*> websockets;
  std::size_t index = 0;
};

struct Server::Impl {
  Impl(Server& owner, ServerOptions opts, const Router& r, Metrics& m)
      : self(owner), options(std::move(opts)), router(r), metrics(m) {
    for (unsigned i = 0; i < std::max(1U, options.workers); ++i) {
      workers.push_back(std::make_unique<Worker>());
      workers.back()->index = i;
    }
    acceptor.emplace(workers[0]->io);
  }

  Server& self;
  ServerOptions options;
  const Router& router;
  Metrics& metrics;
  std::vector<std::unique_ptr<Worker>> workers;
  std::optional<tcp::acceptor> acceptor;
  std::atomic<std::size_t> open_sessions{0};
  std::size_t next_worker = 0;
  // Open connections per peer address (trusted proxies not counted): taken on the accept loop,
  // given back by sessions on any worker.
  std::mutex per_address_mutex;
  std::unordered_map<std::string, std::size_t> per_address;

  [[nodiscard]] bool trusted_proxy(std::string_view address) const {
    for (const auto& proxy : options.trusted_proxies) {
      if (proxy == address) return true;
    }
    return false;
  }

  // The client's address: the peer's, unless the peer is a trusted proxy; then the nearest hop
  // that is not one, from `Forwarded: for=` (RFC 7239) or else `X-Forwarded-For`, read from the
  // right (the entries to its left are whatever the client wrote). A hop that is not an IP
  // address ends the walk at the peer.
  [[nodiscard]] std::string client_address_of(const Request& req, const std::string& peer) const {
    if (!trusted_proxy(peer)) return peer;
    std::vector<std::string_view> hops;
    const bool forwarded = req.count(beast_http::field::forwarded) > 0;
    auto [first, last] =
        forwarded ? req.equal_range(beast_http::field::forwarded) : req.equal_range("X-Forwarded-For");
    for (auto it = first; it != last; ++it) {
      std::string_view list = it->value();
      for (;;) {
        const std::size_t comma = list.find(',');
        std::string_view element = list.substr(0, comma);
        if (forwarded) element = forwarded_for(element);
        hops.push_back(trim_blanks(element));
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
    for (auto hop = hops.rbegin(); hop != hops.rend(); ++hop) {
      boost::system::error_code ec;
      const auto address = asio::ip::make_address(std::string(*hop), ec);
      if (ec) return peer;
      std::string text = address.to_string();
      if (!trusted_proxy(text)) return text;
    }
    return peer;
  }

  // The address of one Forwarded element's for= parameter: quotes, IPv6 brackets and a port removed.
  static std::string_view forwarded_for(std::string_view element) {
    while (!element.empty()) {
      const std::size_t semi = element.find(';');
      std::string_view pair = trim_blanks(element.substr(0, semi));
      if (pair.size() > 4 && iequals(pair.substr(0, 4), "for=")) {
        std::string_view v = pair.substr(4);
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        if (!v.empty() && v.front() == '[')
          return v.substr(1, v.find(']') == std::string_view::npos ? 0 : v.find(']') - 1);
        const std::size_t colon = v.find(':');
        return colon != std::string_view::npos && v.find(':', colon + 1) == std::string_view::npos
                   ? v.substr(0, colon)
                   : v;
      }
      if (semi == std::string_view::npos) break;
      element.remove_prefix(semi + 1);
    }
    return {};
  }

  // Counts a connection from `address` unless that address is at its cap. Trusted proxies always pass.
  bool admit_address(const std::string& address) {
    if (trusted_proxy(address)) return true;
    std::lock_guard lock(per_address_mutex);
    std::size_t& open = per_address[address];
    if (open >= options.limits.max_connections_per_address) {
      if (open == 0) per_address.erase(address);
      return false;
    }
    ++open;
    return true;
  }
  void release_address(const std::string& address) {
    if (trusted_proxy(address)) return;
    std::lock_guard lock(per_address_mutex);
    auto it = per_address.find(address);
    if (it != per_address.end() && --it->second == 0) per_address.erase(it);
  }

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> session(tcp::socket socket, Worker& worker, std::shared_ptr<CloseWatchState> watch,
                                std::string peer);
  asio::awaitable<void> reject_overloaded(tcp::socket socket);
  asio::awaitable<void> websocket_session(std::shared_ptr<WsConnection> connection, Request request,
                                          std::shared_ptr<WebSocketHandler> handler, std::string protocol,
                                          std::string request_id, std::string route, Worker& worker,
                                          std::string peer);
  asio::awaitable<void> linger(tcp::socket& socket, SessionSlot& slot, std::size_t max_bytes);
  asio::awaitable<void> drain_watch();
  asio::awaitable<void> sweep(Worker& worker);

  asio::awaitable<Response> dispatch(Request& req, RequestContext& ctx, std::string_view& route);
  void finish_headers(Response& res, std::string_view origin) const;
  [[nodiscard]] bool host_allowed(std::string_view host) const;
  [[nodiscard]] bool origin_allowed(std::string_view origin) const;
  void record(const RequestContext& ctx, std::string_view route, std::string_view method, unsigned status,
              std::size_t bytes, Worker& worker) const;
};

namespace {

// "HTTP/1.1 200 OK\r\n" + fields + the headers every response carries + "\r\n", for a response
// whose fields are final (see finish_headers). The constant security headers and the request id
// are written here rather than inserted into the field container, which costs more than the text.
std::string render_head(const Response& res, std::string_view request_id) {
  static constexpr std::string_view kAlways =
      "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n";
  static constexpr std::string_view kDefaultCsp =
      "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n";
  std::string head;
  head.reserve(384);
  head.append("HTTP/1.1 ").append(std::to_string(res.result_int())).append(" ");
  std::string_view reason = res.reason();
  head.append(reason.data(), reason.size()).append("\r\n");
  bool has_csp = false;
  for (const auto& field : res) {
    std::string_view name = field.name_string();
    std::string_view value = field.value();
    if (!has_csp && name.size() == 23 && iequals(name, "Content-Security-Policy")) has_csp = true;
    head.append(name.data(), name.size()).append(": ").append(value.data(), value.size()).append("\r\n");
  }
  head.append("X-Request-ID: ").append(request_id).append("\r\n").append(kAlways);
  if (!has_csp) head.append(kDefaultCsp);
  head.append("\r\n");
  return head;
}

}  // namespace

// Chunked streaming for handlers (SSE). Lives for one request on the session's coroutine frame.
class SessionStream final : public StreamWriter {
 public:
  SessionStream(tcp::socket& socket, SessionSlot& slot, std::shared_ptr<CloseWatchState> watch,
                Server::Impl& impl, const RequestContext& ctx, std::string_view origin, bool keep_alive)
      : socket_(socket),
        slot_(slot),
        watch_(std::move(watch)),
        impl_(impl),
        ctx_(ctx),
        origin_(origin),
        keep_alive_(keep_alive) {
    watch_->responding = false;
  }

  asio::awaitable<bool> begin(Response head) override {
    if (started_) co_return false;
    started_ = true;
    watch_->responding = true;
    impl_.finish_headers(head, origin_);
    head.keep_alive(keep_alive_);
    head.chunked(true);
    status_ = head.result_int();
    std::string text = render_head(head, ctx_.request_id);
    slot_.arm(impl_.options.limits.write_timeout);
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(text), kTuple);
    slot_.disarm();
    ok_ = !ec;
    co_return ok_;
  }

  asio::awaitable<bool> write(std::string_view data) override {
    if (!started_ || !ok_) co_return false;
    if (data.empty()) co_return true;
    // Chunk framing by hand (size in hex, CRLF, data, CRLF): one gathered write per chunk.
    char size_line[20];
    auto [end, err] = std::to_chars(size_line, size_line + sizeof size_line - 2, data.size(), 16);
    *end++ = '\r';
    *end++ = '\n';
    std::array<asio::const_buffer, 3> chunk{
        asio::buffer(size_line, static_cast<std::size_t>(end - size_line)),
        asio::buffer(data.data(), data.size()), asio::buffer("\r\n", 2)};
    slot_.arm(impl_.options.limits.write_timeout);
    auto [ec, n] = co_await asio::async_write(socket_, chunk, kTuple);
    slot_.disarm();
    if (ec) ok_ = false;
    bytes_ += data.size();
    co_return ok_;
  }

  [[nodiscard]] bool started() const override { return started_; }

  void watch_close(bool on) override {
    const std::uint64_t generation = ++watch_->generation;
    if (!on) {
      // Drops the pending peek (a completion already queued sees the new generation).
      boost::system::error_code ignored;
      socket_.cancel(ignored);
      return;
    }
    watch_->left = false;
    // A one-byte peek that completes when the socket turns readable: an error (reset) is a client
    // that left; a byte is its next request, a client still there. One callback and no coroutine:
    // cheap enough to arm around every provider call.
    //
    // 0 bytes is a FIN: a client that closed, or one that only shut down its sending side after a
    // complete request (some HTTP/1.1 clients and load balancers do) and still waits for the
    // answer. While a streamed response runs, its next write tells the two apart. Before that,
    // parley sends an interim `100 Continue` (every HTTP/1.1 client parses 1xx before the final
    // answer) and looks again shortly after: a client that closed has answered it with a reset.
    socket_.async_receive(
        asio::buffer(&watch_->peeked, 1), tcp::socket::message_peek,
        [watch = watch_, generation, &socket = socket_](const boost::system::error_code& ec, std::size_t n) {
          if (ec == asio::error::operation_aborted || watch->generation != generation) return;
          if (!ec && n > 0) return;
          if (ec && ec != asio::error::eof) {
            watch->leave();
            return;
          }
          if (watch->responding) return;
          static constexpr std::string_view kProbe = "HTTP/1.1 100 Continue\r\n\r\n";
          asio::async_write(
              socket, asio::buffer(kProbe),
              [watch, generation, &socket](const boost::system::error_code& wec, std::size_t) {
                if (watch->generation != generation) return;
                if (wec) {
                  watch->leave();
                  return;
                }
                watch->probe_timer = std::make_unique<asio::steady_timer>(socket.get_executor(), kProbeWait);
                watch->probe_timer->async_wait(
                    [watch, generation, &socket](const boost::system::error_code& tec) {
                      if (tec || watch->generation != generation) return;
                      // After a FIN, recv() reports EOF even once a reset has come; the socket's error and
                      // TCP state tell: a reset leaves ECONNRESET pending and the connection CLOSED, a
                      // half-close keeps it in CLOSE_WAIT.
                      int error = 0;
                      socklen_t size = sizeof error;
                      tcp_info info{};
                      socklen_t info_size = sizeof info;
                      const int fd = socket.native_handle();
                      const bool reset =
                          (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error != 0) ||
                          (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_size) == 0 &&
                           info.tcpi_state == TCP_CLOSE);
                      if (reset) watch->leave();
                    });
              });
        });
  }

  [[nodiscard]] bool client_left() const override { return watch_->left; }

  asio::awaitable<bool> finish() {
    if (!ok_) co_return false;
    slot_.arm(impl_.options.limits.write_timeout);
    auto [ec, n] = co_await asio::async_write(socket_, beast_http::make_chunk_last(), kTuple);
    slot_.disarm();
    ok_ = !ec;
    co_return ok_;
  }

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] unsigned status() const { return status_; }
  [[nodiscard]] std::size_t bytes() const { return bytes_; }

 private:
  tcp::socket& socket_;
  SessionSlot& slot_;
  std::shared_ptr<CloseWatchState> watch_;
  Server::Impl& impl_;
  const RequestContext& ctx_;
  std::string_view origin_;
  bool keep_alive_;
  bool started_ = false;
  bool ok_ = true;
  unsigned status_ = 200;
  std::size_t bytes_ = 0;
};

namespace {

// The last boundary: an exception thrown by a completion handler (not inside a session coroutine,
// which catches its own) propagates out of io_context::run(). Asio leaves the context runnable, so
// the loop logs it and carries on serving every other connection instead of ending the process.
void run_loop(asio::io_context& io) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      spdlog::critical("exception escaped an event-loop handler: {}", e.what());
    } catch (...) {
      spdlog::critical("exception escaped an event-loop handler");
    }
  }
}

}  // namespace

Server::Server(ServerOptions options, const Router& router, Metrics& metrics)
    : impl_(std::make_unique<Impl>(*this, std::move(options), router, metrics)) {}

Server::~Server() = default;

Status Server::bind(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return validation("listen", fmt::format("\"{}\" is not an IP address", host));
  tcp::endpoint endpoint(address, port);
  auto& acc = *impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail(ErrorKind::kUnavailable, fmt::format("cannot listen on {}:{}: {}", host, port, ec.message()),
                std::string("listen"));
  }
  return {};
}

std::uint16_t Server::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor->local_endpoint(ec);
  return ec ? 0 : ep.port();
}

asio::any_io_executor Server::main_executor() const {
  return impl_->workers[0]->io.get_executor();
}

void Server::run() {
  asio::co_spawn(impl_->workers[0]->io, impl_->accept_loop(), asio::detached);
  for (auto& w : impl_->workers) asio::co_spawn(w->io, impl_->sweep(*w), asio::detached);
  std::vector<std::thread> threads;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& w : impl_->workers) guards.emplace_back(w->io.get_executor());
  for (std::size_t i = 1; i < impl_->workers.size(); ++i) {
    threads.emplace_back([w = impl_->workers[i].get()] { run_loop(w->io); });
  }
  run_loop(impl_->workers[0]->io);
  for (auto& t : threads) t.join();
}

void Server::shutdown() {
  if (draining_.exchange(true)) return;
  asio::post(impl_->workers[0]->io, [impl = impl_.get()] {
    boost::system::error_code ec;
    impl->acceptor->close(ec);
    asio::co_spawn(impl->workers[0]->io, impl->drain_watch(), asio::detached);
  });
  for (auto& w : impl_->workers) {
    asio::post(w->io, [w = w.get()] {
      for (SessionSlot* s : w->sessions) {
        if (s->idle && s->socket != nullptr) s->socket->close();
      }
      // Copied: a handler may close (and so unlist) its connection right away.
      std::vector<WsConnection*> sockets(w->websockets.begin(), w->websockets.end());
      for (WsConnection* c : sockets) c->drain();
    });
  }
}

asio::awaitable<void> Server::Impl::drain_watch() {
  asio::steady_timer timer(workers[0]->io);
  auto deadline = std::chrono::steady_clock::now() + options.limits.drain_timeout;
  while (open_sessions.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    timer.expires_after(10ms);
    co_await timer.async_wait(kTuple);
  }
  if (open_sessions.load() > 0) {
    spdlog::warn("drain deadline passed; closing {} connection(s)", open_sessions.load());
    for (auto& w : workers) {
      asio::post(w->io, [w = w.get()] {
        for (SessionSlot* s : w->sessions) {
          if (s->socket != nullptr) s->socket->close();
        }
        for (WsConnection* c : w->websockets) c->abort();
      });
    }
    // Give the closed sessions a moment to unwind before the loops stop.
    for (int i = 0; i < 100 && open_sessions.load() > 0; ++i) {
      timer.expires_after(10ms);
      co_await timer.async_wait(kTuple);
    }
  }
  for (auto& w : workers) w->io.stop();
}

asio::awaitable<void> Server::Impl::sweep(Worker& worker) {
  asio::steady_timer timer(worker.io);
  for (;;) {
    timer.expires_after(kSweepInterval);
    auto [ec] = co_await timer.async_wait(kTuple);
    if (ec) co_return;
    const auto now = std::chrono::steady_clock::now();
    for (SessionSlot* s : worker.sessions) {
      if (s->deadline > now) continue;
      s->deadline = kNever;
      s->expired = true;
      boost::system::error_code ignored;
      s->socket->cancel(ignored);
    }
    for (WsConnection* c : worker.websockets) c->sweep(now);
  }
}

asio::awaitable<void> Server::Impl::accept_loop() {
  while (acceptor->is_open()) {
    Worker& target = *workers[next_worker];
    next_worker = (next_worker + 1) % workers.size();
    auto [ec, socket] = co_await acceptor->async_accept(target.io, kTuple);
    if (ec) {
      if (!acceptor->is_open() || ec == asio::error::operation_aborted) break;
      // EMFILE and friends: back off briefly instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer t(workers[0]->io, 50ms);
      co_await t.async_wait(kTuple);
      continue;
    }
    if (open_sessions.load() >= options.limits.max_connections) {
      asio::co_spawn(target.io, reject_overloaded(std::move(socket)), asio::detached);
      continue;
    }
    boost::system::error_code peer_ec;
    std::string peer = socket.remote_endpoint(peer_ec).address().to_string();
    if (peer_ec) continue;  // already gone
    if (!admit_address(peer)) {
      asio::co_spawn(target.io, reject_overloaded(std::move(socket)), asio::detached);
      continue;
    }
    open_sessions.fetch_add(1);
    // The session's cancellation slot belongs to its close watch; the completion handler keeps
    // the signal alive for as long as the coroutine may be cancelled through it.
    auto watch = std::make_shared<CloseWatchState>();
    asio::cancellation_slot cancel_slot = watch->signal.slot();
    asio::co_spawn(target.io, session(std::move(socket), target, watch, std::move(peer)),
                   asio::bind_cancellation_slot(cancel_slot, [watch](const std::exception_ptr&) {}));
  }
}

asio::awaitable<void> Server::Impl::reject_overloaded(tcp::socket socket) {
  Error err(ErrorKind::kUnavailable, "Too many connections; try again shortly");
  Response res = error_response(err, new_request_id());
  res.set(beast_http::field::retry_after, "1");
  res.keep_alive(false);
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(1s);
  co_await beast_http::async_write(stream, res, kTuple);
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

bool Server::Impl::host_allowed(std::string_view host) const {
  std::string_view name = host_without_port(host);
  for (const auto& h : options.trusted_hosts) {
    if (h == "*" || iequals(h, name)) return true;
  }
  return false;
}

bool Server::Impl::origin_allowed(std::string_view origin) const {
  if (origin.empty()) return false;
  for (const auto& o : options.cors_origins) {
    if (o == "*" || iequals(o, origin)) return true;
  }
  return false;
}

void Server::Impl::finish_headers(Response& res, std::string_view origin) const {
  // X-Request-ID and the security headers are added by render_head.
  if (!res.has_content_length() && !res.chunked()) res.prepare_payload();
  if (origin_allowed(origin)) {
    res.set(beast_http::field::access_control_allow_origin, origin);
    res.set(beast_http::field::vary, "Origin");
    res.set(beast_http::field::access_control_expose_headers,
            "X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
            "x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, "
            "x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens");
  }
}

void Server::Impl::record(const RequestContext& ctx, std::string_view route, std::string_view method,
                          unsigned status, std::size_t bytes, Worker& worker) const {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx.started).count();
  metrics.request_finished(worker.index, route, method, status, seconds);
  if (options.access_log) {
    spdlog::info("access method={} route={} status={} duration_ms={:.3f} bytes={} client={} request_id={}",
                 method, route, status, seconds * 1000.0, bytes, ctx.client_address, ctx.request_id);
  }
}

asio::awaitable<Response> Server::Impl::dispatch(Request& req, RequestContext& ctx, std::string_view& route) {
  auto host = req.find(beast_http::field::host);
  if (host == req.end())
    co_return error_response(Error(ErrorKind::kBadRequest, "Missing Host header"), ctx.request_id);
  if (!host_allowed(host->value())) {
    co_return error_response(Error(ErrorKind::kBadRequest, "Host not allowed"), ctx.request_id);
  }
  std::string_view origin = ctx.header("Origin");
  std::string_view path = ctx.path();

  if (req.method() == Method::options && !ctx.header("Access-Control-Request-Method").empty()) {
    route = "CORS preflight";
    auto match = router.match(Method::get, path);
    if (!origin_allowed(origin) || !match) {
      co_return error_response(Error(ErrorKind::kForbidden, "CORS origin not allowed"), ctx.request_id);
    }
    Response res{StatusCode::no_content, 11};
    res.set(beast_http::field::access_control_allow_methods, allow_header(match->allowed));
    std::string_view requested = ctx.header("Access-Control-Request-Headers");
    res.set(beast_http::field::access_control_allow_headers,
            requested.empty() ? std::string_view("Authorization, Content-Type, X-API-Key, X-Request-ID")
                              : requested);
    res.set(beast_http::field::access_control_max_age, "600");
    co_return res;
  }

  auto match = router.match(req.method(), path);
  if (!match) {
    route = "unmatched";
    co_return error_response(Error(ErrorKind::kNotFound, "No route matches this path"), ctx.request_id);
  }
  route = match->route;
  ctx.route = match->route;
  if (match->handler == nullptr) {
    Response res = error_response(
        Error(ErrorKind::kMethodNotAllowed, fmt::format("Method {} not allowed here", req.method_string())),
        ctx.request_id);
    res.set(beast_http::field::allow, allow_header(match->allowed));
    co_return res;
  }
  ctx.params = std::move(match->params);
  try {
    co_return co_await (*match->handler)(ctx);
  } catch (const std::exception& e) {
    spdlog::error("unhandled exception in {} {} request_id={}: {}", req.method_string(), route,
                  ctx.request_id, e.what());
  } catch (...) {
    spdlog::error("unhandled exception in {} {} request_id={}", req.method_string(), route, ctx.request_id);
  }
  co_return error_response(Error(ErrorKind::kInternal, "An unexpected error occurred"), ctx.request_id);
}

// After an error answered before the request was read whole (413, 431, 400 ...), the client may
// still be sending. Closing with its bytes unread makes the kernel send a reset, which can destroy
// our answer before the client reads it. As nginx's lingering close: read and discard what still
// comes, until the client closes or kLingerTime / kLingerBytes pass.
asio::awaitable<void> Server::Impl::linger(tcp::socket& socket, SessionSlot& slot, std::size_t max_bytes) {
  std::array<char, 16384> scratch{};
  std::size_t discarded = 0;
  slot.arm(std::chrono::duration_cast<std::chrono::milliseconds>(kLingerTime));
  while (discarded < max_bytes && !slot.expired) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(scratch), kTuple);
    if (ec) break;
    discarded += n;
  }
  slot.disarm();
}

asio::awaitable<void> Server::Impl::session(tcp::socket socket, Worker& worker,
                                            std::shared_ptr<CloseWatchState> watch, std::string peer) {
  // A close watch cancels the handler's provider call; everything else carries on as usual (no
  // exception from the next co_await).
  co_await asio::this_coro::throw_if_cancelled(false);
  metrics.connection_opened();
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  const std::string& client = peer;  // the peer address, as counted by admit_address
  SessionSlot slot;
  slot.socket = &socket;
  worker.sessions.push_front(&slot);
  auto slot_it = worker.sessions.begin();
  const auto& limits = options.limits;
  // Set when the connection becomes a WebSocket: handed to its own coroutine once this loop ends.
  struct Upgrade {
    Request request;
    std::shared_ptr<WebSocketHandler> handler;
    std::string protocol;
    std::string request_id;
    std::string route;
  };
  std::optional<Upgrade> upgrade;
  // Bounds what one connection buffers besides a body: a request head (header_limit applies) or a
  // chunk trailer (which no header limit covers), plus room for the next pipelined bytes.
  beast::flat_buffer buffer(limits.max_header_bytes + std::size_t{16} * 1024);
  // With per-path limits the reader accepts up to twice the largest, so that a body refused for
  // its size on such a path is refused below, where the path is known (and drained, see linger_bytes).
  std::uint64_t largest_body = limits.max_body_bytes;
  for (const auto& large : options.large_bodies) largest_body = std::max(largest_body, large.second * 2);

  try {
    // A new connection must start its request within the header timeout; afterwards a keep-alive
    // connection may wait idle_timeout for the next one.
    bool first_request = true;
    bool send_buffer_capped = false;
    for (;;) {
      if (buffer.size() == 0) {
        slot.idle = true;
        if (self.draining()) break;
        slot.arm(first_request ? limits.header_timeout : limits.idle_timeout);
        auto [ec, n] = co_await socket.async_read_some(
            buffer.prepare(std::min<std::size_t>(8192, buffer.max_size())), kTuple);
        slot.disarm();
        slot.idle = false;
        if (ec) break;
        buffer.commit(n);
      }
      slot.idle = false;
      first_request = false;

      RequestReader reader(limits.max_header_bytes, largest_body);
      RequestParser& parser = reader.parser();
      auto started = std::chrono::steady_clock::now();

      std::optional<Error> early;
      slot.arm(limits.header_timeout);
      boost::system::error_code hec = co_await read_request(socket, buffer, reader, true);
      slot.disarm();
      if (hec) {
        if (hec == beast_http::error::header_limit || hec == beast_http::error::buffer_overflow) {
          early = Error(ErrorKind::kHeaderTooLarge, "Request header block is too large");
        } else if (hec == beast_http::error::body_limit) {
          early = Error(ErrorKind::kPayloadTooLarge, "Request body is too large");
        } else if (slot.expired && !self.draining()) {
          early = Error(ErrorKind::kRequestTimeout, "Request header not received in time");
        } else if (hec == beast_http::error::end_of_stream || hec == asio::error::eof ||
                   hec == asio::error::connection_reset || hec == asio::error::operation_aborted) {
          break;
        } else {
          early = Error(ErrorKind::kBadRequest, "Malformed HTTP request");
        }
      }
      Request& head = parser.get();
      if (!early) early = check_request_head(head);
      // Read and discarded after an early error: an upload refused for its size may be drained
      // whole (up to twice its path's limit) so that the client reads the 413 instead of a reset.
      std::size_t linger_bytes = kLingerBytes;
      if (!early && !parser.is_done() && !options.large_bodies.empty()) {
        // The reader allowed the largest body of any path; this path may allow less.
        std::uint64_t allowed = limits.max_body_bytes;
        std::string_view target = head.target();
        target = target.substr(0, target.find('?'));
        for (const auto& [path, limit] : options.large_bodies) {
          if (target == path) allowed = limit;
        }
        std::string_view length_field = head[beast_http::field::content_length];
        std::uint64_t length = 0;
        std::from_chars(length_field.data(), length_field.data() + length_field.size(), length);
        if (length > allowed) {
          early = Error(ErrorKind::kPayloadTooLarge, "Request body is too large");
          linger_bytes = std::max<std::size_t>(kLingerBytes, std::min<std::uint64_t>(length, allowed * 2));
        } else {
          parser.body_limit(allowed);
        }
      }
      if (!early && !parser.is_done()) {
        if (iequals(head[beast_http::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          slot.arm(limits.write_timeout);
          co_await asio::async_write(socket, asio::buffer(kContinue), kTuple);
          slot.disarm();
        }
        slot.arm(limits.body_timeout);
        boost::system::error_code bec = co_await read_request(socket, buffer, reader, false);
        slot.disarm();
        if (bec) {
          if (bec == beast_http::error::body_limit) {
            early = Error(ErrorKind::kPayloadTooLarge, "Request body is too large");
          } else if (bec == beast_http::error::header_limit || bec == beast_http::error::buffer_overflow) {
            early = Error(ErrorKind::kHeaderTooLarge, "Chunk trailer is too large");
          } else if (slot.expired) {
            early = Error(ErrorKind::kRequestTimeout, "Request body not received in time");
          } else if (bec == beast_http::error::partial_message || bec == asio::error::eof ||
                     bec == asio::error::connection_reset) {
            break;
          } else {
            early = Error(ErrorKind::kBadRequest, "Malformed HTTP request body");
          }
        }
      }

      Request req = parser.release();
      metrics.request_started();
      RequestContext ctx{req,    {}, {}, {}, client_address_of(req, client), started, socket.get_executor(),
                         nullptr};
      std::string_view incoming_id = req["X-Request-ID"];
      ctx.request_id = valid_request_id(incoming_id) ? std::string(incoming_id) : new_request_id();
      std::string_view origin = ctx.header("Origin");
      std::string method(early ? std::string_view("-") : std::string_view(req.method_string()));

      if (early) {
        Response res = error_response(*early, ctx.request_id);
        finish_headers(res, {});
        res.keep_alive(false);
        std::string head_text = render_head(res, ctx.request_id);
        std::array<asio::const_buffer, 2> buffers{asio::buffer(head_text), asio::buffer(res.body())};
        slot.arm(limits.write_timeout);
        co_await asio::async_write(socket, buffers, kTuple);
        slot.disarm();
        record(ctx, "-", method, res.result_int(), res.body().size(), worker);
        socket.shutdown(tcp::socket::shutdown_send, ignored);
        co_await linger(socket, slot, linger_bytes);
        break;
      }

      bool keep_alive = req.keep_alive();
      SessionStream streamer(socket, slot, watch, *this, ctx, origin, keep_alive && !self.draining());
      ctx.stream = &streamer;
      std::string_view route = "-";
      Response res = co_await dispatch(req, ctx, route);
      if (watch->left) co_await asio::this_coro::reset_cancellation_state();

      if (ctx.upgrade && res.result() == StatusCode::switching_protocols && !streamer.started()) {
        if (self.draining()) {
          ctx.upgrade.reset();
          res = error_response(Error(ErrorKind::kUnavailable, "Server is shutting down"), ctx.request_id);
        } else {
          // The connection becomes a WebSocket (after this loop).
          record(ctx, route, method, 101, 0, worker);
          upgrade.emplace(Upgrade{std::move(req), std::move(ctx.upgrade), std::move(ctx.upgrade_protocol),
                                  ctx.request_id, std::string(route)});
          break;
        }
      }

      if (streamer.started()) {
        bool ok = co_await streamer.finish();
        record(ctx, route, method, streamer.status(), streamer.bytes(), worker);
        if (!ok || !keep_alive || self.draining()) break;
        continue;
      }

      finish_headers(res, origin);
      bool keep = keep_alive && !self.draining() && !res.need_eof();
      res.keep_alive(keep);
      const std::string_view body = ctx.static_body.empty() ? std::string_view(res.body()) : ctx.static_body;
      std::size_t bytes = body.size();
      // The head is rendered into one buffer and written with the body in one call: beast's
      // generic serializer walks the fields through layered buffer views, which cost more than
      // the rest of a small response.
      std::string head_text = render_head(res, ctx.request_id);
      if (req.method() == Method::head) bytes = 0;
      if (bytes > kLargeBody && !send_buffer_capped) {
        // A large body goes through a bounded kernel send buffer: a client that does not read
        // holds at most that much of the host's memory, and filling it is one small copy. With
        // autotuned (or loopback) buffers the kernel takes megabytes per connection at once, and
        // a thousand such clients keep the loops busy copying for seconds.
        socket.set_option(asio::socket_base::send_buffer_size(static_cast<int>(kLargeBody)), ignored);
        send_buffer_capped = true;
      }
      std::array<asio::const_buffer, 2> buffers{asio::buffer(head_text), asio::buffer(body.data(), bytes)};
      slot.arm(limits.write_timeout);
      auto [wec, wn] = co_await asio::async_write(socket, buffers, kTuple);
      slot.disarm();
      record(ctx, route, method, res.result_int(), bytes, worker);
      if (wec || !keep) {
        socket.shutdown(tcp::socket::shutdown_send, ignored);
        break;
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("connection from {} failed: {}", client, e.what());
  }
  worker.sessions.erase(slot_it);
  if (upgrade) {
    // The WebSocket's coroutine owns the socket from here on and gives back the connection's
    // counts when it ends.
    auto connection = std::make_shared<WsConnection>(std::move(socket), options.websocket);
    asio::co_spawn(worker.io,
                   websocket_session(std::move(connection), std::move(upgrade->request),
                                     std::move(upgrade->handler), std::move(upgrade->protocol),
                                     std::move(upgrade->request_id), std::move(upgrade->route), worker, peer),
                   asio::detached);
    co_return;
  }
  socket.close(ignored);
  metrics.connection_closed();
  release_address(peer);
  open_sessions.fetch_sub(1);
}

asio::awaitable<void> Server::Impl::websocket_session(std::shared_ptr<WsConnection> connection,
                                                      Request request,
                                                      std::shared_ptr<WebSocketHandler> handler,
                                                      std::string protocol, std::string request_id,
                                                      std::string route, Worker& worker, std::string peer) {
  const auto started = std::chrono::steady_clock::now();
  worker.websockets.push_front(connection.get());
  auto it = worker.websockets.begin();
  try {
    co_await connection->run(request, *handler, std::move(protocol), request_id);
  } catch (const std::exception& e) {
    spdlog::error("websocket from {} failed: {}", peer, e.what());
  }
  worker.websockets.erase(it);
  connection->abort();
  if (options.access_log) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    spdlog::info(
        "websocket closed route={} duration_ms={:.0f} messages_in={} frames_out={} close_sent={} "
        "close_received={} request_id={}",
        route, seconds * 1000.0, connection->messages_in(), connection->frames_out(),
        connection->close_code_sent(), connection->close_code_received(), request_id);
  }
  metrics.connection_closed();
  release_address(peer);
  open_sessions.fetch_sub(1);
}

}  // namespace parley::http
