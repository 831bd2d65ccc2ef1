// Reading requests (src/http/request_reader.hpp): the head checks of RFC 9112, limits that hold
// without exceptions, and the fuzz target's properties (tests/fuzz/request_reader_invariants.hpp)
// on its seed corpus and on generated requests, so every normal build runs them.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "../fuzz/request_reader_invariants.hpp"
#include "fuzz_corpus.hpp"

namespace parley::http {
namespace {

using fuzz::read_like_session;
using fuzz::ReadLimits;

const std::string kHost = "Host: localhost\r\n";

std::string post_with_te(std::string_view te) {
  return "POST /x HTTP/1.1\r\n" + kHost + "Transfer-Encoding: " + std::string(te) +
         "\r\n\r\n0\r\n\r\nGET /health HTTP/1.1\r\n" + kHost + "\r\n";
}

TEST(HttpRequestReader, OnlyChunkedAloneIsAcceptedAsTransferEncoding) {
  // Refused by the head check or by Beast itself: either way no body is read and the session
  // answers 400 and closes.
  for (std::string_view te : {"identity", "gzip", "xchunked", "chunked, gzip", "gzip, chunked",
                              "chunked, chunked", "", ", chunked ,chunked"}) {
    auto out = read_like_session(post_with_te(te), {}, 0);
    EXPECT_TRUE(out.verdict.starts_with("rejected: ") || out.verdict.starts_with("head: "))
        << "\"" << te << "\": " << out.verdict;
  }
  // Empty list elements are allowed (RFC 9110 §5.6.1).
  for (std::string_view te : {"chunked", "Chunked", " CHUNKED ", "chunked,", ", chunked"}) {
    auto out = read_like_session(post_with_te(te), {}, 0);
    EXPECT_EQ(out.verdict, "ok") << te;
  }
}

TEST(HttpRequestReader, TransferEncodingFieldsAreReadAsOneList) {
  auto out =
      read_like_session("POST /x HTTP/1.1\r\n" + kHost +
                            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
                        {}, 0);
  EXPECT_TRUE(out.verdict.starts_with("rejected: ") || out.verdict.starts_with("head: ")) << out.verdict;
}

TEST(HttpRequestReader, ContentLengthWithTransferEncodingHttp10AndTwoHostsAreRejected) {
  for (const std::string& req :
       {"POST /x HTTP/1.1\r\n" + kHost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /x HTTP/1.0\r\n" + kHost + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.1\r\n" + kHost + "Host: other.example\r\n\r\n"}) {
    auto out = read_like_session(req, {}, 0);
    EXPECT_TRUE(out.verdict.starts_with("rejected: ") || out.verdict.starts_with("head: "))
        << req << out.verdict;
  }
}

TEST(HttpRequestReader, AFieldOver64KiBIsAHeaderLimitNotAnException) {
  const ReadLimits big{128 * 1024, 1 << 20};
  const std::string value(70'000, 'a');
  auto trailer = read_like_session(
      "POST /x HTTP/1.1\r\n" + kHost + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-Big: " + value + "\r\n\r\n",
      big, 0);
  EXPECT_EQ(trailer.verdict, "body: header limit exceeded");
  auto header = read_like_session("GET /x HTTP/1.1\r\n" + kHost + "X-Big: " + value + "\r\n\r\n", big, 0);
  EXPECT_EQ(header.verdict, "head: header limit exceeded");
}

TEST(HttpRequestReader, AHeadOverTheLimitIsRefusedHoweverItArrives) {
  const std::string head = "GET /x HTTP/1.1\r\n" + kHost + "X-A: " + std::string(220, 'x') + "\r\n\r\n";
  ASSERT_GT(head.size(), 256U);
  for (std::uint32_t seed : {0U, 1U, 2U, 3U, 50U}) {
    EXPECT_EQ(read_like_session(head, {256, 0}, seed).verdict, "head: header limit exceeded") << seed;
  }
  EXPECT_EQ(read_like_session(head, {head.size(), 0}, 7).verdict, "ok");
}

TEST(HttpRequestReader, ATrailerCannotGrowPastTheConnectionBuffer) {
  const std::string value(1 << 20, 't');
  auto out =
      read_like_session("POST /x HTTP/1.1\r\n" + kHost +
                            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: " + value + "\r\n\r\n",
                        {}, 0);
  EXPECT_EQ(out.verdict, "body: buffer overflow");
}

TEST(HttpRequestReader, ChunkedBodiesAndTrailersWithinLimitsAreRead) {
  auto out =
      read_like_session("POST /x HTTP/1.1\r\n" + kHost +
                            "Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n"
                            "X-Checksum: 1\r\n\r\n",
                        {}, 3);
  EXPECT_EQ(out.verdict, "ok");
  EXPECT_EQ(out.body, "hello world");
  auto over = read_like_session("POST /x HTTP/1.1\r\n" + kHost + "Transfer-Encoding: chunked\r\n\r\n10\r\n" +
                                    std::string(16, 'c') + "\r\n1\r\nd\r\n0\r\n\r\n",
                                {16 * 1024, 16}, 0);
  EXPECT_EQ(over.verdict, "body: body limit exceeded");
}

// Beast 1.81 asserts n >= 5 here (src/core/boost_assert.cpp); the read itself must succeed.
TEST(HttpRequestReader, TheLastChunkSplitAfterItsFirstLineIsRead) {
  RequestReader reader(16 * 1024, 1 << 20);
  boost::beast::flat_buffer buffer(64 * 1024);
  auto give = [&](std::string_view bytes) {
    auto into = buffer.prepare(bytes.size());
    std::copy(bytes.begin(), bytes.end(), static_cast<char*>(into.data()));
    buffer.commit(bytes.size());
  };
  give("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_FALSE(reader.feed(buffer, true).ec);
  for (std::string_view piece : {"0\r\n", "\r", "\n"}) {
    give(piece);
    FeedResult fed = reader.feed(buffer, false);
    ASSERT_FALSE(fed.ec) << fed.ec.message();
  }
  ASSERT_TRUE(reader.parser().is_done());
  EXPECT_EQ(reader.parser().get().body(), "");
}

std::optional<std::string> check(const std::string& input) {
  return fuzz::check_request_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

TEST(HttpRequestReaderProperty, SeedCorpusSatisfiesTheFuzzInvariants) {
  const auto corpus = test::fuzz_corpus("request_reader");
  ASSERT_GE(corpus.size(), 20U);
  for (const auto& [path, input] : corpus) {
    EXPECT_EQ(check(input), std::nullopt) << path;
    for (char seed = 1; seed < 8; ++seed) {
      std::string again = input;
      if (again.size() > 1) again[1] = static_cast<char>(again[1] + seed);
      EXPECT_EQ(check(again), std::nullopt) << path << " seed +" << int{seed};
    }
  }
}

TEST(HttpRequestReaderProperty, GeneratedRequestsSatisfyTheFuzzInvariants) {
  static constexpr std::array<std::string_view, 22> kPieces{
      "GET / HTTP/1.1\r\n",
      "POST /x HTTP/1.1\r\n",
      "POST /x HTTP/1.0\r\n",
      "Host: a\r\n",
      "Host: b\r\n",
      "Content-Length: 3\r\n",
      "Content-Length: 0\r\n",
      "Transfer-Encoding: chunked\r\n",
      "Transfer-Encoding: gzip\r\n",
      "Transfer-Encoding: chunked, gzip\r\n",
      "Expect: 100-continue\r\n",
      "\r\n",
      "abc",
      "3\r\nabc\r\n",
      "0\r\n",
      "X-T: 1\r\n",
      "1;a=b\r\nz\r\n",
      "ffffffffffffffffff\r\n",
      "\n",
      " ",
      ":",
      "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"};
  std::mt19937 rng(20261206);
  for (int i = 0; i < 3000; ++i) {
    std::string input(2, '\0');
    input[0] = static_cast<char>(rng() & 0x0f);
    input[1] = static_cast<char>(rng() & 0xff);
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) input += kPieces[rng() % kPieces.size()];
    ASSERT_EQ(check(input), std::nullopt) << ::testing::PrintToString(input);
  }
}

}  // namespace
}  // namespace parley::http
