// chat_response_to_anthropic and AnthropicStream: chat-completions answers and chunks → Anthropic
// messages and stream events.
#include <gtest/gtest.h>

#include "translate/anthropic.hpp"
#include "translate_json.hpp"

namespace parley::translate {
namespace {

namespace bj = boost::json;
using testing::json_eq;
using testing::names;
using testing::obj;

const AnthropicMeta kMeta{"msg_01", "claude-x"};

bj::object message_of(std::string_view chat) {
  Result<bj::object> r = chat_response_to_anthropic(obj(chat), kMeta);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? *r : bj::object();
}

TEST(AnthropicAnswer, ATextAnswer) {
  EXPECT_TRUE(
      json_eq(message_of(R"({"id":"chatcmpl-1","model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop",
      "message":{"role":"assistant","content":"Hello!"}}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}})"),
              R"({"id":"msg_01","type":"message","role":"assistant","model":"gpt-4o",
      "content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,
      "usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":3}})"));
}

TEST(AnthropicAnswer, ToolCallsBecomeToolUseWithParsedInput) {
  bj::object m = message_of(R"({"choices":[{"finish_reason":"tool_calls","message":{"content":"Let me check.",
      "tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\",\"days\":[1,2]}"}},
                    {"id":"call_2","type":"function","function":{"name":"now","arguments":""}}]}}]})");
  EXPECT_TRUE(json_eq(m["content"], R"([{"type":"text","text":"Let me check."},
      {"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris","days":[1,2]}},
      {"type":"tool_use","id":"call_2","name":"now","input":{}}])"));
  EXPECT_EQ(m["stop_reason"].as_string(), "tool_use");
  EXPECT_EQ(m["model"].as_string(), "claude-x");  // the asked-for model when the answer names none
}

TEST(AnthropicAnswer, StopReasons) {
  const std::pair<const char*, const char*> cases[] = {{"stop", "end_turn"},
                                                       {"length", "max_tokens"},
                                                       {"tool_calls", "tool_use"},
                                                       {"content_filter", "refusal"}};
  for (const auto& [finish, stop] : cases) {
    bj::object m = message_of(std::string(R"({"choices":[{"finish_reason":")") + finish +
                              R"(","message":{"content":"x"}}]})");
    EXPECT_EQ(m["stop_reason"].as_string(), stop) << finish;
  }
  // some servers say "stop" with tool calls: the calls decide
  bj::object m = message_of(
      R"({"choices":[{"finish_reason":"stop","message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]}}]})");
  EXPECT_EQ(m["stop_reason"].as_string(), "tool_use");
}

TEST(AnthropicAnswer, ARefusalIsTextWithStopReasonRefusal) {
  bj::object m =
      message_of(R"({"choices":[{"finish_reason":"stop","message":{"content":null,"refusal":"No."}}]})");
  EXPECT_TRUE(json_eq(m["content"], R"([{"type":"text","text":"No."}])"));
  EXPECT_EQ(m["stop_reason"].as_string(), "refusal");
}

TEST(AnthropicAnswer, CachedTokensAreReadFromTheCache) {
  bj::object m = message_of(R"({"choices":[{"finish_reason":"stop","message":{"content":"x"}}],
      "usage":{"prompt_tokens":100,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":80}}})");
  EXPECT_TRUE(json_eq(
      m["usage"],
      R"({"input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":80,"output_tokens":5})"));
}

TEST(AnthropicAnswer, BadArgumentsAreTheModelsFault) {
  for (const char* args : {R"(not json)", R"([1,2])", R"(\"str\")"}) {
    Result<bj::object> r = chat_response_to_anthropic(
        obj(std::string(
                R"({"choices":[{"finish_reason":"tool_calls","message":{"tool_calls":[{"id":"c","function":{"name":"f","arguments":")") +
            args + R"("}}]}}]})"),
        kMeta);
    ASSERT_FALSE(r) << args;
    EXPECT_EQ(r.error().kind, ErrorKind::kModelOutputInvalid);
  }
}

TEST(AnthropicAnswer, NoChoicesIsAProviderErrorAndAnEmptyAnswerHasNoContent) {
  Result<bj::object> r = chat_response_to_anthropic(obj(R"({"choices":[]})"), kMeta);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kOpenAiApiError);
  bj::object m = message_of(R"({"choices":[{"finish_reason":"stop","message":{"content":""}}]})");
  EXPECT_TRUE(m["content"].as_array().empty());
}

// ---------------------------------------------------------------------------------------------

struct Streamed {
  std::vector<StreamEvent> events;
  bj::object message;
};

Streamed stream(std::initializer_list<std::string_view> chunks) {
  AnthropicStream s(kMeta);
  Streamed run;
  for (std::string_view chunk : chunks) s.feed(obj(chunk), run.events);
  s.finish(run.events);
  run.message = s.message();
  return run;
}

void expect_types_match_names(const std::vector<StreamEvent>& events) {
  for (const StreamEvent& e : events) EXPECT_EQ(e.data.at("type").as_string(), e.name);
}

TEST(AnthropicStreamTest, TextStreamsInAnthropicsOrder) {
  const Streamed run = stream({
      R"({"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"lo"}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
      R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}})",
  });
  EXPECT_EQ(names(run.events),
            (std::vector<std::string>{"message_start", "content_block_start", "ping", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "message_delta",
                                      "message_stop"}));
  expect_types_match_names(run.events);
  EXPECT_TRUE(
      json_eq(run.events[0].data, R"({"type":"message_start","message":{"id":"msg_01","type":"message",
      "role":"assistant","model":"gpt-4o","content":[],"stop_reason":null,"stop_sequence":null,
      "usage":{"input_tokens":0,"output_tokens":0}}})"));
  EXPECT_TRUE(
      json_eq(run.events[1].data,
              R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"));
  EXPECT_TRUE(json_eq(run.events[2].data, R"({"type":"ping"})"));
  EXPECT_TRUE(
      json_eq(run.events[3].data,
              R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}})"));
  EXPECT_TRUE(json_eq(run.events[5].data, R"({"type":"content_block_stop","index":0})"));
  EXPECT_TRUE(json_eq(run.events[6].data,
                      R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},
      "usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}})"));
  EXPECT_TRUE(json_eq(run.events[7].data, R"({"type":"message_stop"})"));
  EXPECT_TRUE(json_eq(run.message.at("content"), R"([{"type":"text","text":"Hello"}])"));
}

TEST(AnthropicStreamTest, ToolCallsStreamAsInputJsonDeltas) {
  const Streamed run = stream({
      R"({"choices":[{"index":0,"delta":{"content":"Checking."}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":""}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","function":{"name":"now","arguments":"{}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
  });
  EXPECT_EQ(names(run.events),
            (std::vector<std::string>{"message_start", "content_block_start", "ping", "content_block_delta",
                                      "content_block_stop", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "content_block_start",
                                      "content_block_delta", "content_block_stop", "message_delta",
                                      "message_stop"}));
  EXPECT_TRUE(json_eq(run.events[5].data, R"({"type":"content_block_start","index":1,
      "content_block":{"type":"tool_use","id":"call_1","name":"weather","input":{}}})"));
  EXPECT_TRUE(json_eq(run.events[6].data, R"({"type":"content_block_delta","index":1,
      "delta":{"type":"input_json_delta","partial_json":"{\"city\":"}})"));
  EXPECT_EQ(run.events[9].data.at("index").as_int64(), 2);
  EXPECT_EQ(run.events[12].data.at("delta").at("stop_reason").as_string(), "tool_use");
  EXPECT_TRUE(json_eq(run.message.at("content"), R"([{"type":"text","text":"Checking."},
      {"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris"}},
      {"type":"tool_use","id":"call_2","name":"now","input":{}}])"));
}

TEST(AnthropicStreamTest, TheStreamedMessageEqualsTheTranslatedAnswer) {
  const Streamed run = stream({
      R"({"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Sure: "}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"a\":"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"é\"}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
      R"({"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":9,"total_tokens":39,"prompt_tokens_details":{"cached_tokens":10}}})",
  });
  Result<bj::object> whole = chat_response_to_anthropic(
      obj(R"({"model":"gpt-4o","choices":[{"finish_reason":"tool_calls","message":{"content":"Sure: ",
          "tool_calls":[{"id":"call_1","function":{"name":"f","arguments":"{\"a\":\"é\"}"}}]}}],
          "usage":{"prompt_tokens":30,"completion_tokens":9,"total_tokens":39,"prompt_tokens_details":{"cached_tokens":10}}})"),
      kMeta);
  ASSERT_TRUE(whole);
  EXPECT_TRUE(json_eq(run.message, bj::serialize(*whole)));
}

TEST(AnthropicStreamTest, LengthIsMaxTokens) {
  const Streamed run =
      stream({R"({"choices":[{"index":0,"delta":{"content":"Once"},"finish_reason":"length"}]})"});
  EXPECT_EQ(run.events[run.events.size() - 2].data.at("delta").at("stop_reason").as_string(), "max_tokens");
  EXPECT_EQ(run.message.at("stop_reason").as_string(), "max_tokens");
}

TEST(AnthropicStreamTest, UsageInTheFirstChunkReachesMessageStart) {
  const Streamed run = stream({
      R"({"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":7,"completion_tokens":1}})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":2}})",
  });
  EXPECT_TRUE(
      json_eq(run.events[0].data.at("message").at("usage"), R"({"input_tokens":7,"output_tokens":1})"));
  EXPECT_EQ(run.events[run.events.size() - 2].data.at("usage").at("output_tokens").as_int64(), 2);
}

TEST(AnthropicStreamTest, AnErrorChunkEndsWithAnErrorEvent) {
  AnthropicStream s(kMeta);
  std::vector<StreamEvent> events;
  s.feed(obj(R"({"choices":[{"index":0,"delta":{"content":"x"}}]})"), events);
  s.feed(obj(R"({"error":{"message":"upstream broke","type":"api_error","code":"OPENAI_API_ERROR"}})"),
         events);
  s.finish(events);
  EXPECT_EQ(names(events), (std::vector<std::string>{"message_start", "content_block_start", "ping",
                                                     "content_block_delta", "error"}));
  EXPECT_TRUE(json_eq(events.back().data,
                      R"({"type":"error","error":{"type":"api_error","message":"upstream broke"}})"));
  EXPECT_TRUE(s.finished());
}

TEST(AnthropicStreamTest, FailMapsTheErrorsStatus) {
  AnthropicStream s(kMeta);
  std::vector<StreamEvent> events;
  s.fail(Error{ErrorKind::kOpenAiRateLimit, "slow down"}, events);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(json_eq(events[1].data,
                      R"({"type":"error","error":{"type":"rate_limit_error","message":"slow down"}})"));
  s.finish(events);
  EXPECT_EQ(events.size(), 2u);
}

TEST(AnthropicStreamTest, AnEmptyAnswerHasNoBlocks) {
  const Streamed run = stream(
      {R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]})"});
  EXPECT_EQ(names(run.events), (std::vector<std::string>{"message_start", "message_delta", "message_stop"}));
  EXPECT_TRUE(run.message.at("content").as_array().empty());
}

TEST(AnthropicStreamTest, EventsSerializeWithTheirNames) {
  AnthropicStream s(kMeta);
  std::vector<StreamEvent> events;
  s.start(events);
  EXPECT_TRUE(to_sse(events[0]).starts_with("event: message_start\ndata: {\"type\":\"message_start\""));
  EXPECT_TRUE(to_sse(events[0]).ends_with("}}\n\n"));
}

}  // namespace
}  // namespace parley::translate
