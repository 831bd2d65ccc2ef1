// responses_request_to_chat: a Responses API request → a chat-completions request, and the fields
// it refuses with an error naming them.
#include <gtest/gtest.h>

#include "translate/responses.hpp"
#include "translate_json.hpp"

namespace parley::translate {
namespace {

namespace bj = boost::json;
using testing::json_eq;
using testing::obj;

bj::object chat_of(std::string_view request, const ResponsesRequestOptions& options = {},
                   const bj::array* prior = nullptr) {
  Result<bj::object> r = responses_request_to_chat(obj(request), options, prior);
  EXPECT_TRUE(r) << (r ? "" : r.error().message + " [" + r.error().param.value_or("") + "]");
  return r ? *r : bj::object();
}

Error error_of(std::string_view request, const ResponsesRequestOptions& options = {},
               const bj::array* prior = nullptr) {
  Result<bj::object> r = responses_request_to_chat(obj(request), options, prior);
  EXPECT_FALSE(r) << bj::serialize(*r);
  return r ? Error{} : r.error();
}

TEST(ResponsesRequest, StringInputBecomesOneUserMessage) {
  EXPECT_TRUE(json_eq(chat_of(R"({"model":"gpt-4o","input":"Hi"})"),
                      R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]})"));
}

TEST(ResponsesRequest, InstructionsComeFirstAsASystemMessage) {
  EXPECT_TRUE(json_eq(chat_of(R"({"model":"m","input":"Hi","instructions":"Be brief."})"),
                      R"({"model":"m","messages":[{"role":"system","content":"Be brief."},
                                                   {"role":"user","content":"Hi"}]})"));
}

TEST(ResponsesRequest, EmptyInstructionsAddNoMessage) {
  EXPECT_TRUE(json_eq(chat_of(R"({"model":"m","input":"Hi","instructions":""})")["messages"],
                      R"([{"role":"user","content":"Hi"}])"));
}

TEST(ResponsesRequest, MessageItemsKeepTheirRolesAndDeveloperBecomesSystem) {
  bj::object chat = chat_of(R"({"model":"m","input":[
      {"role":"developer","content":"Rules."},
      {"role":"system","content":"More rules."},
      {"type":"message","role":"user","content":"Q1"},
      {"type":"message","role":"assistant","content":[{"type":"output_text","text":"A1","annotations":[]}]},
      {"role":"user","content":[{"type":"input_text","text":"Q2"}]}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"system","content":"Rules."},
      {"role":"system","content":"More rules."},
      {"role":"user","content":"Q1"},
      {"role":"assistant","content":"A1"},
      {"role":"user","content":"Q2"}])"));
}

TEST(ResponsesRequest, UserPartsWithAnImageStayParts) {
  bj::object chat = chat_of(R"({"model":"m","input":[{"role":"user","content":[
      {"type":"input_text","text":"What is this?"},
      {"type":"input_image","image_url":"https://x.test/a.png","detail":"low"},
      {"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"user","content":[
      {"type":"text","text":"What is this?"},
      {"type":"image_url","image_url":{"url":"https://x.test/a.png","detail":"low"}},
      {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}])"));
}

TEST(ResponsesRequest, SeveralUserTextPartsStayParts) {
  bj::object chat = chat_of(R"({"model":"m","input":[{"role":"user","content":[
      {"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]}]})");
  EXPECT_TRUE(
      json_eq(chat["messages"],
              R"([{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}])"));
}

TEST(ResponsesRequest, SystemPartsJoinWithNewlinesAssistantPartsWithNothing) {
  bj::object chat = chat_of(R"({"model":"m","input":[
      {"role":"system","content":[{"type":"input_text","text":"one"},{"type":"input_text","text":"two"}]},
      {"role":"user","content":"q"},
      {"role":"assistant","content":[{"type":"output_text","text":"par"},{"type":"output_text","text":"tial"}]}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"system","content":"one\ntwo"},
      {"role":"user","content":"q"},{"role":"assistant","content":"partial"}])"));
}

TEST(ResponsesRequest, AssistantRefusalPartBecomesTheRefusalField) {
  bj::object chat = chat_of(R"({"model":"m","input":[{"role":"user","content":"q"},
      {"role":"assistant","content":[{"type":"refusal","refusal":"I can't."}]}]})");
  EXPECT_TRUE(
      json_eq(chat["messages"].as_array()[1], R"({"role":"assistant","content":"","refusal":"I can't."})"));
}

TEST(ResponsesRequest, FunctionCallsJoinThePrecedingAssistantMessageAndOutputsBecomeToolMessages) {
  bj::object chat = chat_of(R"({"model":"m","input":[
      {"role":"user","content":"Weather in Paris and Oslo?"},
      {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},
      {"type":"function_call","id":"fc_1","call_id":"call_a","name":"weather","arguments":"{\"city\":\"Paris\"}","status":"completed"},
      {"type":"function_call","call_id":"call_b","name":"weather","arguments":"{\"city\":\"Oslo\"}"},
      {"type":"function_call_output","call_id":"call_a","output":"18C"},
      {"type":"function_call_output","call_id":"call_b","output":"4C"}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([
      {"role":"user","content":"Weather in Paris and Oslo?"},
      {"role":"assistant","content":"Checking.","tool_calls":[
        {"id":"call_a","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
        {"id":"call_b","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}}]},
      {"role":"tool","tool_call_id":"call_a","content":"18C"},
      {"role":"tool","tool_call_id":"call_b","content":"4C"}])"));
}

TEST(ResponsesRequest, AFunctionCallAfterAUserMessageStartsAnAssistantMessage) {
  bj::object chat = chat_of(R"({"model":"m","input":[{"role":"user","content":"go"},
      {"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
      {"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":"done"},{"type":"input_text","text":"ok"}]}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"user","content":"go"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"done\nok"}])"));
}

TEST(ResponsesRequest, AFunctionOutputWithoutItsCallIsRefused) {
  const Error e =
      error_of(R"({"model":"m","input":[{"type":"function_call_output","call_id":"nope","output":"x"}]})");
  EXPECT_EQ(e.kind, ErrorKind::kValidation);
  EXPECT_EQ(e.param, "input[0].call_id");
  EXPECT_NE(e.message.find("nope"), std::string::npos);
}

TEST(ResponsesRequest, AFunctionCallNeedsCallIdNameAndArguments) {
  EXPECT_EQ(error_of(R"({"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]})").param,
            "input[0].call_id");
  EXPECT_EQ(
      error_of(R"({"model":"m","input":[{"type":"function_call","call_id":"c","arguments":"{}"}]})").param,
      "input[0].name");
  EXPECT_EQ(error_of(R"({"model":"m","input":[{"type":"function_call","call_id":"c","name":"f"}]})").param,
            "input[0].arguments");
}

TEST(ResponsesRequest, ReasoningItemsFromEarlierOutputAreDropped) {
  bj::object chat = chat_of(R"({"model":"m","input":[{"role":"user","content":"q"},
      {"type":"reasoning","id":"rs_1","summary":[]},
      {"role":"assistant","content":"a"},{"role":"user","content":"q2"}]})");
  EXPECT_EQ(chat.at("messages").as_array().size(), 3u);
}

TEST(ResponsesRequest, PriorItemsComeAfterInstructionsAndBeforeInput) {
  const bj::array prior = testing::arr(R"([
      {"type":"message","role":"user","content":[{"type":"input_text","text":"first"}]},
      {"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"answer","annotations":[]}]},
      {"id":"fc_1","type":"function_call","call_id":"c9","name":"f","arguments":"{}","status":"completed"}])");
  bj::object chat = chat_of(R"({"model":"m","instructions":"sys","previous_response_id":"resp_1",
      "input":[{"type":"function_call_output","call_id":"c9","output":"42"},{"role":"user","content":"next"}]})",
                            {}, &prior);
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"system","content":"sys"},
      {"role":"user","content":"first"},
      {"role":"assistant","content":"answer","tool_calls":[{"id":"c9","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c9","content":"42"},
      {"role":"user","content":"next"}])"));
}

TEST(ResponsesRequest, AnUntranslatablePriorItemNamesPreviousResponseId) {
  const bj::array prior = testing::arr(R"([{"type":"web_search_call","id":"ws_1","status":"completed"}])");
  const Error e = error_of(R"({"model":"m","input":"x"})", {}, &prior);
  EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
  EXPECT_EQ(e.param, "previous_response_id");
  EXPECT_NE(e.message.find("items[0].type"), std::string::npos) << e.message;
}

TEST(ResponsesRequest, PriorItemsAloneAreNotEnoughWithoutInputButInputAloneIs) {
  const bj::array prior = testing::arr(R"([{"role":"user","content":"old"}])");
  EXPECT_EQ(chat_of(R"({"model":"m"})", {}, &prior)["messages"].as_array().size(), 1u);
  EXPECT_EQ(error_of(R"({"model":"m","instructions":"only"})").param, "input");
  EXPECT_EQ(error_of(R"({"model":"m"})").param, "input");
  EXPECT_EQ(error_of(R"({"model":"m","input":[]})").param, "input");
}

TEST(ResponsesRequest, FunctionToolsBecomeChatTools) {
  bj::object chat = chat_of(R"({"model":"m","input":"x","tools":[
      {"type":"function","name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true},
      {"type":"function","name":"noargs","parameters":null}],
      "tool_choice":{"type":"function","name":"weather"},"parallel_tool_calls":false})");
  EXPECT_TRUE(json_eq(chat["tools"], R"([
      {"type":"function","function":{"name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}},
      {"type":"function","function":{"name":"noargs"}}])"));
  EXPECT_TRUE(json_eq(chat["tool_choice"], R"({"type":"function","function":{"name":"weather"}})"));
  EXPECT_TRUE(json_eq(chat["parallel_tool_calls"], "false"));
}

TEST(ResponsesRequest, StringToolChoicesPassAndNeedTools) {
  for (const char* choice : {"auto", "none", "required"}) {
    bj::object chat = chat_of(
        std::string(R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":")") +
        choice + R"("})");
    EXPECT_EQ(chat.at("tool_choice").as_string(), choice);
  }
  const bj::object without =
      chat_of(R"({"model":"m","input":"x","tool_choice":"auto","parallel_tool_calls":true,"tools":[]})");
  EXPECT_FALSE(without.contains("tool_choice"));
  EXPECT_FALSE(without.contains("parallel_tool_calls"));
  EXPECT_FALSE(without.contains("tools"));
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","tool_choice":"sometimes"})").param, "tool_choice");
}

TEST(ResponsesRequest, BuiltInToolsAreRefusedByName) {
  for (const char* type : {"web_search", "web_search_preview", "file_search", "computer_use_preview",
                           "code_interpreter", "image_generation", "mcp", "local_shell"}) {
    const Error e = error_of(
        std::string(R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":")") + type +
        R"("}]})");
    EXPECT_EQ(e.kind, ErrorKind::kBadRequest) << type;
    EXPECT_EQ(e.param, "tools[1].type") << type;
    EXPECT_NE(e.message.find(type), std::string::npos) << e.message;
  }
}

TEST(ResponsesRequest, HostedAndAllowedToolChoicesAreRefused) {
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","tool_choice":{"type":"web_search_preview"}})").param,
            "tool_choice.type");
  EXPECT_EQ(
      error_of(R"({"model":"m","input":"x","tool_choice":{"type":"allowed_tools","mode":"auto","tools":[]}})")
          .kind,
      ErrorKind::kBadRequest);
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","tool_choice":{"type":"function"}})").param,
            "tool_choice.name");
}

TEST(ResponsesRequest, TextFormatBecomesResponseFormat) {
  EXPECT_TRUE(json_eq(
      chat_of(
          R"({"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"person","description":"A person","schema":{"type":"object"},"strict":true}}})")
          ["response_format"],
      R"({"type":"json_schema","json_schema":{"name":"person","description":"A person","schema":{"type":"object"},"strict":true}})"));
  EXPECT_TRUE(json_eq(
      chat_of(R"({"model":"m","input":"x","text":{"format":{"type":"json_object"}}})")["response_format"],
      R"({"type":"json_object"})"));
  EXPECT_FALSE(
      chat_of(R"({"model":"m","input":"x","text":{"format":{"type":"text"}}})").contains("response_format"));
  EXPECT_EQ(
      error_of(R"({"model":"m","input":"x","text":{"format":{"type":"json_schema","schema":{}}}})").param,
      "text.format.name");
  EXPECT_EQ(
      error_of(R"({"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"n"}}})").param,
      "text.format.schema");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","text":{"format":{"type":"yaml"}}})").param,
            "text.format.type");
}

TEST(ResponsesRequest, SamplingAndLimitsAreCopiedOrRenamed) {
  bj::object chat = chat_of(R"({"model":"m","input":"x","temperature":0.2,"top_p":1,"max_output_tokens":300,
      "user":"u-1","safety_identifier":"s","prompt_cache_key":"k","service_tier":"auto","top_logprobs":2,
      "store":false,"metadata":{"a":"b"},"background":false,"truncation":"disabled","previous_response_id":null})");
  EXPECT_TRUE(
      json_eq(chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0.2,"top_p":1,
      "max_tokens":300,"user":"u-1","safety_identifier":"s","prompt_cache_key":"k","service_tier":"auto",
      "top_logprobs":2,"logprobs":true})"));
}

TEST(ResponsesRequest, StreamAsksForTheUsageChunk) {
  EXPECT_TRUE(json_eq(
      chat_of(R"({"model":"m","input":"x","stream":true,"stream_options":{"include_obfuscation":false}})"),
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}})"));
  EXPECT_FALSE(chat_of(R"({"model":"m","input":"x","stream":false})").contains("stream"));
}

TEST(ResponsesRequest, ReasoningEffortOnlyWhereThePathTakesIt) {
  const Error e = error_of(R"({"model":"m","input":"x","reasoning":{"effort":"high"}})");
  EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
  EXPECT_EQ(e.param, "reasoning");
  ResponsesRequestOptions reasoning;
  reasoning.reasoning_effort = true;
  EXPECT_EQ(chat_of(R"({"model":"m","input":"x","reasoning":{"effort":"high","summary":"auto"}})", reasoning)
                .at("reasoning_effort")
                .as_string(),
            "high");
  // no effort asked: nothing to refuse
  EXPECT_FALSE(
      chat_of(R"({"model":"m","input":"x","reasoning":{"effort":null}})").contains("reasoning_effort"));
  EXPECT_FALSE(chat_of(R"({"model":"m","input":"x","reasoning":{}})").contains("reasoning_effort"));
}

TEST(ResponsesRequest, IncludeTakesLogprobsAndRefusesServerState) {
  EXPECT_TRUE(chat_of(R"({"model":"m","input":"x","include":["message.output_text.logprobs"]})")
                  .at("logprobs")
                  .as_bool());
  for (const char* entry : {"reasoning.encrypted_content", "file_search_call.results",
                            "web_search_call.results", "message.input_image.image_url",
                            "computer_call_output.output.image_url", "code_interpreter_call.outputs"}) {
    const Error e =
        error_of(std::string(R"({"model":"m","input":"x","include":["message.output_text.logprobs",")") +
                 entry + R"("]})");
    EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
    EXPECT_EQ(e.param, "include[1]");
    EXPECT_NE(e.message.find(entry), std::string::npos);
  }
}

TEST(ResponsesRequest, InputFilesAndFileIdImagesAreRefused) {
  Error e = error_of(
      R"({"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]})");
  EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
  EXPECT_EQ(e.param, "input[0].content[0]");
  e = error_of(
      R"({"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]})");
  EXPECT_EQ(e.param, "input[0].content[0].file_id");
  e = error_of(R"({"model":"m","input":[{"role":"user","content":[{"type":"input_image"}]}]})");
  EXPECT_EQ(e.kind, ErrorKind::kValidation);
  e = error_of(
      R"({"model":"m","input":[{"role":"assistant","content":[{"type":"input_image","image_url":"https://x"}]}]})");
  EXPECT_EQ(e.param, "input[0].content[0]");
}

TEST(ResponsesRequest, BuiltInToolItemsAndReferencesAreRefused) {
  EXPECT_EQ(error_of(R"({"model":"m","input":[{"type":"item_reference","id":"msg_1"}]})").param, "input[0]");
  for (const char* type :
       {"computer_call", "computer_call_output", "file_search_call", "web_search_call",
        "image_generation_call", "code_interpreter_call", "local_shell_call", "mcp_call"}) {
    const Error e = error_of(std::string(R"({"model":"m","input":[{"role":"user","content":"x"},{"type":")") +
                             type + R"(","id":"x"}]})");
    EXPECT_EQ(e.kind, ErrorKind::kBadRequest) << type;
    EXPECT_EQ(e.param, "input[1].type") << type;
  }
}

TEST(ResponsesRequest, StateAndTemplatesAreRefused) {
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","truncation":"auto"})").param, "truncation");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","max_tool_calls":3})").param, "max_tool_calls");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","prompt":{"id":"pmpt_1"}})").param, "prompt");
  // null is "not given"
  EXPECT_TRUE(responses_request_to_chat(
      obj(R"({"model":"m","input":"x","max_tool_calls":null,"prompt":null,"truncation":null})")));
}

TEST(ResponsesRequest, UnknownParametersAreRefusedByName) {
  const Error e = error_of(R"({"model":"m","input":"x","frobnicate":1})");
  EXPECT_EQ(e.kind, ErrorKind::kBadRequest);
  EXPECT_EQ(e.param, "frobnicate");
  EXPECT_EQ(e.message, "Unknown parameter: 'frobnicate'.");
}

TEST(ResponsesRequest, WrongTypesAreValidationErrorsNamingTheField) {
  EXPECT_EQ(error_of(R"({"input":"x"})").param, "model");
  EXPECT_EQ(error_of(R"({"model":7,"input":"x"})").param, "model");
  EXPECT_EQ(error_of(R"({"model":"m","input":5})").param, "input");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","temperature":"hot"})").param, "temperature");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","max_output_tokens":1.5})").param, "max_output_tokens");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","stream":"yes"})").param, "stream");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","instructions":["a"]})").param, "instructions");
  EXPECT_EQ(error_of(R"({"model":"m","input":["x"]})").param, "input[0]");
  EXPECT_EQ(error_of(R"({"model":"m","input":[{"content":"x"}]})").param, "input[0].type");
  EXPECT_EQ(error_of(R"({"model":"m","input":[{"role":"tool","content":"x"}]})").param, "input[0].role");
  EXPECT_EQ(error_of(R"({"model":"m","input":[{"role":"user"}]})").param, "input[0].content");
  EXPECT_EQ(error_of(R"({"model":"m","input":[{"role":"user","content":[{"type":"input_text"}]}]})").param,
            "input[0].content[0].text");
  EXPECT_EQ(error_of(R"({"model":"m","input":[{"role":"user","content":[{"type":"input_video"}]}]})").param,
            "input[0].content[0].type");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","tools":{}})").param, "tools");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","tools":[{"type":"function"}]})").param, "tools[0].name");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","tools":[{"type":"function","name":"f","parameters":"x"}]})")
                .param,
            "tools[0].parameters");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","include":"all"})").param, "include");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","text":"json"})").param, "text");
  EXPECT_EQ(error_of(R"({"model":"m","input":"x","parallel_tool_calls":1})").param, "parallel_tool_calls");
}

TEST(ResponsesRequest, OddTextSurvivesUnchanged) {
  bj::object chat = chat_of(R"({"model":"m","input":[{"role":"user","content":""},
      {"role":"assistant","content":[]},{"role":"user","content":"héllo \u00e9\u4e16\u754c 🎉 \"quoted\" \n\t"}]})");
  EXPECT_TRUE(json_eq(chat["messages"], R"([{"role":"user","content":""},{"role":"assistant","content":""},
      {"role":"user","content":"héllo é世界 🎉 \"quoted\" \n\t"}])"));
}

TEST(ResponsesRequest, UserMessageWithNoPartsIsEmptyText) {
  EXPECT_TRUE(json_eq(chat_of(R"({"model":"m","input":[{"role":"user","content":[]}]})")["messages"],
                      R"([{"role":"user","content":""}])"));
}

TEST(ResponsesInputItems, AStringIsOneUserMessageItem) {
  Result<bj::array> items = responses_input_items(obj(R"({"model":"m","input":"Hi"})"));
  ASSERT_TRUE(items);
  EXPECT_TRUE(
      json_eq(*items, R"([{"type":"message","role":"user","content":[{"type":"input_text","text":"Hi"}]}])"));
}

TEST(ResponsesInputItems, EasyMessagesGetATypeAndParts) {
  Result<bj::array> items = responses_input_items(obj(R"({"input":[{"role":"user","content":"q"},
      {"role":"assistant","content":"a"},{"type":"function_call_output","call_id":"c","output":"o"},
      {"role":"user","content":[{"type":"input_text","text":"p"}]}]})"));
  ASSERT_TRUE(items);
  EXPECT_TRUE(json_eq(*items, R"([
      {"type":"message","role":"user","content":[{"type":"input_text","text":"q"}]},
      {"type":"message","role":"assistant","content":[{"type":"output_text","text":"a"}]},
      {"type":"function_call_output","call_id":"c","output":"o"},
      {"type":"message","role":"user","content":[{"type":"input_text","text":"p"}]}])"));
}

TEST(ResponsesInputItems, NoInputIsNoItemsAndABadOneAnError) {
  ASSERT_TRUE(responses_input_items(obj(R"({"model":"m"})")));
  EXPECT_TRUE(responses_input_items(obj(R"({"model":"m"})"))->empty());
  EXPECT_FALSE(responses_input_items(obj(R"({"input":3})")));
  EXPECT_FALSE(responses_input_items(obj(R"({"input":[1]})")));
}

}  // namespace
}  // namespace parley::translate
