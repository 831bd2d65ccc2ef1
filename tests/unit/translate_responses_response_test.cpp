// chat_response_to_responses: a chat-completions answer → a Responses API `response` object.
#include <gtest/gtest.h>

#include "translate/responses.hpp"
#include "translate_json.hpp"

namespace parley::translate {
namespace {

namespace bj = boost::json;
using testing::json_eq;
using testing::obj;

constexpr std::string_view kRequest = R"({"model":"gpt-4o-mini","input":"Hi"})";

bj::object answer(std::string_view chat, std::string_view request = kRequest,
                  ResponseMeta meta = {"resp_abc", 1700000000}) {
  Result<bj::object> r = chat_response_to_responses(obj(chat), obj(request), meta);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? *r : bj::object();
}

TEST(ResponsesAnswer, ATextAnswerIsACompletedResponseWithOneMessage) {
  const bj::object r =
      answer(R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
      "choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],
      "usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}})");
  EXPECT_TRUE(json_eq(r, R"({"id":"resp_abc","object":"response","created_at":1700000000,"status":"completed",
      "background":false,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,
      "max_tool_calls":null,"model":"gpt-4o-mini-2024-07-18",
      "output":[{"id":"msg_abc","type":"message","status":"completed","role":"assistant",
                 "content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello!"}]}],
      "parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},
      "service_tier":"default","store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto",
      "tools":[],"top_logprobs":0,"top_p":1.0,"truncation":"disabled",
      "usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":0},"output_tokens":3,
               "output_tokens_details":{"reasoning_tokens":0},"total_tokens":12},
      "user":null,"metadata":{}})"));
}

TEST(ResponsesAnswer, ToolCallsBecomeFunctionCallItems) {
  const bj::object r = answer(
      R"({"model":"m","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,
      "tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
                    {"id":"call_2","type":"function","function":{"name":"time","arguments":"{}"}}]}}]})");
  EXPECT_EQ(r.at("status").as_string(), "completed");
  EXPECT_TRUE(json_eq(r.at("output"), R"([
      {"id":"fc_abc_0","type":"function_call","status":"completed","arguments":"{\"city\":\"Paris\"}","call_id":"call_1","name":"weather"},
      {"id":"fc_abc_1","type":"function_call","status":"completed","arguments":"{}","call_id":"call_2","name":"time"}])"));
}

TEST(ResponsesAnswer, TextBeforeToolCallsIsTheFirstItem) {
  const bj::object r =
      answer(R"({"choices":[{"finish_reason":"tool_calls","message":{"content":"Let me check.",
      "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}}]})");
  const bj::array& output = r.at("output").as_array();
  ASSERT_EQ(output.size(), 2u);
  EXPECT_EQ(output[0].at("type").as_string(), "message");
  EXPECT_EQ(output[1].at("type").as_string(), "function_call");
  EXPECT_EQ(r.at("model").as_string(), "gpt-4o-mini");  // the request's, when the answer names none
}

TEST(ResponsesAnswer, LengthIsIncompleteForMaxOutputTokens) {
  const bj::object r = answer(R"({"choices":[{"finish_reason":"length","message":{"content":"Once upon"}}]})",
                              R"({"model":"m","input":"x","max_output_tokens":2})");
  EXPECT_EQ(r.at("status").as_string(), "incomplete");
  EXPECT_TRUE(json_eq(r.at("incomplete_details"), R"({"reason":"max_output_tokens"})"));
  EXPECT_EQ(r.at("output").at(0).at("status").as_string(), "incomplete");
  EXPECT_EQ(r.at("max_output_tokens").as_int64(), 2);
}

TEST(ResponsesAnswer, ContentFilterIsIncompleteForContentFilter) {
  const bj::object r = answer(R"({"choices":[{"finish_reason":"content_filter","message":{"content":""}}]})");
  EXPECT_EQ(r.at("status").as_string(), "incomplete");
  EXPECT_TRUE(json_eq(r.at("incomplete_details"), R"({"reason":"content_filter"})"));
  EXPECT_TRUE(r.at("output").as_array().empty());
}

TEST(ResponsesAnswer, ARefusalIsARefusalPart) {
  const bj::object r = answer(
      R"({"choices":[{"finish_reason":"stop","message":{"content":null,"refusal":"I can't help with that."}}]})");
  EXPECT_TRUE(json_eq(r.at("output").at(0).at("content"),
                      R"([{"type":"refusal","refusal":"I can't help with that."}])"));
}

TEST(ResponsesAnswer, UsageDetailsAreCarriedAndMissingUsageIsNull) {
  const bj::object r = answer(R"({"choices":[{"finish_reason":"stop","message":{"content":"x"}}],
      "usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150,
               "prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":20}}})");
  EXPECT_TRUE(json_eq(r.at("usage"), R"({"input_tokens":100,"input_tokens_details":{"cached_tokens":64},
      "output_tokens":50,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":150})"));
  EXPECT_TRUE(
      answer(R"({"choices":[{"finish_reason":"stop","message":{"content":"x"}}]})").at("usage").is_null());
}

TEST(ResponsesAnswer, TheRequestIsEchoed) {
  const bj::object r =
      answer(R"({"choices":[{"finish_reason":"stop","message":{"content":"x"}}]})",
             R"({"model":"m","input":"x","instructions":"Be kind.","max_output_tokens":99,"temperature":0.3,
      "top_p":0.9,"tools":[{"type":"function","name":"f"}],"tool_choice":"required","parallel_tool_calls":false,
      "text":{"format":{"type":"json_object"}},"previous_response_id":"resp_prev","store":false,
      "metadata":{"k":"v"},"user":"u","reasoning":{"effort":"low"},"truncation":"disabled","background":false})");
  EXPECT_EQ(r.at("instructions").as_string(), "Be kind.");
  EXPECT_EQ(r.at("max_output_tokens").as_int64(), 99);
  EXPECT_DOUBLE_EQ(r.at("temperature").as_double(), 0.3);
  EXPECT_DOUBLE_EQ(r.at("top_p").as_double(), 0.9);
  EXPECT_TRUE(json_eq(r.at("tools"), R"([{"type":"function","name":"f"}])"));
  EXPECT_EQ(r.at("tool_choice").as_string(), "required");
  EXPECT_FALSE(r.at("parallel_tool_calls").as_bool());
  EXPECT_TRUE(json_eq(r.at("text"), R"({"format":{"type":"json_object"}})"));
  EXPECT_EQ(r.at("previous_response_id").as_string(), "resp_prev");
  EXPECT_FALSE(r.at("store").as_bool());
  EXPECT_TRUE(json_eq(r.at("metadata"), R"({"k":"v"})"));
  EXPECT_EQ(r.at("user").as_string(), "u");
  EXPECT_TRUE(json_eq(r.at("reasoning"), R"({"effort":"low","summary":null})"));
}

TEST(ResponsesAnswer, CreatedAtFallsBackToTheAnswersCreated) {
  const bj::object r =
      answer(R"({"created":1234,"choices":[{"finish_reason":"stop","message":{"content":"x"}}]})", kRequest,
             ResponseMeta{"resp_1", 0});
  EXPECT_EQ(r.at("created_at").as_int64(), 1234);
}

TEST(ResponsesAnswer, AnIdWithoutThePrefixStillNamesItsItems) {
  const bj::object r = answer(R"({"choices":[{"finish_reason":"stop","message":{"content":"x",
      "tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]}}]})",
                              kRequest, ResponseMeta{"custom", 1});
  EXPECT_EQ(r.at("output").at(0).at("id").as_string(), "msg_custom");
  EXPECT_EQ(r.at("output").at(1).at("id").as_string(), "fc_custom_0");
}

TEST(ResponsesAnswer, LogprobsAreCarriedToTheTextPart) {
  const bj::object r = answer(R"({"choices":[{"finish_reason":"stop","message":{"content":"Hi"},
      "logprobs":{"content":[{"token":"Hi","logprob":-0.1,"bytes":[72,105],"top_logprobs":[]}]}}]})");
  EXPECT_TRUE(json_eq(r.at("output").at(0).at("content").at(0).at("logprobs"),
                      R"([{"token":"Hi","logprob":-0.1,"bytes":[72,105],"top_logprobs":[]}])"));
}

TEST(ResponsesAnswer, ContentGivenAsPartsIsJoined) {
  const bj::object r = answer(
      R"({"choices":[{"finish_reason":"stop","message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]})");
  EXPECT_EQ(r.at("output").at(0).at("content").at(0).at("text").as_string(), "ab");
}

TEST(ResponsesAnswer, UnicodeTextIsKept) {
  const bj::object r = answer(R"({"choices":[{"finish_reason":"stop","message":{"content":"日本語 ✓ 🎉"}}]})");
  EXPECT_EQ(r.at("output").at(0).at("content").at(0).at("text").as_string(), "日本語 ✓ 🎉");
}

TEST(ResponsesAnswer, EveryCharacterThatJsonEscapesIsEscaped) {
  // Quotes, backslashes and every control character, in the text, a tool's arguments and its name.
  std::string nasty = "q\"b\\s/";
  for (char c = 0; c < 0x20; ++c) nasty.push_back(c);
  nasty += "end";
  bj::object chat = obj(R"({"choices":[{"finish_reason":"tool_calls","message":{"content":"",
      "tool_calls":[{"id":"c","type":"function","function":{"name":"","arguments":""}}]}}]})");
  bj::object& message = chat["choices"].as_array()[0].as_object()["message"].as_object();
  message["content"] = nasty;
  bj::object& function = message["tool_calls"].as_array()[0].as_object()["function"].as_object();
  function["name"] = nasty;
  function["arguments"] = nasty;
  Result<std::string> text = chat_response_to_responses_text(chat, obj(kRequest), {"resp_abc", 1});
  ASSERT_TRUE(text);
  boost::system::error_code ec;
  const bj::value parsed = bj::parse(*text, ec);
  ASSERT_FALSE(ec) << *text;
  const bj::array& output = parsed.at("output").as_array();
  EXPECT_EQ(output.at(0).at("content").at(0).at("text").as_string(), nasty);
  EXPECT_EQ(output.at(1).at("name").as_string(), nasty);
  EXPECT_EQ(output.at(1).at("arguments").as_string(), nasty);
  // The text is what Boost.JSON's serializer writes for the same object.
  EXPECT_EQ(*text, bj::serialize(parsed));
}

TEST(ResponsesAnswer, MembersSentOnlyWhenGivenAreEchoedAndNullIsTheDefault) {
  const bj::object r =
      answer(R"({"choices":[{"finish_reason":"stop","message":{"content":"x"}}]})",
             R"({"model":"m","input":"Hi","conversation":{"id":"conv_1"},"prompt_cache_key":"k",
      "safety_identifier":"s","temperature":null,"tools":null,"reasoning":{"summary":"auto"}})");
  EXPECT_TRUE(json_eq(r.at("conversation"), R"({"id":"conv_1"})"));
  EXPECT_EQ(r.at("prompt_cache_key").as_string(), "k");
  EXPECT_EQ(r.at("safety_identifier").as_string(), "s");
  EXPECT_EQ(r.at("temperature").as_double(), 1.0);
  EXPECT_TRUE(r.at("tools").as_array().empty());
  EXPECT_TRUE(json_eq(r.at("reasoning"), R"({"effort":null,"summary":"auto"})"));
}

TEST(ResponsesAnswer, AnAnswerWithoutChoicesIsAProviderError) {
  for (const char* chat : {R"({})", R"({"choices":[]})", R"({"choices":[1]})"}) {
    Result<bj::object> r = chat_response_to_responses(obj(chat), obj(kRequest), {"resp_1", 1});
    ASSERT_FALSE(r) << chat;
    EXPECT_EQ(r.error().kind, ErrorKind::kOpenAiApiError);
  }
}

TEST(ResponsesAnswer, AMessageWithNothingInItHasNoOutput) {
  const bj::object r = answer(R"({"choices":[{"finish_reason":"stop"}]})");
  EXPECT_TRUE(r.at("output").as_array().empty());
  EXPECT_EQ(r.at("status").as_string(), "completed");
}

}  // namespace
}  // namespace parley::translate
