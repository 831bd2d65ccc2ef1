#include "provider/http_client.hpp"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <cstdlib>
#include <map>

#include "crypto/encoding.hpp"

namespace parley::provider {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// Bytes asked of the socket per read: a typical answer, head and body, in one.
constexpr std::size_t kReadSize = std::size_t{16} * 1024;

std::string Endpoint::origin() const {
  return fmt::format("{}://{}:{}", tls ? "https" : "http", host, port);
}

std::optional<std::string_view> HttpResponse::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return std::string_view(v);
  }
  return std::nullopt;
}

namespace {
bool is_loopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.");
}
}  // namespace

namespace {

// A response parser that writes the head straight into an HttpResponse (names lower-cased) and
// gathers body bytes for the caller: no Beast field container is built for a message whose
// headers are only copied out again.
class ResponseReader final : public bhttp::basic_parser<false> {
 public:
  explicit ResponseReader(HttpResponse& out) : out_(out) {}

  // Body bytes parsed and not yet handed on; the caller clears it.
  std::string& body() { return body_; }

 private:
  void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int,
                       beast::error_code& ec) override {
    ec = bhttp::error::bad_method;  // never called for a response parser
  }
  void on_response_impl(int code, beast::string_view, int, beast::error_code&) override {
    out_.status = static_cast<unsigned>(code);
  }
  void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                     beast::error_code&) override {
    std::string lower(name.size(), '\0');
    std::transform(name.begin(), name.end(), lower.begin(),
                   [](char ch) { return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch; });
    out_.headers.emplace_back(std::move(lower), std::string(value.data(), value.size()));
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, beast::error_code&) override {}
  std::size_t on_body_impl(beast::string_view bytes, beast::error_code&) override {
    body_.append(bytes.data(), bytes.size());
    return bytes.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view bytes, beast::error_code& ec) override {
    return on_body_impl(bytes, ec);
  }
  void on_finish_impl(beast::error_code&) override {}

  HttpResponse& out_;
  std::string body_;
};

}  // namespace

Result<Endpoint> parse_base_url(std::string_view url, bool allow_plain_remote) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return validation("base_url", "must be an absolute http:// or https:// URL");
  Endpoint e;
  std::string scheme(parsed->scheme());
  if (scheme == "https") {
    e.tls = true;
    e.port = 443;
  } else if (scheme != "http") {
    return validation("base_url", "must use http:// or https://");
  }
  e.host = std::string(parsed->host_address());
  if (e.host.empty()) return validation("base_url", "has no host");
  if (parsed->has_port()) {
    if (parsed->port_number() == 0) return validation("base_url", "has an invalid port");
    e.port = parsed->port_number();
  }
  if (!e.tls && !allow_plain_remote && !is_loopback(e.host)) {
    return validation("base_url", "plain http:// is only allowed for loopback hosts; use https://");
  }
  e.base_path = std::string(parsed->encoded_path());
  while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  return e;
}

Result<Proxy> parse_proxy_url(std::string_view url) {
  std::string text(url);
  if (text.find("://") == std::string::npos) text = "http://" + text;
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed || parsed->scheme() != "http") {
    return validation("HTTPS_PROXY", "must be http://[user:password@]host[:port]");
  }
  Proxy p;
  p.host = std::string(parsed->host_address());
  if (p.host.empty()) return validation("HTTPS_PROXY", "has no host");
  if (parsed->has_port()) {
    if (parsed->port_number() == 0) return validation("HTTPS_PROXY", "has an invalid port");
    p.port = parsed->port_number();
  }
  if (parsed->has_userinfo()) {
    p.authorization = "Basic " + crypto::base64_encode(std::string(parsed->userinfo()));
  }
  return p;
}

bool no_proxy_matches(std::string_view no_proxy, std::string_view host, std::uint16_t port) {
  auto lower = [](std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
  };
  const std::string h = lower(host);
  while (!no_proxy.empty()) {
    std::size_t comma = no_proxy.find(',');
    std::string_view entry = no_proxy.substr(0, comma);
    no_proxy = comma == std::string_view::npos ? std::string_view() : no_proxy.substr(comma + 1);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    if (entry.empty()) continue;
    if (entry == "*") return true;
    // host:port (an IPv6 literal without brackets has several colons: no port then).
    std::size_t colon = entry.rfind(':');
    if (colon != std::string_view::npos && entry.find(':') == colon) {
      std::string_view p = entry.substr(colon + 1);
      entry = entry.substr(0, colon);
      if (p != std::to_string(port)) continue;
    }
    if (entry.starts_with("*.")) entry.remove_prefix(1);
    if (entry.front() == '[' && entry.back() == ']') entry = entry.substr(1, entry.size() - 2);
    std::string e = lower(entry);
    if (e.front() == '.') {
      if (h.ends_with(e) || h == e.substr(1)) return true;
    } else if (h == e || (h.size() > e.size() && h.ends_with(e) && h[h.size() - e.size() - 1] == '.')) {
      return true;
    }
  }
  return false;
}

std::optional<Proxy> proxy_for(const Endpoint& endpoint, std::string_view https_proxy,
                               std::string_view no_proxy) {
  if (!endpoint.tls || https_proxy.empty() || is_loopback(endpoint.host)) return std::nullopt;
  if (no_proxy_matches(no_proxy, endpoint.host, endpoint.port)) return std::nullopt;
  auto proxy = parse_proxy_url(https_proxy);
  if (!proxy) return std::nullopt;
  return *proxy;
}

namespace {

// The deadline of one phase of an exchange: when it passes, the connection's pending I/O is
// cancelled (and completes with operation_aborted, expired() true). A beast::tcp_stream arms and
// cancels a timer around every read and write; here a later deadline only moves a time point, and
// the pending wait, when it fires early, waits again for the rest (a stream re-arms per read).
class IoDeadline {
 public:
  explicit IoDeadline(tcp::socket& socket)
      : state_(std::make_shared<State>(State{&socket})), timer_(socket.get_executor()) {}
  IoDeadline(const IoDeadline&) = delete;
  IoDeadline& operator=(const IoDeadline&) = delete;
  // A wait that already fired has its handler queued, which cancel() cannot stop: the handler
  // holds the state and finds it dead.
  ~IoDeadline() {
    state_->alive = false;
    timer_.cancel();
  }

  void arm(Millis after) {
    state_->expired = false;
    state_->deadline = Clock::now() + after;
    if (state_->waiting && timer_.expiry() <= state_->deadline) return;
    wait();
  }
  void cancel() {
    state_->waiting = false;
    timer_.cancel();
  }
  [[nodiscard]] bool expired() const { return state_->expired; }

  // What an I/O error means: the deadline passed, the caller's coroutine was cancelled (its
  // client left), or `otherwise`.
  [[nodiscard]] TransportFailure classify(const boost::system::error_code& ec,
                                          TransportFailure otherwise) const {
    if (state_->expired) return TransportFailure::kTimeout;
    if (ec == asio::error::operation_aborted) return TransportFailure::kCancelled;
    return otherwise;
  }

 private:
  struct State {
    tcp::socket* socket;
    Clock::time_point deadline{};
    bool waiting = false;
    bool expired = false;
    bool alive = true;
  };

  void wait() {
    state_->waiting = true;
    timer_.expires_at(state_->deadline);
    timer_.async_wait([this, state = state_](const boost::system::error_code& ec) {
      // Re-armed earlier, cancelled, or the deadline is gone (its exchange is over): touch nothing.
      if (ec || !state->alive) return;
      state->waiting = false;
      if (Clock::now() < state->deadline) {
        wait();  // moved later meanwhile
        return;
      }
      state->expired = true;
      boost::system::error_code ignored;
      state->socket->cancel(ignored);
    });
  }

  std::shared_ptr<State> state_;
  asio::steady_timer timer_;
};

}  // namespace

struct HttpClient::Connection {
  std::unique_ptr<tcp::socket> plain;
  std::unique_ptr<beast::ssl_stream<tcp::socket>> secure;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;

  tcp::socket& socket() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

struct HttpClient::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)), tls(asio::ssl::context::tls_client) {
    auto env = [](const char* upper, const char* lower) -> std::string {
      const char* v = std::getenv(upper);
      if (v == nullptr || *v == '\0') v = std::getenv(lower);
      return v != nullptr ? std::string(v) : std::string();
    };
    https_proxy = options.https_proxy.value_or(env("HTTPS_PROXY", "https_proxy"));
    no_proxy = options.no_proxy.value_or(env("NO_PROXY", "no_proxy"));
    if (!https_proxy.empty() && !parse_proxy_url(https_proxy)) {
      // The value may hold credentials: never logged.
      spdlog::warn(
          "HTTPS_PROXY is not a usable proxy URL (http://[user:password@]host[:port]); provider "
          "calls go direct");
    }
    tls.set_default_verify_paths();
    tls.set_verify_mode(asio::ssl::verify_peer);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
  }

  ClientOptions options;
  std::string https_proxy;
  std::string no_proxy;
  asio::ssl::context tls;
  mutable std::mutex mutex;
  // (loop, origin) → idle connections, most recently used last.
  std::map<std::pair<const void*, std::string>, std::vector<std::unique_ptr<Connection>>> idle;
  std::uint64_t opened = 0;

  std::unique_ptr<Connection> checkout(const void* loop, const std::string& origin) {
    std::lock_guard lock(mutex);
    auto it = idle.find({loop, origin});
    if (it == idle.end()) return nullptr;
    auto& list = it->second;
    while (!list.empty()) {
      auto c = std::move(list.back());
      list.pop_back();
      if (Clock::now() - c->idle_since < options.idle_timeout && still_open(c->socket())) return c;
    }
    return nullptr;
  }

  // An idle connection that the server has closed (FIN or reset), or that holds bytes nobody asked
  // for, cannot carry a request. A non-blocking one-byte peek tells without a round trip, so a
  // request is never sent on a connection known to be dead — and a request that fails after it
  // was sent is a real attempt, counted by the retry policy (a blind resend on a fresh connection
  // could make one call reach the provider twice per attempt).
  static bool still_open(tcp::socket& socket) {
    char byte = 0;
    const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  void checkin(const void* loop, const std::string& origin, std::unique_ptr<Connection> c) {
    c->idle_since = Clock::now();
    std::lock_guard lock(mutex);
    auto& list = idle[{loop, origin}];
    if (list.size() >= options.max_idle_per_origin) list.erase(list.begin());
    list.push_back(std::move(c));
  }

  asio::awaitable<std::expected<std::unique_ptr<Connection>, TransportError>> connect(
      const Endpoint& e, Clock::time_point deadline);
  template <class Stream>
  asio::awaitable<std::expected<HttpResponse, TransportError>> exchange(
      Stream& stream, Connection& c, const Endpoint& e, HttpRequest& request, const Timeouts& t,
      Clock::time_point deadline, HeadSink& on_head, BodySink& on_body, bool& keep);
};

namespace {
Millis remaining(Clock::time_point deadline) {
  return std::max(Millis(1), std::chrono::duration_cast<Millis>(deadline - Clock::now()));
}
Millis phase(Millis limit, Clock::time_point deadline) {
  return std::min(limit, remaining(deadline));
}
}  // namespace

asio::awaitable<std::expected<std::unique_ptr<HttpClient::Connection>, TransportError>>
HttpClient::Impl::connect(const Endpoint& e, Clock::time_point deadline) {
  auto ex = co_await asio::this_coro::executor;
  const std::optional<Proxy> proxy = proxy_for(e, https_proxy, no_proxy);
  const std::string& dial_host = proxy ? proxy->host : e.host;
  const std::uint16_t dial_port = proxy ? proxy->port : e.port;
  tcp::resolver resolver(ex);
  auto [rec, results] = co_await resolver.async_resolve(dial_host, std::to_string(dial_port), kTuple);
  if (rec) {
    co_return std::unexpected(TransportError{
        rec == asio::error::operation_aborted ? TransportFailure::kCancelled : TransportFailure::kConnect,
        false, proxy ? "cannot resolve the proxy" : "cannot resolve host"});
  }
  auto c = std::make_unique<Connection>();
  // Room for a whole typical answer: the head and body then arrive in one read instead of
  // Beast's 512-byte first reads.
  c->buffer.reserve(kReadSize);
  tcp::socket* socket = nullptr;
  if (e.tls) {
    c->secure = std::make_unique<beast::ssl_stream<tcp::socket>>(ex, tls);
    socket = &beast::get_lowest_layer(*c->secure);
  } else {
    c->plain = std::make_unique<tcp::socket>(ex);
    socket = c->plain.get();
  }
  // One deadline for the whole set-up: connect, proxy tunnel, TLS handshake.
  IoDeadline setup(*socket);
  setup.arm(remaining(deadline));
  auto [cec, ep] = co_await asio::async_connect(*socket, results, kTuple);
  if (cec) {
    co_return std::unexpected(TransportError{setup.classify(cec, TransportFailure::kConnect), false,
                                             "connect failed: " + cec.message()});
  }
  boost::system::error_code ignored;
  socket->set_option(tcp::no_delay(true), ignored);
  if (proxy) {
    // CONNECT host:port, then TLS end to end through the tunnel.
    std::string authority = e.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", e.host, e.port)
                                                                  : fmt::format("{}:{}", e.host, e.port);
    bhttp::request<bhttp::empty_body> req{bhttp::verb::connect, authority, 11};
    req.set(bhttp::field::host, authority);
    if (!proxy->authorization.empty()) req.set(bhttp::field::proxy_authorization, proxy->authorization);
    auto [wec, wn] = co_await bhttp::async_write(*socket, req, kTuple);
    if (wec) {
      co_return std::unexpected(TransportError{setup.classify(wec, TransportFailure::kConnect), false,
                                               "proxy closed the connection"});
    }
    bhttp::response_parser<bhttp::empty_body> parser;
    parser.skip(true);  // a CONNECT answer has no body
    beast::flat_buffer buffer;
    auto [pec, pn] = co_await bhttp::async_read_header(*socket, buffer, parser, kTuple);
    if (pec) {
      co_return std::unexpected(TransportError{setup.classify(pec, TransportFailure::kConnect), false,
                                               "no answer from the proxy: " + pec.message()});
    }
    if (parser.get().result_int() / 100 != 2 || buffer.size() != 0) {
      co_return std::unexpected(
          TransportError{TransportFailure::kConnect, false,
                         fmt::format("the proxy refused the tunnel (HTTP {})", parser.get().result_int())});
    }
  }
  if (e.tls) {
    if (SSL_set_tlsext_host_name(c->secure->native_handle(), e.host.c_str()) != 1) {
      co_return std::unexpected(
          TransportError{TransportFailure::kConnect, false, "cannot set TLS server name"});
    }
    c->secure->set_verify_callback(asio::ssl::host_name_verification(e.host));
    auto [hec] = co_await c->secure->async_handshake(asio::ssl::stream_base::client, kTuple);
    if (hec) {
      co_return std::unexpected(TransportError{setup.classify(hec, TransportFailure::kConnect), false,
                                               "TLS handshake failed: " + hec.message()});
    }
  }
  setup.cancel();
  {
    std::lock_guard lock(mutex);
    ++opened;
  }
  co_return c;
}

template <class Stream>
asio::awaitable<std::expected<HttpResponse, TransportError>> HttpClient::Impl::exchange(
    Stream& stream, Connection& c, const Endpoint& e, HttpRequest& request, const Timeouts& t,
    Clock::time_point deadline, HeadSink& on_head, BodySink& on_body, bool& keep) {
  keep = false;
  // The head is rendered into one string and sent with the body (not copied) in one write.
  std::string head;
  head.reserve(256 + request.target.size());
  std::string_view verb = bhttp::to_string(request.method);
  head.append(verb.data(), verb.size()).append(" ").append(request.target).append(" HTTP/1.1\r\nHost: ");
  head.append(e.host);
  if (e.port != (e.tls ? 443 : 80)) head.append(":").append(std::to_string(e.port));
  head.append("\r\n");
  for (const auto& [k, v] : request.headers) head.append(k).append(": ").append(v).append("\r\n");
  if (!request.body.empty() || request.method == bhttp::verb::post || request.method == bhttp::verb::put) {
    head.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  }
  head.append("\r\n");
  std::array<asio::const_buffer, 2> wire{asio::buffer(head), asio::buffer(request.body)};

  // The first-byte deadline runs from the start of the write: one timer for write and head.
  IoDeadline io(c.socket());
  io.arm(phase(t.first_byte, deadline));
  auto [wec, wn] = co_await asio::async_write(stream, wire, kTuple);
  if (wec) {
    co_return std::unexpected(
        TransportError{io.classify(wec, TransportFailure::kReset), false, "send failed: " + wec.message()});
  }

  HttpResponse out;
  ResponseReader parser(out);
  parser.body_limit(options.max_body_bytes);
  parser.eager(true);
  auto [hec, hn] = co_await bhttp::async_read_header(stream, c.buffer, parser, kTuple);
  if (hec) {
    co_return std::unexpected(TransportError{io.classify(hec, TransportFailure::kReset), false,
                                             "no response head: " + hec.message()});
  }
  if (on_head) co_await on_head(out);

  auto interrupted = [&io](const beast::error_code& ec) {
    TransportFailure kind = io.classify(
        ec, ec == bhttp::error::body_limit ? TransportFailure::kProtocol : TransportFailure::kReset);
    return std::unexpected(TransportError{kind, true, "response body interrupted: " + ec.message()});
  };
  for (;;) {
    // Parse what is buffered first: a small answer usually arrived with its head, and needs no
    // further read.
    beast::error_code pec;
    while (c.buffer.size() > 0 && !parser.is_done()) {
      std::size_t used = parser.put(c.buffer.data(), pec);
      c.buffer.consume(used);
      if (pec == bhttp::error::need_more) {
        pec = {};
        break;
      }
      if (pec || used == 0) break;
    }
    if (pec) co_return interrupted(pec);
    std::string& bytes = parser.body();
    if (!bytes.empty()) {
      if (on_body) {
        if (!co_await on_body(bytes)) {
          co_return std::unexpected(
              TransportError{TransportFailure::kCancelled, true, "cancelled by the caller"});
        }
      } else {
        if (out.body.size() + bytes.size() > options.max_body_bytes) {
          co_return std::unexpected(
              TransportError{TransportFailure::kProtocol, true, "response body too large"});
        }
        if (out.body.empty()) {
          out.body.swap(bytes);
        } else {
          out.body.append(bytes);
        }
      }
      bytes.clear();
    }
    if (parser.is_done()) break;
    io.arm(phase(t.between_chunks, deadline));
    auto [rec, rn] = co_await stream.async_read_some(c.buffer.prepare(kReadSize), kTuple);
    c.buffer.commit(rn);
    if (rec == asio::error::eof || rec == asio::ssl::error::stream_truncated) {
      // A body that ends with the connection (no length, not chunked) is complete here.
      parser.put_eof(pec);
      if (pec) co_return interrupted(pec);
      continue;
    }
    if (rec) co_return interrupted(rec);
  }
  keep = parser.keep_alive();
  co_return out;
}

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpClient::~HttpClient() = default;

void HttpClient::close_idle() {
  std::map<std::pair<const void*, std::string>, std::vector<std::unique_ptr<Connection>>> idle;
  {
    std::lock_guard lock(impl_->mutex);
    idle.swap(impl_->idle);
  }
}

std::size_t HttpClient::idle_connections() const {
  std::lock_guard lock(impl_->mutex);
  std::size_t n = 0;
  for (const auto& [k, v] : impl_->idle) n += v.size();
  return n;
}

std::uint64_t HttpClient::connections_opened() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->opened;
}

asio::awaitable<std::expected<HttpResponse, TransportError>> HttpClient::send(
    const Endpoint& endpoint, HttpRequest request, Timeouts timeouts, HeadSink on_head, BodySink on_body) {
  auto ex = co_await asio::this_coro::executor;
  const void* loop = &asio::query(ex, asio::execution::context);
  const std::string origin = endpoint.origin();
  const Clock::time_point deadline = Clock::now() + timeouts.total;

  std::unique_ptr<Connection> c = impl_->checkout(loop, origin);
  if (!c) {
    Clock::time_point connect_deadline = std::min(deadline, Clock::now() + timeouts.connect);
    auto fresh = co_await impl_->connect(endpoint, connect_deadline);
    if (!fresh) co_return std::unexpected(fresh.error());
    c = std::move(*fresh);
  }
  bool keep = false;
  // (No co_await inside ?: — g++ 12 destroys such temporaries twice.)
  std::expected<HttpResponse, TransportError> result;
  if (c->secure) {
    result = co_await impl_->exchange(*c->secure, *c, endpoint, request, timeouts, deadline, on_head, on_body,
                                      keep);
  } else {
    result = co_await impl_->exchange(*c->plain, *c, endpoint, request, timeouts, deadline, on_head, on_body,
                                      keep);
  }
  if (result && keep) impl_->checkin(loop, origin, std::move(c));
  co_return result;
}

}  // namespace parley::provider
