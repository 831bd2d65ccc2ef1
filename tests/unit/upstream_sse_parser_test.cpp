#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "upstream/sse_parser.hpp"

namespace parley::upstream {

// Found by GoogleTest through ADL, so it lives in SseEvent's namespace (internal linkage).
static void PrintTo(const SseEvent& e, std::ostream* os) {
  *os << "{event=" << testing::PrintToString(e.event) << " data=" << testing::PrintToString(e.data)
      << " id=" << testing::PrintToString(e.id) << " retry=" << (e.retry ? std::to_string(*e.retry) : "none")
      << "}";
}

namespace {

using namespace std::string_literals;

SseEvent make_event(std::string data, std::string type = "message", std::string id = "",
                    std::optional<int> retry = std::nullopt) {
  SseEvent e;
  e.event = std::move(type);
  e.data = std::move(data);
  e.id = std::move(id);
  e.retry = retry;
  return e;
}

struct Outcome {
  std::vector<SseEvent> events;
  bool ok = true;
};

// Feeds `stream` in pieces of the given sizes (the rest in one piece), then finishes.
Outcome parse_pieces(std::string_view stream, const std::vector<std::size_t>& sizes,
                     bool dispatch_at_eof = true, std::size_t max_bytes = kDefaultMaxSseEventBytes) {
  SseParser parser(dispatch_at_eof, max_bytes);
  Outcome out;
  auto collect = [&out](SseEvent&& e) { out.events.push_back(std::move(e)); };
  for (const std::size_t size : sizes) {
    const std::size_t n = std::min(size, stream.size());
    if (!parser.feed(stream.substr(0, n), collect)) {
      out.ok = false;
      return out;
    }
    stream.remove_prefix(n);
  }
  if (!parser.feed(stream, collect) || !parser.finish(collect)) out.ok = false;
  return out;
}

std::vector<SseEvent> parse(std::string_view stream, bool dispatch_at_eof = true) {
  Outcome out = parse_pieces(stream, {}, dispatch_at_eof);
  EXPECT_TRUE(out.ok);
  return out.events;
}

std::vector<SseEvent> parse_byte_by_byte(std::string_view stream) {
  Outcome out = parse_pieces(stream, std::vector<std::size_t>(stream.size(), 1));
  EXPECT_TRUE(out.ok);
  return out.events;
}

TEST(UpstreamSseParser, DispatchesAnEventOnABlankLine) {
  EXPECT_EQ(parse("data: hello\n\n"), std::vector{make_event("hello")});
  EXPECT_EQ(parse("data: a\n\ndata: b\n\n"), (std::vector{make_event("a"), make_event("b")}));
}

TEST(UpstreamSseParser, AcceptsLfCrLfAndCrLineEndsAndMixes) {
  const std::vector expected{make_event("1\n2", "x")};
  EXPECT_EQ(parse("event: x\ndata: 1\ndata: 2\n\n"), expected);
  EXPECT_EQ(parse("event: x\r\ndata: 1\r\ndata: 2\r\n\r\n"), expected);
  EXPECT_EQ(parse("event: x\rdata: 1\rdata: 2\r\r"), expected);
  EXPECT_EQ(parse("event: x\rdata: 1\r\ndata: 2\n\r\n"), expected);
  // LF CR is two line ends: "\n\r" after a data line is a blank line.
  EXPECT_EQ(parse("data: a\n\rdata: b\r\n\n"), (std::vector{make_event("a"), make_event("b")}));
}

TEST(UpstreamSseParser, CrAtChunkEndAndLfAtNextChunkStartAreOneLineEnd) {
  SseParser parser;
  std::vector<SseEvent> events;
  auto collect = [&](SseEvent&& e) { events.push_back(std::move(e)); };
  ASSERT_TRUE(parser.feed("data: a\r", collect));
  ASSERT_TRUE(parser.feed("", collect));  // an empty chunk in between changes nothing
  ASSERT_TRUE(parser.feed("\ndata: b\r", collect));
  EXPECT_TRUE(events.empty());
  ASSERT_TRUE(parser.feed("\n\r", collect));  // CR LF ends "data: b", the CR is the blank line
  EXPECT_EQ(events, std::vector{make_event("a\nb")});
  ASSERT_TRUE(parser.feed("\ndata: c\n\n", collect));  // that LF pairs with the previous CR
  EXPECT_EQ(events, (std::vector{make_event("a\nb"), make_event("c")}));
}

TEST(UpstreamSseParser, JoinsMultiLineDataWithLf) {
  EXPECT_EQ(parse("data: one\ndata: two\ndata:\ndata: three\n\n"),
            std::vector{make_event("one\ntwo\n\nthree")});
  EXPECT_EQ(parse("data: {\"a\":\ndata: 1}\n\n"), std::vector{make_event("{\"a\":\n1}")});
}

TEST(UpstreamSseParser, IgnoresComments) {
  EXPECT_TRUE(parse(": keep-alive\n\n").empty());
  EXPECT_TRUE(parse(":\n\n").empty());
  EXPECT_EQ(parse(":comment\ndata: x\n: another: one\n\n"), std::vector{make_event("x")});
  EXPECT_EQ(parse(": OPENROUTER PROCESSING\n\ndata: y\n\n"), std::vector{make_event("y")});
}

TEST(UpstreamSseParser, RemovesOnlyOneSpaceAfterTheColon) {
  EXPECT_EQ(parse("data:  two spaces\n\n"), std::vector{make_event(" two spaces")});
  EXPECT_EQ(parse("data:nospace\n\n"), std::vector{make_event("nospace")});
  EXPECT_EQ(parse("data:\ttab\n\n"), std::vector{make_event("\ttab")});
  EXPECT_EQ(parse("data: a: b\n\n"), std::vector{make_event("a: b")});
  EXPECT_EQ(parse("data: trailing \n\n"), std::vector{make_event("trailing ")});
}

TEST(UpstreamSseParser, LineWithoutColonIsAFieldWithAnEmptyValue) {
  EXPECT_EQ(parse("data\n\n"), std::vector{make_event("")});
  EXPECT_EQ(parse("data\ndata\n\n"), std::vector{make_event("\n")});
  EXPECT_EQ(parse("event: custom\nevent\ndata: x\n\n"), std::vector{make_event("x")});
}

TEST(UpstreamSseParser, EventFieldSetsTheTypeForOneEventOnly) {
  EXPECT_EQ(parse("event: add\ndata: 1\n\ndata: 2\n\n"),
            (std::vector{make_event("1", "add"), make_event("2")}));
  EXPECT_EQ(parse("event: a\nevent: b\ndata: 1\n\n"), std::vector{make_event("1", "b")});
}

TEST(UpstreamSseParser, EmptyDataBufferDispatchesNothingAndResetsTheType) {
  EXPECT_TRUE(parse("event: ping\n\n").empty());
  EXPECT_TRUE(parse("\n\n\r\n\r").empty());
  EXPECT_EQ(parse("event: ping\n\ndata: x\n\n"), std::vector{make_event("x")});
}

TEST(UpstreamSseParser, IdPersistsAcrossEventsAndAnEmptyIdClearsIt) {
  SseParser parser;
  std::vector<SseEvent> events;
  auto collect = [&](SseEvent&& e) { events.push_back(std::move(e)); };
  ASSERT_TRUE(parser.feed("id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\nid\ndata: d\n\n", collect));
  EXPECT_EQ(events, (std::vector{make_event("a", "message", "1"), make_event("b", "message", "1"),
                                 make_event("c", "message", "2"), make_event("d", "message", "")}));
  EXPECT_EQ(parser.last_event_id(), "");
}

TEST(UpstreamSseParser, IdContainingNulIsIgnored) {
  const std::string stream = "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"s;
  ASSERT_EQ(stream.size(), 32u);
  EXPECT_EQ(parse(stream), (std::vector{make_event("a", "message", "1"), make_event("b", "message", "1")}));
  // NUL elsewhere is ordinary content.
  EXPECT_EQ(parse("data: a\0b\n\n"s), std::vector{make_event("a\0b"s)});
}

TEST(UpstreamSseParser, RetryIsTakenOnlyWhenAllAsciiDigits) {
  EXPECT_EQ(parse("retry: 3000\ndata: x\n\n"), std::vector{make_event("x", "message", "", 3000)});
  EXPECT_EQ(parse("retry: 0\ndata: x\n\n"), std::vector{make_event("x", "message", "", 0)});
  for (const std::string_view bad : {"retry: 30s\n", "retry: -1\n", "retry: 1.5\n", "retry: +5\n", "retry:\n",
                                     "retry\n", "retry: 1 \n", "retry:  1\n", "retry: 99999999999\n"}) {
    EXPECT_EQ(parse(std::string(bad) + "data: x\n\n"), std::vector{make_event("x")}) << bad;
  }

  SseParser parser;
  std::vector<SseEvent> events;
  auto collect = [&](SseEvent&& e) { events.push_back(std::move(e)); };
  ASSERT_TRUE(parser.feed("retry: 250\n\n", collect));  // no data: not dispatched, still remembered
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(parser.reconnection_time(), 250);
  ASSERT_TRUE(parser.feed("retry: soon\ndata: x\n\n", collect));
  EXPECT_EQ(parser.reconnection_time(), 250);
  EXPECT_EQ(events, std::vector{make_event("x")});  // the retry belongs to the event that gave it
}

TEST(UpstreamSseParser, IgnoresUnknownFieldsAndFieldNamesAreCaseSensitive) {
  EXPECT_EQ(parse("foo: bar\nDATA: X\ndata : y\nData: w\ndata: z\n\n"), std::vector{make_event("z")});
  EXPECT_TRUE(parse("foo: bar\n\n").empty());
}

const std::string kBom = "\xEF\xBB\xBF";

TEST(UpstreamSseParser, SkipsOneLeadingBom) {
  EXPECT_EQ(parse(kBom + "data: x\n\n"), std::vector{make_event("x")});
  EXPECT_EQ(parse_byte_by_byte(kBom + "data: x\n\n"), std::vector{make_event("x")});
  // Only one BOM, and only at the start: anywhere else it is part of the field name.
  EXPECT_TRUE(parse(kBom + kBom + "data: x\n\n").empty());
  EXPECT_EQ(parse("data: a\n\n" + kBom + "data: b\n\n"), std::vector{make_event("a")});
  // A BOM prefix that is not a whole BOM is line content, however it is split.
  EXPECT_TRUE(parse(kBom.substr(0, 2) + "data: x\n\n").empty());
  EXPECT_TRUE(parse_byte_by_byte(kBom.substr(0, 2) + "data: x\n\n").empty());
  EXPECT_TRUE(parse(kBom.substr(0, 1) + "data: x\n\n").empty());
}

const std::string kRichStream =
    "\xEF\xBB\xBF"
    ": comment\r\n"
    "retry: 1500\r"
    "id: 41\n"
    "event: token\r\n"
    "data: first line\r"
    "data:second line\n"
    "\r\n"
    "data\n"
    "\r"
    "id: 42\r"
    "data:  spaced\r"
    "unknown: field\n"
    "\r"
    "id: 4\0"
    "3\n"
    "data: {\"choices\":[]}\r\n"
    "\n"
    "event: ping\n"
    "\n"
    "data: last"s;

TEST(UpstreamSseParser, AnySplitOfTheInputGivesIdenticalEvents) {
  const std::vector<SseEvent> whole = parse(kRichStream);
  ASSERT_EQ(whole, (std::vector{make_event("first line\nsecond line", "token", "41", 1500),
                                make_event("", "message", "41"), make_event(" spaced", "message", "42"),
                                make_event("{\"choices\":[]}", "message", "42"),
                                make_event("last", "message", "42")}));
  EXPECT_EQ(parse_byte_by_byte(kRichStream), whole);

  std::mt19937 rng(20240601);
  for (int round = 0; round < 500; ++round) {
    std::vector<std::size_t> sizes;
    for (std::size_t total = 0; total < kRichStream.size();) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>{0, 12}(rng);
      sizes.push_back(n);
      total += n;
    }
    const Outcome out = parse_pieces(kRichStream, sizes);
    ASSERT_TRUE(out.ok);
    ASSERT_EQ(out.events, whole) << "round " << round;
  }
}

TEST(UpstreamSseParser, LineOverTheLimitFailsAndStopsTheParser) {
  SseParser parser(true, 16);
  std::vector<SseEvent> events;
  auto collect = [&](SseEvent&& e) { events.push_back(std::move(e)); };
  ASSERT_TRUE(parser.feed("data: 0123456789\n\n", collect));  // 16 bytes: exactly at the limit
  ASSERT_EQ(events.size(), 1u);

  const Status st = parser.feed("data: 01234567890\n\n", collect);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kOpenAiApiError);
  EXPECT_TRUE(parser.failed());
  EXPECT_FALSE(parser.feed("data: ok\n\n", collect));
  EXPECT_FALSE(parser.finish(collect));
  EXPECT_EQ(events.size(), 1u);
}

TEST(UpstreamSseParser, UnterminatedLineOverTheLimitFailsAcrossFeeds) {
  SseParser parser(true, 16);
  auto ignore = [](SseEvent&&) {};
  ASSERT_TRUE(parser.feed("data: 01234", ignore));
  ASSERT_TRUE(parser.feed("56789", ignore));
  EXPECT_FALSE(parser.feed("0", ignore));  // 17 bytes without a line end yet
  // The same bytes in one piece fail the same way.
  EXPECT_FALSE(parse_pieces("data: 01234567890", {}, true, 16).ok);
  // A comment line counts too: memory is bounded whatever the line holds.
  EXPECT_FALSE(parse_pieces(": 012345678901234567\n", {}, true, 16).ok);
}

TEST(UpstreamSseParser, EventDataOverTheLimitFailsAfterEarlierEventsWereDelivered) {
  // Data buffer "abc\nabc\nabc\nabc\n" is 16 bytes: fits; a fifth line does not.
  const Outcome fits =
      parse_pieces("data: x\n\ndata: abc\ndata: abc\ndata: abc\ndata: abc\n\n", {}, true, 16);
  ASSERT_TRUE(fits.ok);
  EXPECT_EQ(fits.events, (std::vector{make_event("x"), make_event("abc\nabc\nabc\nabc")}));

  const Outcome over =
      parse_pieces("data: x\n\ndata: abc\ndata: abc\ndata: abc\ndata: abc\ndata: abc\n\n", {}, true, 16);
  EXPECT_FALSE(over.ok);
  EXPECT_EQ(over.events, std::vector{make_event("x")});
  // Same outcome byte by byte.
  const std::string over_stream = "data: x\n\ndata: abc\ndata: abc\ndata: abc\ndata: abc\ndata: abc\n\n";
  const Outcome over_split =
      parse_pieces(over_stream, std::vector<std::size_t>(over_stream.size(), 1), true, 16);
  EXPECT_FALSE(over_split.ok);
  EXPECT_EQ(over_split.events, std::vector{make_event("x")});
}

TEST(UpstreamSseParser, FinishDispatchesALastEventWithoutBlankLineByDefault) {
  EXPECT_EQ(parse("data: a\n\ndata: last", true), (std::vector{make_event("a"), make_event("last")}));
  EXPECT_EQ(parse("data: a\n\ndata: last\n", true), (std::vector{make_event("a"), make_event("last")}));
  EXPECT_EQ(parse("data: a\n\ndata: last\r", true), (std::vector{make_event("a"), make_event("last")}));
  EXPECT_EQ(parse("data: a\n\nevent: only-type", true), std::vector{make_event("a")});
  EXPECT_EQ(parse("data: a\n\n: trailing comment", true), std::vector{make_event("a")});
}

TEST(UpstreamSseParser, FinishDiscardsAnIncompleteEventInStrictMode) {
  EXPECT_EQ(parse("data: a\n\ndata: last", false), std::vector{make_event("a")});
  EXPECT_EQ(parse("data: a\n\ndata: last\n", false), std::vector{make_event("a")});
  EXPECT_EQ(parse("data: a\n\ndata: last\r\n", false), std::vector{make_event("a")});
  EXPECT_EQ(parse("data: a\n\ndata: b\n\n", false), (std::vector{make_event("a"), make_event("b")}));
}

TEST(UpstreamSseParser, FinishResetsForANewStream) {
  SseParser parser;
  std::vector<SseEvent> events;
  auto collect = [&](SseEvent&& e) { events.push_back(std::move(e)); };
  ASSERT_TRUE(parser.feed(kBom + "id: 9\nretry: 5\nevent: t\ndata: half", collect));
  ASSERT_TRUE(parser.finish(collect));
  ASSERT_TRUE(parser.feed(kBom + "data: new\n\n", collect));  // BOM skipped again
  EXPECT_EQ(events, (std::vector{make_event("half", "t", "9", 5), make_event("new")}));
  EXPECT_EQ(parser.last_event_id(), "");
  EXPECT_EQ(parser.reconnection_time(), std::nullopt);
}

TEST(UpstreamSseParser, FinishCanFailOnTheLastLine) {
  SseParser parser(true, 8);
  auto ignore = [](SseEvent&&) {};
  // Data buffer "ab\nab\n"; the unterminated third line fits the line limit, but adding it to the
  // data buffer at EOF does not.
  ASSERT_TRUE(parser.feed("data: ab\ndata: ab\ndata: ab", ignore));
  EXPECT_FALSE(parser.finish(ignore));
  EXPECT_TRUE(parser.failed());
}

TEST(UpstreamSseParser, AcceptsCallbacksOfEveryShape) {
  SseParser parser;
  int by_ref = 0;
  int by_value = 0;
  struct Counter {
    int calls = 0;
    void operator()(SseEvent&&) { ++calls; }
  } counter;
  ASSERT_TRUE(parser.feed("data: 1\n\n", [&](const SseEvent&) { ++by_ref; }));
  ASSERT_TRUE(parser.feed("data: 2\n\n", [&](SseEvent e) { by_value += std::stoi(e.data); }));
  ASSERT_TRUE(parser.feed("data: 3\n\n", counter));
  const auto const_lambda = [&by_ref](const SseEvent&) { ++by_ref; };
  ASSERT_TRUE(parser.feed("data: 4\n\n", const_lambda));
  EXPECT_EQ(by_ref, 2);
  EXPECT_EQ(by_value, 2);
  EXPECT_EQ(counter.calls, 1);
}

TEST(UpstreamSseParser, ParsesAnOpenAiChatCompletionChunkStream) {
  const std::string stream =
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
      "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
      "\"\"},"
      "\"finish_reason\":null}]}\n\n"
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
      "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
      "\"finish_reason\":null}]}\n\n"
      ": keep-alive\n\n"
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
      "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\", world\"},"
      "\"finish_reason\":null}]}\n\n"
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
      "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
      "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,"
      "\"total_tokens\":12}}\n\n"
      "data: [DONE]\n\n";

  for (const bool byte_by_byte : {false, true}) {
    const std::vector<SseEvent> events = byte_by_byte ? parse_byte_by_byte(stream) : parse(stream);
    ASSERT_EQ(events.size(), 6u);
    std::string text;
    std::string finish_reason;
    std::int64_t total_tokens = 0;
    bool done = false;
    for (const SseEvent& e : events) {
      EXPECT_EQ(e.event, "message");
      ASSERT_FALSE(done) << "event after [DONE]";
      if (is_done_marker(e.data)) {
        done = true;
        continue;
      }
      const boost::json::value chunk = boost::json::parse(e.data);
      EXPECT_EQ(chunk.at("object").as_string(), "chat.completion.chunk");
      for (const auto& choice : chunk.at("choices").as_array()) {
        const auto& delta = choice.at("delta").as_object();
        if (const auto* content = delta.if_contains("content")) text += content->as_string();
        if (!choice.at("finish_reason").is_null()) finish_reason = choice.at("finish_reason").as_string();
      }
      if (const auto* usage = chunk.as_object().if_contains("usage")) {
        total_tokens = usage->at("total_tokens").as_int64();
      }
    }
    EXPECT_TRUE(done);
    EXPECT_EQ(text, "Hello, world");
    EXPECT_EQ(finish_reason, "stop");
    EXPECT_EQ(total_tokens, 12);
  }
}

TEST(UpstreamSseParser, RecognisesTheDoneMarker) {
  EXPECT_TRUE(is_done_marker("[DONE]"));
  EXPECT_TRUE(is_done_marker(" [DONE] \r\n"));
  EXPECT_FALSE(is_done_marker("[done]"));
  EXPECT_FALSE(is_done_marker("[DONE]x"));
  EXPECT_FALSE(is_done_marker("DONE"));
  EXPECT_FALSE(is_done_marker(""));
  EXPECT_FALSE(is_done_marker("   "));
  EXPECT_FALSE(is_done_marker("{\"done\":true}"));
}

}  // namespace
}  // namespace parley::upstream
