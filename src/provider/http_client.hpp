// HTTP/1.1 client for provider calls: plain HTTP and HTTPS (OpenSSL: system CA store, SNI,
// host-name verification, TLS 1.2+), a bounded keep-alive pool per (event loop, origin) so a
// connection and its TLS session are reused instead of handshaking per request, TCP_NODELAY, and
// per-phase deadlines (connect, first byte, between body chunks, total).
//
// Threads: one HttpClient serves every event loop; a pooled connection is reused only on the loop
// that opened it. Nothing here blocks a loop thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/verb.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace parley::provider {

using Millis = std::chrono::milliseconds;

struct Endpoint {
  bool tls = false;
  std::string host;
  std::uint16_t port = 80;
  std::string base_path;  // "/v1", no trailing slash
  [[nodiscard]] std::string origin() const;
};

// http(s)://host[:port][/path]; plain http only for loopback hosts unless allow_plain_remote.
Result<Endpoint> parse_base_url(std::string_view url, bool allow_plain_remote = false);

// A forward proxy for HTTPS endpoints: the connection is tunnelled with CONNECT, TLS runs end to
// end through it (the proxy sees neither the key nor the traffic).
struct Proxy {
  std::string host;
  std::uint16_t port = 80;
  std::string authorization;  // "Basic …" from user:password in the proxy URL; empty: none
};

// Reads a proxy URL as HTTPS_PROXY holds it: "http://[user:password@]host[:port]" or "host:port".
Result<Proxy> parse_proxy_url(std::string_view url);
// NO_PROXY rules: comma-separated host names (matching the host and its subdomains; a leading dot
// or "*." is allowed), IP addresses, optionally with ":port"; "*" matches everything.
bool no_proxy_matches(std::string_view no_proxy, std::string_view host, std::uint16_t port);
// The proxy for an endpoint: HTTPS_PROXY (or https_proxy) for https:// endpoints, unless NO_PROXY
// (or no_proxy) matches the host or the host is loopback. Plain http:// endpoints go direct.
std::optional<Proxy> proxy_for(const Endpoint& endpoint, std::string_view https_proxy,
                               std::string_view no_proxy);

struct Timeouts {
  Millis connect{5'000};
  Millis first_byte{60'000};      // request write started → response head
  Millis between_chunks{60'000};  // gap between body reads
  Millis total{120'000};          // whole exchange
};

using Header = std::pair<std::string, std::string>;

struct HttpRequest {
  boost::beast::http::verb method = boost::beast::http::verb::post;
  std::string target;  // path and query, e.g. "/v1/chat/completions"
  std::string body;
  std::vector<Header> headers;  // besides Host, Content-Length, Connection
};

struct HttpResponse {
  unsigned status = 0;
  std::vector<Header> headers;  // as received, lower-case names
  std::string body;             // empty when the body was streamed to a sink
  [[nodiscard]] std::optional<std::string_view> header(std::string_view lower_name) const;
};

enum class TransportFailure {
  kConnect,   // no connection (DNS, refused, TLS handshake, connect deadline)
  kReset,     // connection lost before the complete response
  kTimeout,   // first-byte, between-chunks or total deadline
  kProtocol,  // not HTTP, or a body over the limit
  kCancelled  // our client went away: the sink asked to stop, or the call was cancelled
};

struct TransportError {
  TransportFailure kind = TransportFailure::kConnect;
  bool response_started = false;  // some response byte had arrived
  std::string detail;             // for logs; never contains credentials
};

// Receives body bytes as they arrive (after the head). Return false to abort the exchange.
using BodySink = std::function<boost::asio::awaitable<bool>(std::string_view bytes)>;
// Called once with the response head before any body byte reaches the sink.
using HeadSink = std::function<boost::asio::awaitable<void>(const HttpResponse& head)>;

struct ClientOptions {
  std::size_t max_idle_per_origin = 64;
  // Proxy settings; HttpClient reads HTTPS_PROXY / NO_PROXY (either case) from the environment
  // when these are not given.
  std::optional<std::string> https_proxy;
  std::optional<std::string> no_proxy;
  Millis idle_timeout{30'000};
  std::size_t max_body_bytes = std::size_t{64} * 1024 * 1024;
};

class HttpClient {
 public:
  explicit HttpClient(ClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request. Without sinks the whole body is collected in the result; with sinks the
  // head goes to on_head and body bytes to on_body as they arrive.
  boost::asio::awaitable<std::expected<HttpResponse, TransportError>> send(const Endpoint& endpoint,
                                                                           HttpRequest request,
                                                                           Timeouts timeouts,
                                                                           HeadSink on_head = {},
                                                                           BodySink on_body = {});

  // Closes every pooled connection. Call before the event loops that own them are destroyed.
  void close_idle();

  [[nodiscard]] std::size_t idle_connections() const;
  [[nodiscard]] std::uint64_t connections_opened() const;

  struct Connection;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::provider
