// The request/response vocabulary shared by the server, the router and every handler.
// Thread contract: a RequestContext lives on one event-loop thread for the whole request; handlers
// must not block it (use BlockingPool::run for database work and hashing).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/limits.hpp"

namespace parley::http {

class WebSocketHandler;

namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;
using StatusCode = beast_http::status;
using Method = beast_http::verb;

// Lets a handler send a streamed (chunked) response, e.g. Server-Sent Events. The handler calls
// begin() once with the head, then write() per chunk; each chunk is flushed to the socket before
// write() completes. write() returns false once the client is gone: stop producing then. When the
// handler returns, the server ends the chunked body; the Response it returns is ignored.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  virtual boost::asio::awaitable<bool> begin(Response head) = 0;
  virtual boost::asio::awaitable<bool> write(std::string_view data) = 0;
  [[nodiscard]] virtual bool started() const = 0;
  // While on, a client that closes its side of the connection (FIN or reset) cancels what the
  // handler awaits — a terminal cancellation of the request's coroutine, on which a provider call
  // ends without retrying — and client_left() turns true. A client that has already sent its next
  // (pipelined) request is present. Use it through CloseWatch.
  virtual void watch_close(bool on) = 0;
  [[nodiscard]] virtual bool client_left() const = 0;
};

// Watches for the client leaving while it lives; see StreamWriter::watch_close.
class CloseWatch {
 public:
  explicit CloseWatch(StreamWriter& stream) : stream_(stream) { stream_.watch_close(true); }
  CloseWatch(const CloseWatch&) = delete;
  CloseWatch& operator=(const CloseWatch&) = delete;
  ~CloseWatch() { finish(); }
  // Stops watching (once; later calls only answer) and says whether the client left meanwhile.
  bool finish() {
    if (armed_) {
      armed_ = false;
      stream_.watch_close(false);
    }
    return stream_.client_left();
  }

 private:
  StreamWriter& stream_;
  bool armed_ = true;
};

struct PathParam {
  std::string_view name;
  std::string value;  // percent-decoded
};

struct RequestContext {
  Request& request;
  std::string request_id;
  std::string_view route;  // the matched template, e.g. "/api/v1/users/{user_id}"
  std::vector<PathParam> params;
  std::string client_address;
  std::chrono::steady_clock::time_point started;
  boost::asio::any_io_executor executor;  // this request's event loop
  StreamWriter* stream = nullptr;         // set by the server; lets a handler stream (SSE)
  // Set by a handler answering with bytes that live, unchanged, as long as the server (files
  // linked into the binary): written in place of the response's body, without a copy per request.
  // The handler sets Content-Length.
  std::string_view static_body;
  // Set by a handler that accepts a WebSocket upgrade (http/websocket.hpp), which then returns 101
  // Switching Protocols: the server completes the handshake, answering with `upgrade_protocol`
  // as Sec-WebSocket-Protocol when it is set, and gives the connection to the handler.
  std::shared_ptr<WebSocketHandler> upgrade;
  std::string upgrade_protocol;

  [[nodiscard]] std::string_view param(std::string_view name) const {
    for (const auto& p : params) {
      if (p.name == name) return p.value;
    }
    return {};
  }
  [[nodiscard]] std::string_view path() const;
  [[nodiscard]] std::string_view query_string() const;
  // First value of a query parameter, percent-decoded; nullopt when absent.
  [[nodiscard]] std::optional<std::string> query(std::string_view name) const;
  [[nodiscard]] std::string_view header(std::string_view name) const;
};

using Handler = std::function<boost::asio::awaitable<Response>(RequestContext&)>;

// Response builders. Each sets Content-Type and Content-Length.
Response json_response(StatusCode status, const boost::json::value& body);
// The same for an object or an array, serialized where it is (passing one as a value would copy it).
Response json_response(StatusCode status, const boost::json::object& body);
Response json_response(StatusCode status, const boost::json::array& body);
Response text_response(StatusCode status, std::string body, std::string_view content_type);
// The error envelope of PRODUCT.md: {"error":{"code","message","type","param","request_id"}}.
// With Retry-After and the rate-limit headers when the error is a limit's refusal.
Response error_response(const Error& error, std::string_view request_id);
// Retry-After / retry-after-ms (a refusal), X-RateLimit-Limit/Remaining/Reset (seconds) and
// OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens}. Provider headers already on the
// response are kept where they leave less (docs/LIMITS.md).
void set_rate_limit_headers(Response& res, const RateLimitInfo& info);

// Status recorded for a request whose client left before the answer (nginx's convention).
inline constexpr unsigned kClientClosedStatus = 499;
// What a handler returns when its client left (see StreamWriter::watch_close): nobody receives
// it; the access log and metrics record 499.
Response client_closed_response();
std::string error_body(const Error& error, std::string_view request_id);

// Parses the request body as JSON (400 INVALID_JSON when it is not, or when one object repeats a
// key, which readers resolve differently; 415 when the Content-Type says
// it is something else). The value is built in `sp`.
Result<boost::json::value> parse_json_body(const RequestContext& ctx, boost::json::storage_ptr sp = {});
// The same rules for JSON from elsewhere (a WebSocket message); `what` names it in the error.
Result<boost::json::value> parse_json_text(std::string_view text, std::string_view what,
                                           boost::json::storage_ptr sp = {});

// Decodes %XX escapes; in query strings `+` also means a space.
std::string percent_decode(std::string_view text, bool plus_as_space = false);

}  // namespace parley::http
