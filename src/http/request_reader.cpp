#include "http/request_reader.hpp"

#include <boost/beast/http/error.hpp>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "core/text.hpp"

namespace parley::http {

namespace {

std::optional<Error> check_transfer_encoding(const Request& head) {
  const std::size_t fields = head.count(beast_http::field::transfer_encoding);
  if (fields == 0) return std::nullopt;
  std::vector<std::string_view> codings;
  auto [first, last] = head.equal_range(beast_http::field::transfer_encoding);
  for (auto it = first; it != last; ++it) {
    std::string_view list = it->value();
    for (;;) {
      const std::size_t comma = list.find(',');
      const std::string_view coding = trim_blanks(list.substr(0, comma));
      if (!coding.empty()) codings.push_back(coding);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  if (codings.empty()) return Error(ErrorKind::kBadRequest, "Transfer-Encoding is empty");
  if (head.version() < 11) {
    return Error(ErrorKind::kBadRequest, "HTTP/1.0 requests may not use Transfer-Encoding");
  }
  if (!iequals(codings.back(), "chunked")) {
    return Error(ErrorKind::kBadRequest, "Transfer-Encoding of a request must end with chunked");
  }
  if (codings.size() > 1) {
    return Error(ErrorKind::kBadRequest, "Only the chunked transfer coding is supported, once");
  }
  return std::nullopt;
}

}  // namespace

RequestReader::RequestReader(std::size_t header_limit, std::uint64_t body_limit)
    : header_limit_(header_limit) {
  parser_.header_limit(static_cast<std::uint32_t>(header_limit));
  parser_.body_limit(body_limit);
}

FeedResult RequestReader::feed(boost::beast::flat_buffer& buffer, bool head_only) noexcept {
  auto done = [&] { return head_only ? parser_.is_header_done() : parser_.is_done(); };
  for (;;) {
    if (done()) return {};
    if (buffer.size() > 0) {
      const bool in_head = !parser_.is_header_done();
      boost::system::error_code ec;
      std::size_t used = 0;
      try {
        used = parser_.put(buffer.data(), ec);
      } catch (const std::length_error&) {
        return {beast_http::error::header_limit, false};
      } catch (const std::exception&) {  // std::bad_alloc from the body string
        return {beast_http::error::body_limit, false};
      }
      buffer.consume(used);
      if (in_head) {
        head_bytes_ += used;
        if (head_bytes_ > header_limit_) return {beast_http::error::header_limit, false};
      }
      if (ec && ec != beast_http::error::need_more) return {ec, false};
      if (!ec && used > 0) continue;
    }
    if (buffer.size() >= buffer.max_size()) return {beast_http::error::buffer_overflow, false};
    return {{}, true};
  }
}

boost::system::error_code RequestReader::finish_at_eof(bool head_only) noexcept {
  if (!parser_.got_some()) return beast_http::error::end_of_stream;
  boost::system::error_code ec;
  try {
    parser_.put_eof(ec);
  } catch (const std::exception&) {
    return beast_http::error::partial_message;
  }
  if (ec) return ec;
  const bool done = head_only ? parser_.is_header_done() : parser_.is_done();
  return done ? boost::system::error_code{} : beast_http::error::partial_message;
}

std::optional<Error> check_request_head(const Request& head) {
  if (head.count(beast_http::field::content_length) > 0 &&
      head.count(beast_http::field::transfer_encoding) > 0) {
    return Error(ErrorKind::kBadRequest, "Content-Length and Transfer-Encoding must not both be present");
  }
  if (auto te = check_transfer_encoding(head)) return te;
  if (head.count(beast_http::field::host) > 1) {
    return Error(ErrorKind::kBadRequest, "A request carries one Host header");
  }
  return std::nullopt;
}

}  // namespace parley::http
