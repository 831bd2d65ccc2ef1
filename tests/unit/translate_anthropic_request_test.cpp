// anthropic_request_to_chat: an Anthropic Messages request → a chat-completions request, and what
// it refuses.
#include <gtest/gtest.h>

#include "translate/anthropic.hpp"
#include "translate_json.hpp"

namespace parley::translate {
namespace {

namespace bj = boost::json;
using testing::json_eq;
using testing::obj;

bj::object chat_of(std::string_view request) {
  Result<bj::object> r = anthropic_request_to_chat(obj(request));
  EXPECT_TRUE(r) << (r ? "" : r.error().message + " [" + r.error().param.value_or("") + "]");
  return r ? *r : bj::object();
}

Error error_of(std::string_view request) {
  Result<bj::object> r = anthropic_request_to_chat(obj(request));
  EXPECT_FALSE(r) << bj::serialize(*r);
  return r ? Error{} : r.error();
}

TEST(AnthropicRequest, ASimpleMessage) {
  EXPECT_TRUE(json_eq(
      chat_of(R"({"model":"claude-x","max_tokens":256,"messages":[{"role":"user","content":"Hello"}]})"),
      R"({"model":"claude-x","messages":[{"role":"user","content":"Hello"}],"max_tokens":256})"));
}

TEST(AnthropicRequest, SystemAsStringOrTextBlocks) {
  EXPECT_TRUE(json_eq(
      chat_of(
          R"({"model":"m","max_tokens":1,"system":"Be brief.","messages":[{"role":"user","content":"q"}]})")
          ["messages"],
      R"([{"role":"system","content":"Be brief."},{"role":"user","content":"q"}])"));
  EXPECT_TRUE(json_eq(chat_of(R"({"model":"m","max_tokens":1,"system":[{"type":"text","text":"One."},
      {"type":"text","text":"Two.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"q"}]})")
                          ["messages"],
                      R"([{"role":"system","content":"One.\nTwo."},{"role":"user","content":"q"}])"));
  EXPECT_EQ(chat_of(R"({"model":"m","max_tokens":1,"system":"","messages":[{"role":"user","content":"q"}]})")
                ["messages"]
                    .as_array()
                    .size(),
            1u);
  EXPECT_EQ(
      error_of(
          R"({"model":"m","max_tokens":1,"system":[{"type":"image"}],"messages":[{"role":"user","content":"q"}]})")
          .param,
      "system[0]");
  EXPECT_EQ(
      error_of(R"({"model":"m","max_tokens":1,"system":5,"messages":[{"role":"user","content":"q"}]})").param,
      "system");
}

TEST(AnthropicRequest, TextBlocksAndImagesBecomeParts) {
  bj::object chat = chat_of(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[
      {"type":"text","text":"What is in these?","cache_control":{"type":"ephemeral"}},
      {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
      {"type":"image","source":{"type":"url","url":"https://x.test/cat.jpg"}}]}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"user","content":[
      {"type":"text","text":"What is in these?"},
      {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
      {"type":"image_url","image_url":{"url":"https://x.test/cat.jpg"}}]}])"));
}

TEST(AnthropicRequest, OneTextBlockIsAString) {
  EXPECT_TRUE(json_eq(
      chat_of(
          R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})")
          ["messages"],
      R"([{"role":"user","content":"hi"}])"));
}

TEST(AnthropicRequest, ToolUseAndToolResultsKeepTheirOrder) {
  bj::object chat = chat_of(R"({"model":"m","max_tokens":100,"messages":[
      {"role":"user","content":"Weather in Paris and Oslo?"},
      {"role":"assistant","content":[{"type":"text","text":"Checking."},
        {"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}},
        {"type":"tool_use","id":"toolu_2","name":"weather","input":{"city":"Oslo"}}]},
      {"role":"user","content":[
        {"type":"tool_result","tool_use_id":"toolu_1","content":"18C"},
        {"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"4C"},{"type":"text","text":"windy"}],"is_error":false},
        {"type":"text","text":"And tomorrow?"}]}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([
      {"role":"user","content":"Weather in Paris and Oslo?"},
      {"role":"assistant","content":"Checking.","tool_calls":[
        {"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
        {"id":"toolu_2","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},
      {"role":"tool","tool_call_id":"toolu_1","content":"18C"},
      {"role":"tool","tool_call_id":"toolu_2","content":"4C\nwindy"},
      {"role":"user","content":"And tomorrow?"}])"));
}

TEST(AnthropicRequest, AnAssistantTurnOfOnlyToolUseHasNullContent) {
  bj::object chat = chat_of(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"go"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"tool_use","id":"t","name":"f","input":{}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"user","content":"go"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"t","content":""}])"));
}

TEST(AnthropicRequest, AToolResultNeedsItsToolUse) {
  const Error e = error_of(
      R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"ghost","content":"x"}]}]})");
  EXPECT_EQ(e.kind, ErrorKind::kValidation);
  EXPECT_EQ(e.param, "messages[0].content[0].tool_use_id");
}

TEST(AnthropicRequest, ToolsAndToolChoice) {
  bj::object chat = chat_of(R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"q"}],
      "tools":[{"name":"weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}}},"cache_control":{"type":"ephemeral"}},
               {"type":"custom","name":"noop","input_schema":{"type":"object"}}],
      "tool_choice":{"type":"tool","name":"weather","disable_parallel_tool_use":true}})");
  EXPECT_TRUE(json_eq(chat["tools"], R"([
      {"type":"function","function":{"name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
      {"type":"function","function":{"name":"noop","parameters":{"type":"object"}}}])"));
  EXPECT_TRUE(json_eq(chat["tool_choice"], R"({"type":"function","function":{"name":"weather"}})"));
  EXPECT_TRUE(json_eq(chat["parallel_tool_calls"], "false"));
}

TEST(AnthropicRequest, ToolChoiceKinds) {
  const std::string base =
      R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"q"}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":)";
  EXPECT_EQ(chat_of(base + R"({"type":"auto"}})").at("tool_choice").as_string(), "auto");
  EXPECT_EQ(chat_of(base + R"({"type":"any"}})").at("tool_choice").as_string(), "required");
  EXPECT_EQ(chat_of(base + R"({"type":"none"}})").at("tool_choice").as_string(), "none");
  EXPECT_FALSE(chat_of(base + R"({"type":"auto","disable_parallel_tool_use":false}})")
                   .contains("parallel_tool_calls"));
  EXPECT_EQ(error_of(base + R"({"type":"tool"}})").param, "tool_choice.name");
  EXPECT_EQ(error_of(base + R"({"type":"some"}})").param, "tool_choice.type");
  EXPECT_EQ(error_of(base + R"("auto"})").param, "tool_choice");
  // no tools: nothing to choose
  EXPECT_FALSE(
      chat_of(
          R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"q"}],"tool_choice":{"type":"any"}})")
          .contains("tool_choice"));
}

TEST(AnthropicRequest, ServerToolsAreRefusedByName) {
  for (const char* type : {"web_search_20250305", "bash_20250124", "text_editor_20250124",
                           "computer_20250124", "code_execution_20250522"}) {
    const Error e = error_of(
        std::string(
            R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"q"}],"tools":[{"type":")") +
        type + R"(","name":"x"}]})");
    EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
    EXPECT_EQ(e.param, "tools[0].type");
    EXPECT_NE(e.message.find(type), std::string::npos);
  }
  EXPECT_EQ(
      error_of(
          R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":"q"}],"tools":[{"name":"f"}]})")
          .param,
      "tools[0].input_schema");
}

TEST(AnthropicRequest, SamplingStopAndMetadata) {
  EXPECT_TRUE(json_eq(
      chat_of(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}],"temperature":0.5,
      "top_p":0.9,"stop_sequences":["END","\n\nHuman:"],"metadata":{"user_id":"u-42"},"service_tier":"auto"})"),
      R"({"model":"m","messages":[{"role":"user","content":"q"}],"max_tokens":5,"temperature":0.5,
      "top_p":0.9,"stop":["END","\n\nHuman:"],"user":"u-42"})"));
}

TEST(AnthropicRequest, StreamAsksForTheUsageChunk) {
  bj::object chat =
      chat_of(R"({"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"q"}]})");
  EXPECT_TRUE(chat.at("stream").as_bool());
  EXPECT_TRUE(json_eq(chat.at("stream_options"), R"({"include_usage":true})"));
}

TEST(AnthropicRequest, MaxTokensIsRequired) {
  Error e = error_of(R"({"model":"m","messages":[{"role":"user","content":"q"}]})");
  EXPECT_EQ(e.kind, ErrorKind::kValidation);
  EXPECT_EQ(e.param, "max_tokens");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":"10","messages":[{"role":"user","content":"q"}]})").param,
            "max_tokens");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":null,"messages":[{"role":"user","content":"q"}]})").param,
            "max_tokens");
}

TEST(AnthropicRequest, ThinkingAndAnthropicOnlyFeaturesAreRefused) {
  Error e = error_of(
      R"({"model":"m","max_tokens":5,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"q"}]})");
  EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
  EXPECT_EQ(e.param, "thinking");
  EXPECT_TRUE(anthropic_request_to_chat(obj(
      R"({"model":"m","max_tokens":5,"thinking":{"type":"disabled"},"messages":[{"role":"user","content":"q"}]})")));
  for (const char* key : {"top_k", "container", "mcp_servers", "context_management"}) {
    e = error_of(std::string(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}],")") +
                 key + R"(":1})");
    EXPECT_EQ(e.kind, ErrorKind::kBadRequest) << key;
    EXPECT_EQ(e.param, key);
  }
}

TEST(AnthropicRequest, DocumentsAndOtherBlocksAreRefused) {
  Error e = error_of(
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"x"}}]}]})");
  EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
  EXPECT_EQ(e.param, "messages[0].content[0].type");
  e = error_of(
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]})");
  EXPECT_EQ(e.param, "messages[0].content[0].source.type");
  e = error_of(
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]}]})");
  EXPECT_EQ(e.param, "messages[1].content[0].type");
  e = error_of(
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}]}]})");
  EXPECT_EQ(e.param, "messages[2].content[0].content[0]");
}

TEST(AnthropicRequest, UnknownFieldsAreRefused) {
  const Error e = error_of(
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}],"frequency_penalty":1})");
  EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
  EXPECT_EQ(e.param, "frequency_penalty");
}

TEST(AnthropicRequest, WrongShapesNameTheField) {
  EXPECT_EQ(error_of(R"({"max_tokens":5,"messages":[{"role":"user","content":"q"}]})").param, "model");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":5})").param, "messages");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":5,"messages":[]})").param, "messages");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":5,"messages":["hi"]})").param, "messages[0]");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"q"}]})").param,
            "messages[0].role");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":5,"messages":[{"role":"user"}]})").param,
            "messages[0].content");
  EXPECT_EQ(error_of(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":7}]})").param,
            "messages[0].content");
  EXPECT_EQ(
      error_of(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text"}]}]})")
          .param,
      "messages[0].content[0].text");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64"}}]}]})")
          .param,
      "messages[0].content[0].source");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}],"temperature":"warm"})")
          .param,
      "temperature");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}],"stop_sequences":"END"})")
          .param,
      "stop_sequences");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}],"stop_sequences":[1]})")
          .param,
      "stop_sequences[0]");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"}],"metadata":{"user_id":3}})")
          .param,
      "metadata.user_id");
  EXPECT_EQ(
      error_of(
          R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"tool_use","name":"f"}]}]})")
          .param,
      "messages[1].content[0].id");
}

TEST(AnthropicRequest, OddContentSurvives) {
  bj::object chat = chat_of(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":""},
      {"role":"assistant","content":[]},{"role":"user","content":[]},{"role":"user","content":"ünï 😀 \u0000 end"}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"user","content":""},{"role":"assistant","content":""},
      {"role":"user","content":"ünï 😀 \u0000 end"}])"));
}

}  // namespace
}  // namespace parley::translate
