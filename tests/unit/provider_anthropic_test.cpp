// The pure pieces of provider::AnthropicProvider: reading Anthropic's usage from a message or a
// stream event, and an Anthropic error answer in OpenAI's envelope.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "provider/anthropic_provider.hpp"

namespace parley::provider {
namespace {

namespace bj = boost::json;

TEST(ProviderAnthropic, ReadsAMessagesUsageWithCachedInputTokens) {
  auto facts = inspect_anthropic(
      R"({"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":10,"output_tokens":7,)"
      R"("cache_read_input_tokens":3,"cache_creation_input_tokens":2}})");
  ASSERT_TRUE(facts);
  EXPECT_EQ(facts->type, "message");
  EXPECT_EQ(facts->input_tokens, 15);
  EXPECT_EQ(facts->output_tokens, 7);
  AnthropicUsage usage;
  usage.add(*facts);
  EXPECT_TRUE(usage.reported);
  EXPECT_EQ(usage.total().prompt_tokens, 15);
  EXPECT_EQ(usage.total().completion_tokens, 7);
  EXPECT_EQ(usage.total().total_tokens, 22);
}

TEST(ProviderAnthropic, AStreamsUsageIsMessageStartsInputAndTheLastOutput) {
  AnthropicUsage usage;
  auto start = inspect_anthropic(
      R"({"type":"message_start","message":{"id":"m","usage":{"input_tokens":12,"output_tokens":1}}})");
  ASSERT_TRUE(start);
  EXPECT_EQ(start->type, "message_start");
  usage.add(*start);
  auto delta = inspect_anthropic(
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}})");
  ASSERT_TRUE(delta);
  EXPECT_FALSE(delta->input_tokens);
  usage.add(*delta);
  auto end = inspect_anthropic(
      R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}})");
  ASSERT_TRUE(end);
  usage.add(*end);
  EXPECT_EQ(usage.total().prompt_tokens, 12);
  EXPECT_EQ(usage.total().completion_tokens, 9);

  AnthropicUsage none;
  none.add(*inspect_anthropic(R"({"type":"ping"})"));
  EXPECT_FALSE(none.reported);
  EXPECT_FALSE(inspect_anthropic("[1]"));
  EXPECT_FALSE(inspect_anthropic("not json"));
}

TEST(ProviderAnthropic, AnAnthropicErrorInOpenAisEnvelope) {
  const std::string body = openai_error_from_anthropic(
      400,
      R"({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}})");
  const bj::value doc = bj::parse(body);
  const bj::object& e = doc.at("error").as_object();
  EXPECT_EQ(e.at("message").as_string(), "max_tokens: Field required");
  EXPECT_EQ(e.at("type").as_string(), "invalid_request_error");
  EXPECT_TRUE(e.at("param").is_null());
  EXPECT_TRUE(e.at("code").is_string());

  const bj::value other = bj::parse(openai_error_from_anthropic(404, "<html>not found</html>"));
  EXPECT_EQ(other.at("error").at("message").as_string(), "the provider answered 404");
}

}  // namespace
}  // namespace parley::provider
