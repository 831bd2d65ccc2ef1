// The properties of parley's request reading (src/http/request_reader.hpp) that the libFuzzer
// target `request_reader_fuzz` and the unit test `http_request_reader_property_test.cpp` check:
//
//   - nothing throws and nothing trips ASan/UBSan, whatever the bytes and limits;
//   - the outcome (where reading stops — head, head check, body — or the request read, whole) is
//     the same however the bytes arrive: one read, or reads of sizes drawn from a seed, as a
//     socket would give them;
//   - a read request respects the limits: its body is within the body limit;
//   - a head that check_request_head accepts has no Transfer-Encoding but `chunked` alone, and a
//     request without Content-Length or Transfer-Encoding has an empty body (no bytes of the
//     connection are taken for a body the head did not declare, nor left to run as a request).
//
// Input layout: byte 0 picks the header limit (bits 0-1: 256 B, 1 KiB, 16 KiB, 128 KiB — over
// 64 KiB reaches Beast's per-field limit) and the body limit (bits 2-3: 0, 16 B, 1 KiB, 1 MiB);
// byte 1 seeds the read sizes; the rest is what the client sent.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "http/request_reader.hpp"

namespace parley::http::fuzz {

struct ReadLimits {
  std::size_t header_bytes = 16 * 1024;
  std::uint64_t body_bytes = 1 << 20;
};

// What the server's session would do with `stream`: read the head, check it, read the body.
struct ReadOutcome {
  std::string verdict;  // "ok", or where and why reading stopped
  std::string method;
  std::string target;
  std::string body;
  bool chunked = false;
  bool has_length = false;
  bool has_transfer_encoding = false;
  std::string transfer_encoding;

  bool operator==(const ReadOutcome&) const = default;
};

// Reads like Server::Impl::session: the same buffer bound, parser limits and order of checks.
// seed 0: every read takes all it can (up to 64 KiB, as the session asks); otherwise read sizes
// are drawn from the seed (1 byte up to all that is left).
inline ReadOutcome read_like_session(std::string_view stream, const ReadLimits& limits, std::uint32_t seed) {
  boost::beast::flat_buffer buffer(limits.header_bytes + 16 * 1024);
  RequestReader reader(limits.header_bytes, limits.body_bytes);
  RequestParser& parser = reader.parser();
  std::mt19937 rng(seed);
  std::size_t position = 0;
  auto pump = [&](bool head_only) -> boost::system::error_code {
    for (;;) {
      FeedResult fed = reader.feed(buffer, head_only);
      if (!fed.need_more) return fed.ec;
      if (position == stream.size()) return reader.finish_at_eof(head_only);
      std::size_t room = std::min<std::size_t>(buffer.max_size() - buffer.size(), 65536);
      std::size_t n = std::min(room, stream.size() - position);
      if (seed != 0) n = std::min<std::size_t>(n, 1 + rng() % std::max<std::size_t>(1, n));
      auto into = buffer.prepare(n);
      std::copy_n(stream.data() + position, n, static_cast<char*>(into.data()));
      buffer.commit(n);
      position += n;
    }
  };
  ReadOutcome out;
  if (auto ec = pump(true)) {
    out.verdict = "head: " + ec.message();
    return out;
  }
  const Request& head = parser.get();
  out.method = std::string(head.method_string());
  out.target = std::string(head.target());
  out.has_length = head.count(beast_http::field::content_length) > 0;
  out.has_transfer_encoding = head.count(beast_http::field::transfer_encoding) > 0;
  if (out.has_transfer_encoding)
    out.transfer_encoding = std::string(head[beast_http::field::transfer_encoding]);
  out.chunked = parser.chunked();
  if (auto rejected = check_request_head(head)) {
    out.verdict = "rejected: " + rejected->message;
    return out;
  }
  if (auto ec = pump(false)) {
    out.verdict = "body: " + ec.message();
    return out;
  }
  out.body = parser.get().body();
  out.verdict = "ok";
  return out;
}

inline std::optional<std::string> check_request_input(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return std::nullopt;
  static constexpr std::array<std::size_t, 4> kHeader{256, 1024, 16 * 1024, 128 * 1024};
  static constexpr std::array<std::uint64_t, 4> kBody{0, 16, 1024, 1 << 20};
  const ReadLimits limits{kHeader[data[0] & 3], kBody[(data[0] >> 2) & 3]};
  const std::uint32_t seed = 1 + data[1];
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  const ReadOutcome whole = read_like_session(stream, limits, 0);
  const ReadOutcome pieces = read_like_session(stream, limits, seed);
  // Where reading stopped must agree; why may differ for bytes that are bad in several ways (Beast
  // may see a bad method in a whole line before it would report an unfinished head).
  auto stage = [](const ReadOutcome& o) { return o.verdict.substr(0, o.verdict.find(':')); };
  if (stage(whole) != stage(pieces) || (whole.verdict == "ok" && !(whole == pieces))) {
    return "outcome depends on how the bytes arrive: \"" + whole.verdict + "\" in one read, \"" +
           pieces.verdict + "\" in pieces";
  }
  if (whole.verdict != "ok") return std::nullopt;
  if (whole.body.size() > limits.body_bytes) return "a body over the body limit was read";
  if (whole.has_transfer_encoding) {
    // A list whose only non-empty element is chunked: RFC 9110 §5.6.1 has recipients accept
    // empty elements ("chunked,", ", chunked").
    std::vector<std::string> codings;
    std::string_view list = whole.transfer_encoding;
    for (;;) {
      const std::size_t comma = list.find(',');
      std::string_view te = list.substr(0, comma);
      while (!te.empty() && (te.front() == ' ' || te.front() == '\t')) te.remove_prefix(1);
      while (!te.empty() && (te.back() == ' ' || te.back() == '\t')) te.remove_suffix(1);
      if (!te.empty()) codings.emplace_back(te);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
    std::string lower = codings.size() == 1 ? codings.front() : std::string();
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower != "chunked" || !whole.chunked) return "a Transfer-Encoding other than chunked was accepted";
  }
  if (!whole.has_length && !whole.has_transfer_encoding && !whole.body.empty()) {
    return "a request without Content-Length or Transfer-Encoding got a body";
  }
  return std::nullopt;
}

}  // namespace parley::http::fuzz
