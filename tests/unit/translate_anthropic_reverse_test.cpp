// The reverse direction, for an Anthropic provider serving /v1/chat/completions:
// chat_request_to_anthropic, anthropic_response_to_chat, AnthropicToChatStream; and round trips.
#include <gtest/gtest.h>

#include "translate/anthropic.hpp"
#include "translate_json.hpp"

namespace parley::translate {
namespace {

namespace bj = boost::json;
using testing::json_eq;
using testing::obj;

bj::object anthropic_of(std::string_view chat, const ChatToAnthropicOptions& options = {}) {
  Result<bj::object> r = chat_request_to_anthropic(obj(chat), options);
  EXPECT_TRUE(r) << (r ? "" : r.error().message + " [" + r.error().param.value_or("") + "]");
  return r ? *r : bj::object();
}

Error error_of(std::string_view chat) {
  Result<bj::object> r = chat_request_to_anthropic(obj(chat));
  EXPECT_FALSE(r) << bj::serialize(*r);
  return r ? Error{} : r.error();
}

TEST(ChatToAnthropicRequest, SystemMessagesBecomeTheSystemPrompt) {
  EXPECT_TRUE(
      json_eq(anthropic_of(R"({"model":"claude-x","max_tokens":100,"messages":[
      {"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"No emoji."}]},
      {"role":"user","content":"Hi"}]})"),
              R"({"model":"claude-x","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],
      "max_tokens":100,"system":"Be brief.\nNo emoji."})"));
}

TEST(ChatToAnthropicRequest, MaxTokensDefaultsAndMaxCompletionTokensCounts) {
  EXPECT_EQ(
      anthropic_of(R"({"model":"m","messages":[{"role":"user","content":"q"}]})").at("max_tokens").as_int64(),
      4096);
  ChatToAnthropicOptions options;
  options.default_max_tokens = 1000;
  EXPECT_EQ(anthropic_of(R"({"model":"m","messages":[{"role":"user","content":"q"}]})", options)
                .at("max_tokens")
                .as_int64(),
            1000);
  EXPECT_EQ(
      anthropic_of(R"({"model":"m","max_completion_tokens":77,"messages":[{"role":"user","content":"q"}]})")
          .at("max_tokens")
          .as_int64(),
      77);
}

TEST(ChatToAnthropicRequest, ToolCallsAndToolMessagesBecomeToolUseAndMergedToolResults) {
  bj::object a = anthropic_of(R"({"model":"m","messages":[
      {"role":"user","content":"Weather?"},
      {"role":"assistant","content":null,"tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
        {"id":"call_2","type":"function","function":{"name":"weather","arguments":""}}]},
      {"role":"tool","tool_call_id":"call_1","content":"18C"},
      {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"4C"}]},
      {"role":"user","content":"Thanks"}]})");
  EXPECT_TRUE(json_eq(a["messages"], R"([
      {"role":"user","content":[{"type":"text","text":"Weather?"}]},
      {"role":"assistant","content":[
        {"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris"}},
        {"type":"tool_use","id":"call_2","name":"weather","input":{}}]},
      {"role":"user","content":[
        {"type":"tool_result","tool_use_id":"call_1","content":"18C"},
        {"type":"tool_result","tool_use_id":"call_2","content":"4C"},
        {"type":"text","text":"Thanks"}]}])"));
}

TEST(ChatToAnthropicRequest, ImagesBecomeImageBlocks) {
  bj::object a = anthropic_of(R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"text","text":"Look"},
      {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}},
      {"type":"image_url","image_url":{"url":"https://x.test/a.png","detail":"high"}}]}]})");
  EXPECT_TRUE(json_eq(a["messages"], R"([{"role":"user","content":[{"type":"text","text":"Look"},
      {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"}},
      {"type":"image","source":{"type":"url","url":"https://x.test/a.png"}}]}])"));
  EXPECT_EQ(
      error_of(
          R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,raw"}}]}]})")
          .param,
      "messages[0].content[0].image_url.url");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]})")
          .param,
      "messages[0].content[0].image_url.url");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]})")
          .param,
      "messages[0].content[0].type");
}

TEST(ChatToAnthropicRequest, ToolsToolChoiceAndParallelism) {
  bj::object a = anthropic_of(R"({"model":"m","messages":[{"role":"user","content":"q"}],
      "tools":[{"type":"function","function":{"name":"f","description":"does f","parameters":{"type":"object","properties":{}},"strict":true}},
               {"type":"function","function":{"name":"g"}}],
      "tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false})");
  EXPECT_TRUE(json_eq(
      a["tools"], R"([{"name":"f","description":"does f","input_schema":{"type":"object","properties":{}}},
      {"name":"g","input_schema":{"type":"object","properties":{}}}])"));
  EXPECT_TRUE(json_eq(a["tool_choice"], R"({"type":"tool","name":"f","disable_parallel_tool_use":true})"));
  const std::string base =
      R"({"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":)";
  EXPECT_TRUE(json_eq(anthropic_of(base + R"("required"})")["tool_choice"], R"({"type":"any"})"));
  EXPECT_TRUE(json_eq(anthropic_of(base + R"("none"})")["tool_choice"], R"({"type":"none"})"));
  EXPECT_TRUE(json_eq(anthropic_of(base + R"("auto"})")["tool_choice"], R"({"type":"auto"})"));
  EXPECT_FALSE(
      anthropic_of(
          R"({"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"f"}}]})")
          .contains("tool_choice"));
  EXPECT_EQ(
      error_of(
          R"({"model":"m","messages":[{"role":"user","content":"q"}],"tools":[{"type":"custom","custom":{"name":"x"}}]})")
          .param,
      "tools[0].type");
}

TEST(ChatToAnthropicRequest, SamplingStopUserStream) {
  EXPECT_TRUE(json_eq(
      anthropic_of(R"({"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"}],
      "temperature":0.4,"top_p":0.5,"stop":"END","user":"u-1","stream":true,"stream_options":{"include_usage":true},
      "seed":7,"n":1,"frequency_penalty":0,"presence_penalty":0.0,"logit_bias":{},"logprobs":false,"response_format":{"type":"text"}})"),
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"q"}]}],"max_tokens":9,
      "temperature":0.4,"top_p":0.5,"stop_sequences":["END"],"metadata":{"user_id":"u-1"},"stream":true})"));
  EXPECT_TRUE(json_eq(
      anthropic_of(
          R"({"model":"m","messages":[{"role":"user","content":"q"}],"stop":["a","b"]})")["stop_sequences"],
      R"(["a","b"])"));
}

TEST(ChatToAnthropicRequest, WhatTheMessagesApiCannotDoIsRefused) {
  const std::string base = R"({"model":"m","messages":[{"role":"user","content":"q"}],)";
  for (const char* field :
       {R"("n":2)", R"("response_format":{"type":"json_object"})", R"("frequency_penalty":0.5)",
        R"("logit_bias":{"50256":-100})", R"("logprobs":true)", R"("top_logprobs":3)",
        R"("reasoning_effort":"high")", R"("modalities":["text","audio"])", R"("audio":{"voice":"alloy"})",
        R"("functions":[])", R"("web_search_options":{})"}) {
    const Error e = error_of(base + field + "}");
    EXPECT_EQ(e.kind, ErrorKind::kBadRequest) << field;
    ASSERT_TRUE(e.param) << field;
    EXPECT_NE(std::string(field).find(*e.param), std::string::npos) << field << " named " << *e.param;
  }
  EXPECT_EQ(error_of(base + R"("brand_new":1})").param, "brand_new");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"function","name":"f","content":"x"}]})").param,
            "messages[0].role");
}

TEST(ChatToAnthropicRequest, WrongShapesNameTheField) {
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":"q"}]})").param, "model");
  EXPECT_EQ(error_of(R"({"model":"m"})").param, "messages");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[]})").param, "messages");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"system","content":"only"}]})").param, "messages");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"wizard","content":"q"}]})").param,
            "messages[0].role");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"tool","content":"q"}]})").param,
            "messages[0].tool_call_id");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{bad"}}]}]})")
          .param,
      "messages[1].tool_calls[0].function.arguments");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":"9","messages":[{"role":"user","content":"q"}]})").param,
            "max_tokens");
  EXPECT_EQ(error_of(R"({"model":"m","messages":[{"role":"user","content":"q"}],"stop":5})").param, "stop");
}

TEST(ChatToAnthropicRequest, EmptyTextIsDroppedAndSameRoleTurnsMerge) {
  bj::object a =
      anthropic_of(R"({"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":""},
      {"role":"user","content":"b"},{"role":"assistant","content":""},{"role":"assistant","content":"c"}]})");
  EXPECT_TRUE(json_eq(a["messages"],
                      R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":[{"type":"text","text":"c"}]}])"));
}

// ---------------------------------------------------------------------------------------------

const ChatMeta kChatMeta{"chatcmpl-9", 1700000000, "claude-x", false};

TEST(AnthropicToChatAnswer, TextAndToolUse) {
  Result<bj::object> chat = anthropic_response_to_chat(
      obj(R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-x-2025",
      "content":[{"type":"thinking","thinking":"...","signature":"s"},{"type":"text","text":"Checking "},{"type":"text","text":"now."},
                 {"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Oslo"}}],
      "stop_reason":"tool_use","stop_sequence":null,
      "usage":{"input_tokens":20,"cache_read_input_tokens":100,"cache_creation_input_tokens":5,"output_tokens":12}})"),
      kChatMeta);
  ASSERT_TRUE(chat);
  EXPECT_TRUE(json_eq(
      *chat, R"({"id":"chatcmpl-9","object":"chat.completion","created":1700000000,"model":"claude-x-2025",
      "choices":[{"index":0,"message":{"role":"assistant","content":"Checking now.","refusal":null,
        "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},
        "logprobs":null,"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":125,"completion_tokens":12,"total_tokens":137,"prompt_tokens_details":{"cached_tokens":100}}})"));
}

TEST(AnthropicToChatAnswer, StopReasonsBecomeFinishReasons) {
  const std::pair<const char*, const char*> cases[] = {
      {"end_turn", "stop"},       {"stop_sequence", "stop"},     {"max_tokens", "length"},
      {"tool_use", "tool_calls"}, {"refusal", "content_filter"}, {"pause_turn", "stop"}};
  for (const auto& [stop, finish] : cases) {
    Result<bj::object> chat = anthropic_response_to_chat(
        obj(std::string(R"({"content":[{"type":"text","text":"x"}],"stop_reason":")") + stop + R"("})"),
        kChatMeta);
    ASSERT_TRUE(chat);
    EXPECT_EQ(chat->at("choices").at(0).at("finish_reason").as_string(), finish) << stop;
  }
}

TEST(AnthropicToChatAnswer, OnlyToolUseHasNullContentAndNoContentIsAnError) {
  Result<bj::object> chat = anthropic_response_to_chat(
      obj(R"({"id":"msg_2","content":[{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"tool_use"})"),
      ChatMeta{"", 1, "m", false});
  ASSERT_TRUE(chat);
  EXPECT_TRUE(chat->at("choices").at(0).at("message").at("content").is_null());
  EXPECT_EQ(chat->at("id").as_string(), "msg_2");  // no id given: the message's
  EXPECT_FALSE(chat->contains("usage"));
  Result<bj::object> bad = anthropic_response_to_chat(obj(R"({"type":"message"})"), kChatMeta);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ErrorKind::kOpenAiApiError);
}

// ---------------------------------------------------------------------------------------------

std::vector<bj::object> chunks_of(std::initializer_list<std::string_view> events, bool include_usage) {
  AnthropicToChatStream s(ChatMeta{"chatcmpl-9", 1700000000, "claude-x", include_usage});
  std::vector<bj::object> out;
  for (std::string_view e : events) EXPECT_TRUE(s.feed(obj(e), out)) << e;
  EXPECT_TRUE(s.done());
  return out;
}

constexpr std::string_view kStart =
    R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-x-2025","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}})";

TEST(AnthropicToChatStreamTest, TextEventsBecomeChunks) {
  std::vector<bj::object> chunks = chunks_of(
      {kStart, R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})",
       R"({"type":"ping"})",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}})",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}})",
       R"({"type":"content_block_stop","index":0})",
       R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}})",
       R"({"type":"message_stop"})"},
      true);
  ASSERT_EQ(chunks.size(), 5u);
  EXPECT_TRUE(json_eq(
      chunks[0],
      R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1700000000,"model":"claude-x-2025",
      "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})"));
  EXPECT_TRUE(json_eq(chunks[1]["choices"],
                      R"([{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}])"));
  EXPECT_TRUE(
      json_eq(chunks[3]["choices"], R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}])"));
  EXPECT_TRUE(json_eq(
      chunks[4],
      R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1700000000,"model":"claude-x-2025",
      "choices":[],"usage":{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":0}}})"));
}

TEST(AnthropicToChatStreamTest, ToolUseBecomesToolCallDeltas) {
  std::vector<bj::object> chunks = chunks_of(
      {kStart,
       R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}})",
       R"({"type":"content_block_stop","index":0})",
       R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"weather","input":{}}})",
       R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}})",
       R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Oslo\"}"}})",
       R"({"type":"content_block_stop","index":1})",
       R"({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_2","name":"time","input":{}}})",
       R"({"type":"content_block_stop","index":2})",
       R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}})",
       R"({"type":"message_stop"})"},
      false);
  ASSERT_EQ(chunks.size(), 6u);
  EXPECT_TRUE(json_eq(
      chunks[1]["choices"].at(0).at("delta"),
      R"({"tool_calls":[{"index":0,"id":"toolu_1","type":"function","function":{"name":"weather","arguments":""}}]})"));
  EXPECT_TRUE(json_eq(chunks[2]["choices"].at(0).at("delta"),
                      R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]})"));
  EXPECT_EQ(chunks[4]["choices"].at(0).at("delta").at("tool_calls").at(0).at("index").as_int64(), 1);
  EXPECT_EQ(chunks[5]["choices"].at(0).at("finish_reason").as_string(), "tool_calls");
}

TEST(AnthropicToChatStreamTest, AnErrorEventIsTheErrorItStandsFor) {
  AnthropicToChatStream s(kChatMeta);
  std::vector<bj::object> out;
  ASSERT_TRUE(s.feed(obj(kStart), out));
  Status st =
      s.feed(obj(R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"), out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kOpenAiConnection);
  EXPECT_EQ(st.error().message, "Overloaded");
  EXPECT_TRUE(s.done());
  EXPECT_TRUE(s.feed(obj(R"({"type":"message_stop"})"), out));  // nothing after the end
  EXPECT_EQ(out.size(), 1u);
}

TEST(AnthropicToChatStreamTest, UnknownEventsAreSkippedAndUsageIsCounted) {
  AnthropicToChatStream s(kChatMeta);
  std::vector<bj::object> out;
  ASSERT_TRUE(s.feed(obj(kStart), out));
  ASSERT_TRUE(s.feed(obj(R"({"type":"brand_new_event","x":1})"), out));
  ASSERT_TRUE(s.feed(
      obj(R"({"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":30,"output_tokens":4,"cache_read_input_tokens":6}})"),
      out));
  EXPECT_EQ(s.prompt_tokens(), 36);
  EXPECT_EQ(s.completion_tokens(), 4);
  EXPECT_EQ(out.back()["choices"].at(0).at("finish_reason").as_string(), "length");
  EXPECT_FALSE(s.done());
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(TranslateRoundTrip, AMessagesRequestThroughChatAndBack) {
  const bj::object original = obj(R"({"model":"claude-x","max_tokens":300,"system":"Be brief.",
      "messages":[{"role":"user","content":[{"type":"text","text":"Weather?"}]},
        {"role":"assistant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},{"type":"text","text":"Thanks"}]}],
      "tools":[{"name":"weather","description":"d","input_schema":{"type":"object"}}],
      "tool_choice":{"type":"any"},"temperature":0.5,"stop_sequences":["END"],"stream":true})");
  Result<bj::object> chat = anthropic_request_to_chat(original);
  ASSERT_TRUE(chat);
  Result<bj::object> back = chat_request_to_anthropic(*chat);
  ASSERT_TRUE(back);
  EXPECT_TRUE(json_eq(*back, bj::serialize(original)));
}

TEST(TranslateRoundTrip, AChatAnswerThroughAnthropicAndBack) {
  const bj::object original =
      obj(R"({"id":"chatcmpl-9","object":"chat.completion","created":1700000000,"model":"gpt-4o",
      "choices":[{"index":0,"message":{"role":"assistant","content":"Here.","refusal":null,
        "tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,{\"b\":null}]}"}}]},
        "logprobs":null,"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":50,"completion_tokens":7,"total_tokens":57,"prompt_tokens_details":{"cached_tokens":20}}})");
  Result<bj::object> message = chat_response_to_anthropic(original, AnthropicMeta{"msg_1", "gpt-4o"});
  ASSERT_TRUE(message);
  Result<bj::object> back =
      anthropic_response_to_chat(*message, ChatMeta{"chatcmpl-9", 1700000000, "gpt-4o", false});
  ASSERT_TRUE(back);
  EXPECT_TRUE(json_eq(*back, bj::serialize(original)));
}

TEST(TranslateRoundTrip, ChatChunksThroughAnthropicEventsAndBack) {
  AnthropicStream to_anthropic(AnthropicMeta{"msg_1", "m"});
  std::vector<StreamEvent> events;
  for (
      const char* chunk :
      {R"({"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi "}}]})",
       R"({"choices":[{"index":0,"delta":{"content":"there"}}]})",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{\"x\":"}}]}}]})",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]})",
       R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
       R"({"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":6,"total_tokens":14}})"}) {
    to_anthropic.feed(obj(chunk), events);
  }
  to_anthropic.finish(events);
  AnthropicToChatStream back(ChatMeta{"chatcmpl-1", 1, "m", true});
  std::vector<bj::object> chunks;
  for (const StreamEvent& e : events) ASSERT_TRUE(back.feed(e.data, chunks));
  ASSERT_TRUE(back.done());
  std::string text;
  std::string arguments;
  std::string finish;
  for (const bj::object& c : chunks) {
    const bj::array& choices = c.at("choices").as_array();
    if (choices.empty()) continue;
    const bj::object& delta = choices[0].at("delta").as_object();
    if (const bj::value* t = delta.if_contains("content")) text += t->as_string();
    if (const bj::value* calls = delta.if_contains("tool_calls")) {
      arguments += calls->at(0).at("function").at("arguments").as_string();
    }
    if (choices[0].at("finish_reason").is_string()) finish = choices[0].at("finish_reason").as_string();
  }
  EXPECT_EQ(text, "Hi there");
  EXPECT_EQ(arguments, "{\"x\":1}");
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_TRUE(json_eq(
      chunks.back().at("usage"),
      R"({"prompt_tokens":8,"completion_tokens":6,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":0}})"));
}

}  // namespace
}  // namespace parley::translate
