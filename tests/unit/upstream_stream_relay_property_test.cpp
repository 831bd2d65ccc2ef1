// upstream::StreamRelay (the synchronous half of OpenAiCompatibleProvider::post_stream): examples,
// and the stream relay fuzz target's properties (tests/fuzz/sse_relay_invariants.hpp) on its seed
// corpus and on generated bodies, so that every GCC build checks them.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "../fuzz/sse_relay_invariants.hpp"
#include "fuzz_corpus.hpp"

namespace parley::upstream {
namespace {

std::optional<std::string> check(const std::string& input) {
  return fuzz::check_relay_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

TEST(UpstreamStreamRelay, RelaysEventsUpToDoneAndNothingAfter) {
  StreamRelay relay;
  std::vector<std::string> out;
  EXPECT_TRUE(relay.feed("data: a\n\ndata: b\n", out));
  EXPECT_FALSE(relay.feed("\ndata: [DONE]\n\ndata: c\n\n", out));
  EXPECT_EQ(out, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(relay.feed("data: d\n\n", out));
  relay.finish(out);
  EXPECT_EQ(out.size(), 2U);
  EXPECT_EQ(relay.relayed(), 2U);
  EXPECT_EQ(relay.verdict(), StreamVerdict::kComplete);
}

TEST(UpstreamStreamRelay, AFinishReasonMakesTheAnswerWholeWithoutDone) {
  StreamRelay relay;
  std::vector<std::string> out;
  EXPECT_TRUE(relay.feed("data: {\"choices\":[{\"finish_reason\": \"stop\"}]}\n\n", out));
  relay.finish(out);
  EXPECT_EQ(relay.verdict(), StreamVerdict::kComplete);

  StreamRelay null_reason;
  EXPECT_TRUE(null_reason.feed("data: {\"choices\":[{\"finish_reason\":null}]}\n\n", out));
  null_reason.finish(out);
  EXPECT_EQ(null_reason.verdict(), StreamVerdict::kCutOff);
}

TEST(UpstreamStreamRelay, AResponsesTerminalEventMakesTheAnswerWholeWithoutDone) {
  for (const std::string_view type : {"response.completed", "response.incomplete", "response.failed"}) {
    StreamRelay relay;
    std::vector<std::string> out;
    const std::string event = "data: {\"type\":\"" + std::string(type) + "\",\"sequence_number\":3}\n\n";
    EXPECT_TRUE(relay.feed(event, out));
    relay.finish(out);
    EXPECT_EQ(relay.verdict(), StreamVerdict::kComplete) << type;
  }
  // The name inside a string (escaped quotes) ends nothing.
  StreamRelay relay;
  std::vector<std::string> out;
  EXPECT_TRUE(relay.feed(
      "data: {\"type\":\"response.output_text.delta\",\"delta\":\"\\\"response.completed\\\"\"}\n\n", out));
  relay.finish(out);
  EXPECT_EQ(relay.verdict(), StreamVerdict::kCutOff);
}

TEST(UpstreamStreamRelay, AStreamWithoutEventsHeldNoEvent) {
  StreamRelay relay;
  std::vector<std::string> out;
  EXPECT_TRUE(relay.feed("{\"error\":{\"message\":\"overloaded\"}}", out));
  relay.finish(out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(relay.verdict(), StreamVerdict::kNoEvent);
}

TEST(UpstreamStreamRelay, AnOversizedEventBreaksTheStreamAfterTheEventsBeforeIt) {
  StreamRelay relay(16);
  std::vector<std::string> out;
  EXPECT_FALSE(relay.feed("data: a\n\ndata: 0123456789abcdef\n\n", out));
  EXPECT_EQ(out, (std::vector<std::string>{"a"}));
  EXPECT_EQ(relay.verdict(), StreamVerdict::kBroken);
}

TEST(UpstreamStreamRelay, BytesAfterDoneCannotBreakTheStream) {
  // Split after [DONE], the oversized event is never read; in one read it must not count either.
  StreamRelay relay(16);
  std::vector<std::string> out;
  EXPECT_FALSE(relay.feed("data: [DONE]\n\ndata: 0123456789abcdef\n\n", out));
  EXPECT_FALSE(relay.broken());
  EXPECT_EQ(relay.verdict(), StreamVerdict::kComplete);
}

TEST(UpstreamStreamRelay, AnthropicStreamsEndWithMessageStop) {
  StreamRelay relay(StreamFraming::kAnthropic);
  std::vector<std::string> out;
  EXPECT_TRUE(
      relay.feed("event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: ping\ndata: ", out));
  EXPECT_TRUE(relay.feed("{\"type\":\"ping\"}\n\ndata: [DONE]\n\n", out));
  EXPECT_FALSE(relay.feed("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\ndata: after\n\n", out));
  relay.finish(out);
  EXPECT_EQ(out, (std::vector<std::string>{R"({"type":"message_start"})", R"({"type":"ping"})", "[DONE]",
                                           R"({"type":"message_stop"})"}));
  EXPECT_EQ(relay.verdict(), StreamVerdict::kComplete);

  StreamRelay failed(StreamFraming::kAnthropic);
  out.clear();
  EXPECT_FALSE(failed.feed("event: error\ndata: {\"type\":\"error\"}\n\n", out));
  EXPECT_EQ(failed.verdict(), StreamVerdict::kComplete);

  // A finish_reason means nothing here: without message_stop the answer was cut off.
  StreamRelay cut(StreamFraming::kAnthropic);
  out.clear();
  EXPECT_TRUE(cut.feed("event: message_delta\ndata: {\"finish_reason\":\"stop\"}\n\n", out));
  cut.finish(out);
  EXPECT_EQ(cut.verdict(), StreamVerdict::kCutOff);
  StreamRelay none(StreamFraming::kAnthropic);
  none.finish(out);
  EXPECT_EQ(none.verdict(), StreamVerdict::kNoEvent);
}

TEST(UpstreamStreamRelayProperty, SeedCorpusSatisfiesTheFuzzInvariants) {
  const auto corpus = test::fuzz_corpus("sse_relay");
  ASSERT_GE(corpus.size(), 12U);
  for (const auto& [path, input] : corpus) {
    EXPECT_EQ(check(input), std::nullopt) << path;
    for (char seed = 1; seed < 8; ++seed) {
      std::string again = input;
      again[1] = static_cast<char>(again[1] + seed);
      EXPECT_EQ(check(again), std::nullopt) << path << " seed +" << int{seed};
    }
  }
}

TEST(UpstreamStreamRelayProperty, GeneratedStreamsSatisfyTheFuzzInvariants) {
  static constexpr std::array<std::string_view, 20> kPieces{
      "data: ",
      "data:",
      "[DONE]",
      " [DONE] ",
      "\n",
      "\n\n",
      "\r\n",
      "\r",
      ": ping\n",
      "event: x\n",
      "{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}",
      "{\"choices\":[{\"finish_reason\":\"stop\"}]}",
      "{\"finish_reason\": null}",
      "\"finish_reason\"",
      " : ",
      "\"stop\"",
      "0123456789abcdef0123456789abcdef",
      "x",
      "\xEF\xBB\xBF",
      "{}"};
  std::mt19937 rng(1337);
  for (int round = 0; round < 4000; ++round) {
    std::string input;
    input.push_back(static_cast<char>(rng() & 0xff));
    input.push_back(static_cast<char>(rng() & 0xff));
    const int pieces = static_cast<int>(rng() % 30);
    for (int i = 0; i < pieces; ++i) input.append(kPieces[rng() % kPieces.size()]);
    ASSERT_EQ(check(input), std::nullopt) << "round " << round;
  }
}

}  // namespace
}  // namespace parley::upstream
