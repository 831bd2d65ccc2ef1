// ResponsesStream: chat-completions chunks → Responses API stream events, in OpenAI's order, with
// sequence numbers, and the final response.
#include <gtest/gtest.h>

#include "translate/responses.hpp"
#include "translate_json.hpp"

namespace parley::translate {
namespace {

namespace bj = boost::json;
using testing::json_eq;
using testing::names;
using testing::obj;

constexpr std::string_view kRequest = R"({"model":"gpt-4o-mini","input":"Hi","stream":true})";

struct Streamed {
  std::vector<StreamEvent> events;
  bj::object response;
};

Streamed stream(std::initializer_list<std::string_view> chunks, std::string_view request = kRequest) {
  ResponsesStream s(obj(request), ResponseMeta{"resp_abc", 1700000000});
  Streamed run;
  for (std::string_view chunk : chunks) s.feed(obj(chunk), run.events);
  s.finish(run.events);
  run.response = s.response();
  return run;
}

std::string chunk_text(std::string_view text) {
  return R"({"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":")" +
         std::string(text) + R"("},"finish_reason":null}]})";
}

constexpr std::string_view kRole =
    R"({"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})";
constexpr std::string_view kStop = R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})";
constexpr std::string_view kUsage =
    R"({"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})";

void expect_sequence_numbers(const std::vector<StreamEvent>& events) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].data.at("sequence_number").as_int64(), static_cast<std::int64_t>(i))
        << events[i].name;
    EXPECT_EQ(events[i].data.at("type").as_string(), events[i].name);
  }
}

TEST(ResponsesStreamTest, TextStreamsInOpenAisOrder) {
  const std::string hello = chunk_text("Hel");
  const std::string world = chunk_text("lo!");
  const Streamed run = stream({kRole, hello, world, kStop, kUsage});
  EXPECT_EQ(names(run.events),
            (std::vector<std::string>{"response.created", "response.in_progress",
                                      "response.output_item.added", "response.content_part.added",
                                      "response.output_text.delta", "response.output_text.delta",
                                      "response.output_text.done", "response.content_part.done",
                                      "response.output_item.done", "response.completed"}));
  expect_sequence_numbers(run.events);
  EXPECT_EQ(run.events[0].data.at("response").at("status").as_string(), "in_progress");
  EXPECT_TRUE(run.events[0].data.at("response").at("output").as_array().empty());
  EXPECT_TRUE(json_eq(run.events[2].data, R"({"type":"response.output_item.added","output_index":0,
      "item":{"id":"msg_abc","type":"message","status":"in_progress","content":[],"role":"assistant"},"sequence_number":2})"));
  EXPECT_TRUE(json_eq(run.events[3].data,
                      R"({"type":"response.content_part.added","item_id":"msg_abc","output_index":0,
      "content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""},"sequence_number":3})"));
  EXPECT_TRUE(json_eq(run.events[4].data,
                      R"({"type":"response.output_text.delta","item_id":"msg_abc","output_index":0,
      "content_index":0,"delta":"Hel","logprobs":[],"sequence_number":4})"));
  EXPECT_TRUE(
      json_eq(run.events[6].data, R"({"type":"response.output_text.done","item_id":"msg_abc","output_index":0,
      "content_index":0,"text":"Hello!","logprobs":[],"sequence_number":6})"));
  EXPECT_TRUE(json_eq(run.events[7].data,
                      R"({"type":"response.content_part.done","item_id":"msg_abc","output_index":0,
      "content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello!"},"sequence_number":7})"));
  EXPECT_TRUE(json_eq(run.events[8].data, R"({"type":"response.output_item.done","output_index":0,
      "item":{"id":"msg_abc","type":"message","status":"completed","role":"assistant",
              "content":[{"type":"output_text","annotations":[],"logprobs":[],"text":"Hello!"}]},"sequence_number":8})"));
  const bj::object& done = run.events[9].data.at("response").as_object();
  EXPECT_EQ(done.at("status").as_string(), "completed");
  EXPECT_EQ(done.at("output").at(0).at("content").at(0).at("text").as_string(), "Hello!");
  EXPECT_TRUE(json_eq(done.at("usage"), R"({"input_tokens":5,"input_tokens_details":{"cached_tokens":0},
      "output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":7})"));
  EXPECT_TRUE(json_eq(run.response, bj::serialize(done)));
}

TEST(ResponsesStreamTest, ToolCallsStreamTheirArguments) {
  const Streamed run = stream({
      kRole,
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":""}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
  });
  EXPECT_EQ(names(run.events),
            (std::vector<std::string>{
                "response.created", "response.in_progress", "response.output_item.added",
                "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done", "response.completed"}));
  expect_sequence_numbers(run.events);
  EXPECT_TRUE(json_eq(run.events[2].data, R"({"type":"response.output_item.added","output_index":0,
      "item":{"id":"fc_abc_0","type":"function_call","status":"in_progress","arguments":"","call_id":"call_1","name":"weather"},
      "sequence_number":2})"));
  EXPECT_TRUE(
      json_eq(run.events[3].data, R"({"type":"response.function_call_arguments.delta","item_id":"fc_abc_0",
      "output_index":0,"delta":"{\"city\":","sequence_number":3})"));
  EXPECT_TRUE(
      json_eq(run.events[5].data, R"({"type":"response.function_call_arguments.done","item_id":"fc_abc_0",
      "output_index":0,"name":"weather","arguments":"{\"city\":\"Paris\"}","sequence_number":5})"));
  EXPECT_TRUE(
      json_eq(run.response.at("output"), R"([{"id":"fc_abc_0","type":"function_call","status":"completed",
      "arguments":"{\"city\":\"Paris\"}","call_id":"call_1","name":"weather"}])"));
  EXPECT_TRUE(run.response.at("usage").is_null());
}

TEST(ResponsesStreamTest, TextThenTwoToolCallsCloseEachItemBeforeTheNext) {
  const std::string text = chunk_text("Checking.");
  const Streamed run = stream({
      text,
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{\"x\""}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":1}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
  });
  EXPECT_EQ(names(run.events),
            (std::vector<std::string>{
                "response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added", "response.output_text.delta", "response.output_text.done",
                "response.content_part.done", "response.output_item.done", "response.output_item.added",
                "response.function_call_arguments.delta", "response.function_call_arguments.done",
                "response.output_item.done", "response.output_item.added",
                "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done", "response.completed"}));
  expect_sequence_numbers(run.events);
  EXPECT_EQ(run.events[8].data.at("output_index").as_int64(), 1);
  EXPECT_EQ(run.events[12].data.at("output_index").as_int64(), 2);
  const bj::array& output = run.response.at("output").as_array();
  ASSERT_EQ(output.size(), 3u);
  EXPECT_EQ(output[1].at("arguments").as_string(), "{}");
  EXPECT_EQ(output[2].at("arguments").as_string(), "{\"x\":1}");
  EXPECT_EQ(output[2].at("id").as_string(), "fc_abc_1");
}

TEST(ResponsesStreamTest, SeveralCallsInOneChunk) {
  const Streamed run = stream({
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}},{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
  });
  const bj::array& output = run.response.at("output").as_array();
  ASSERT_EQ(output.size(), 2u);
  EXPECT_EQ(output[0].at("call_id").as_string(), "a");
  EXPECT_EQ(output[1].at("call_id").as_string(), "b");
}

TEST(ResponsesStreamTest, LengthEndsWithResponseIncomplete) {
  const std::string text = chunk_text("Once upon");
  const Streamed run = stream({text, R"({"choices":[{"index":0,"delta":{},"finish_reason":"length"}]})"});
  EXPECT_EQ(run.events.back().name, "response.incomplete");
  EXPECT_EQ(run.response.at("status").as_string(), "incomplete");
  EXPECT_TRUE(json_eq(run.response.at("incomplete_details"), R"({"reason":"max_output_tokens"})"));
  EXPECT_EQ(run.response.at("output").at(0).at("status").as_string(), "incomplete");
  const StreamEvent& item_done = run.events[run.events.size() - 2];
  EXPECT_EQ(item_done.name, "response.output_item.done");
  EXPECT_EQ(item_done.data.at("item").at("status").as_string(), "incomplete");
}

TEST(ResponsesStreamTest, AnErrorChunkEndsWithResponseFailed) {
  const std::string text = chunk_text("Hel");
  const Streamed run = stream(
      {text, R"({"error":{"message":"upstream went away","type":"api_error","code":"OPENAI_API_ERROR"}})"});
  EXPECT_EQ(names(run.events),
            (std::vector<std::string>{"response.created", "response.in_progress",
                                      "response.output_item.added", "response.content_part.added",
                                      "response.output_text.delta", "response.failed"}));
  expect_sequence_numbers(run.events);
  EXPECT_EQ(run.response.at("status").as_string(), "failed");
  EXPECT_TRUE(
      json_eq(run.response.at("error"), R"({"code":"OPENAI_API_ERROR","message":"upstream went away"})"));
}

TEST(ResponsesStreamTest, FailNamesRateLimitsAndServerErrors) {
  for (const auto& [kind, code] : {std::pair{ErrorKind::kOpenAiRateLimit, "rate_limit_exceeded"},
                                   std::pair{ErrorKind::kOpenAiTimeout, "server_error"}}) {
    ResponsesStream s(obj(kRequest), ResponseMeta{"resp_1", 1});
    std::vector<StreamEvent> events;
    s.fail(Error{kind, "boom"}, events);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[2].name, "response.failed");
    EXPECT_EQ(events[2].data.at("response").at("error").at("code").as_string(), code);
    EXPECT_EQ(events[2].data.at("response").at("error").at("message").as_string(), "boom");
    EXPECT_TRUE(s.finished());
  }
}

TEST(ResponsesStreamTest, NothingAfterTheEnd) {
  ResponsesStream s(obj(kRequest), ResponseMeta{"resp_1", 1});
  std::vector<StreamEvent> events;
  s.start(events);
  s.start(events);
  EXPECT_EQ(events.size(), 2u);
  s.feed(obj(kStop), events);
  s.finish(events);
  const std::size_t n = events.size();
  s.finish(events);
  s.feed(obj(chunk_text("late")), events);
  s.fail(Error{ErrorKind::kInternal, "late"}, events);
  EXPECT_EQ(events.size(), n);
  EXPECT_EQ(s.next_sequence_number(), static_cast<std::int64_t>(n));
}

TEST(ResponsesStreamTest, AnEmptyAnswerCompletesWithNoOutput) {
  const Streamed run = stream({kRole, kStop});
  EXPECT_EQ(names(run.events),
            (std::vector<std::string>{"response.created", "response.in_progress", "response.completed"}));
  EXPECT_TRUE(run.response.at("output").as_array().empty());
}

TEST(ResponsesStreamTest, TheStreamedResponseEqualsTheTranslatedAnswer) {
  const std::string text = chunk_text("Let me look.");
  const Streamed run = stream({
      kRole,
      text,
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_9","type":"function","function":{"name":"lookup","arguments":"{\"q\":"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"ü\"}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
      kUsage,
  });
  Result<bj::object> whole = chat_response_to_responses(
      obj(R"({"model":"gpt-4o-mini","created":1,"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant",
          "content":"Let me look.","tool_calls":[{"id":"call_9","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"ü\"}"}}]}}],
          "usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})"),
      obj(kRequest), ResponseMeta{"resp_abc", 1700000000});
  ASSERT_TRUE(whole);
  EXPECT_TRUE(json_eq(run.response, bj::serialize(*whole)));
}

TEST(ResponsesStreamTest, ARefusalStreamsAsRefusalEvents) {
  const Streamed run = stream({
      R"({"choices":[{"index":0,"delta":{"refusal":"I can't"}}]})",
      R"({"choices":[{"index":0,"delta":{"refusal":" help."}}]})",
      kStop,
  });
  EXPECT_EQ(names(run.events),
            (std::vector<std::string>{"response.created", "response.in_progress",
                                      "response.output_item.added", "response.content_part.added",
                                      "response.refusal.delta", "response.refusal.delta",
                                      "response.refusal.done", "response.content_part.done",
                                      "response.output_item.done", "response.completed"}));
  EXPECT_TRUE(json_eq(run.events[3].data.at("part"), R"({"type":"refusal","refusal":""})"));
  EXPECT_EQ(run.events[6].data.at("refusal").as_string(), "I can't help.");
  EXPECT_TRUE(json_eq(run.response.at("output").at(0).at("content"),
                      R"([{"type":"refusal","refusal":"I can't help."}])"));
}

TEST(ResponsesStreamTest, TextAfterAToolCallOpensASecondMessage) {
  const std::string before = chunk_text("a");
  const std::string after = chunk_text("b");
  const Streamed run = stream(
      {before,
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{}"}}]}}]})",
       after, kStop});
  const bj::array& output = run.response.at("output").as_array();
  ASSERT_EQ(output.size(), 3u);
  EXPECT_EQ(output[0].at("id").as_string(), "msg_abc");
  EXPECT_EQ(output[2].at("id").as_string(), "msg_abc_1");
  EXPECT_EQ(output[2].at("content").at(0).at("text").as_string(), "b");
}

TEST(ResponsesStreamTest, ALatePieceOfAClosedCallReachesOnlyTheFinalResponse) {
  const Streamed run = stream({
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"x\":"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
  });
  std::size_t deltas = 0;
  for (const StreamEvent& e : run.events)
    deltas += e.name == "response.function_call_arguments.delta" ? 1 : 0;
  EXPECT_EQ(deltas, 2u);
  EXPECT_EQ(run.response.at("output").at(0).at("arguments").as_string(), "{\"x\":1}");
}

TEST(ResponsesStreamTest, OtherChoicesAndOddChunksAreIgnored) {
  const Streamed run = stream({
      R"({"choices":[{"index":1,"delta":{"content":"other"}}]})",
      R"({"choices":"not an array"})",
      R"({"object":"chat.completion.chunk"})",
      R"({"choices":[{"index":0,"delta":{"content":"mine"}}]})",
      R"({"choices":[{"index":0,"delta":null,"finish_reason":"stop"}]})",
  });
  ASSERT_EQ(run.response.at("output").as_array().size(), 1u);
  EXPECT_EQ(run.response.at("output").at(0).at("content").at(0).at("text").as_string(), "mine");
}

TEST(ResponsesStreamTest, UnicodeAccumulates) {
  const std::string a = chunk_text("日本");
  const std::string b = chunk_text("語 🎉");
  const Streamed run = stream({a, b, kStop});
  EXPECT_EQ(run.response.at("output").at(0).at("content").at(0).at("text").as_string(), "日本語 🎉");
}

TEST(ResponsesStreamTest, TheProvidersModelNameReachesTheFinalResponse) {
  const Streamed run = stream(
      {R"({"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"x"}}]})", kStop});
  EXPECT_EQ(run.events[0].data.at("response").at("model").as_string(), "gpt-4o-mini");
  EXPECT_EQ(run.response.at("model").as_string(), "gpt-4o-mini-2024-07-18");
}

TEST(ResponsesStreamTest, LogprobsRideOnTheDeltas) {
  const Streamed run = stream({
      R"({"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.5,"bytes":[72,105],"top_logprobs":[]}]}}]})",
      kStop,
  });
  EXPECT_EQ(run.events[4].data.at("logprobs").as_array().size(), 1u);
  EXPECT_EQ(run.response.at("output").at(0).at("content").at(0).at("logprobs").as_array().size(), 1u);
}

TEST(ResponsesStreamTest, EventsSerializeAsSse) {
  ResponsesStream s(obj(kRequest), ResponseMeta{"resp_1", 1});
  std::vector<StreamEvent> events;
  s.feed(obj(chunk_text("x")), events);
  const std::string sse = to_sse(events[4]);
  EXPECT_EQ(
      sse,
      "event: response.output_text.delta\ndata: "
      R"({"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"x","logprobs":[],"sequence_number":4})"
      "\n\n");
  std::string all;
  for (const StreamEvent& e : events) append_sse(all, e);
  EXPECT_TRUE(all.starts_with("event: response.created\ndata: {"));
}

}  // namespace
}  // namespace parley::translate
