// Reading one HTTP/1.1 request from a connection's bytes: Beast's parser with parley's limits, fed
// by the caller (the server's session reads the socket; the fuzz target and the unit tests feed
// bytes directly). Nothing here does I/O, and nothing throws.
//
// Why not beast::http::async_read: Beast's field container throws std::length_error for a field of
// 64 KiB or more (possible in a chunk trailer, which no header limit covers, or in a head when the
// header limit is above 64 KiB). Thrown inside a composed operation's completion handler, it
// escapes io_context::run() and ends the process. Fed from the session's coroutine, the parser's
// exceptions stay here.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/error.hpp"

namespace parley::http {

// As in http/types.hpp, which this header does not include so that the fuzz target (built with
// clang and libc++) needs nothing but Beast's headers and core/error.cpp.
namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using RequestParser = beast_http::request_parser<beast_http::string_body>;

struct FeedResult {
  boost::system::error_code ec;  // header_limit, body_limit, buffer_overflow, or a syntax error
  bool need_more = false;        // read more bytes into the buffer, then feed again
};

// One request being read. Owns the parser; limits as configured (http.max_header_bytes,
// http.max_body_bytes).
class RequestReader {
 public:
  RequestReader(std::size_t header_limit, std::uint64_t body_limit);

  // Feeds what `buffer` holds to the parser until it has the head (`head_only`) or the whole
  // message, needs more bytes, or fails; consumes what the parser used. A full buffer (max_size)
  // that still needs more is buffer_overflow: it bounds what a trailer, or bytes before a head, may
  // occupy. The header limit counts the whole head however it arrives: Beast's own check restarts
  // after a start line it consumed in an earlier call, which let a head in pieces exceed the limit
  // by the start line's length (found by the request_reader fuzz target).
  FeedResult feed(boost::beast::flat_buffer& buffer, bool head_only) noexcept;

  // The peer closed its side: end_of_stream before any byte, partial_message for an unfinished
  // message, nothing when the parser is satisfied (a message delimited by EOF).
  boost::system::error_code finish_at_eof(bool head_only) noexcept;

  RequestParser& parser() { return parser_; }

 private:
  RequestParser parser_;
  std::size_t header_limit_;
  std::size_t head_bytes_ = 0;  // consumed by the parser before the head was complete
};

// A head that parsed but must not be served, as the error to answer (400) before closing:
// Content-Length with Transfer-Encoding; a Transfer-Encoding other than `chunked` alone (RFC 9112
// §6.1: one that does not end in chunked has no knowable length, and Beast would read it as an
// empty body, running the bytes after it as a second request); Transfer-Encoding on HTTP/1.0;
// more than one Host (§3.2).
std::optional<Error> check_request_head(const Request& head);

}  // namespace parley::http
