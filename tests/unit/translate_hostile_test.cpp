// Properties of every translator: whatever a client or provider sends in place of any member (or
// any element) of a valid body, a translator answers with a result or an Error and never throws
// or reads out of bounds (the debug build runs this under AddressSanitizer and UBSan); and a
// stream's outcome does not depend on how the provider cut the text into chunks.
#include <gtest/gtest.h>

#include <functional>

#include "translate/anthropic.hpp"
#include "translate/responses.hpp"
#include "translate_json.hpp"

namespace parley::translate {
namespace {

namespace bj = boost::json;
using testing::obj;

const bj::array& odd_values() {
  static const bj::array values = testing::arr(R"([null, 0, -1, 18446744073709551615, 1.5, true, "", "x",
      [], {}, [null], [1, "a"], {"type": null}, {"type": "text"}, {"type": 7, "text": []}, "\u0000\uffff"])");
  return values;
}

// Replaces each node below the root of `root` (members and elements, at every depth) with each odd
// value in turn and calls `check` with the mutated document.
void mutate_each(bj::value& node, bj::object& root, const std::function<void(const bj::object&)>& check,
                 std::size_t& runs) {
  if (bj::object* o = node.if_object()) {
    for (auto& member : *o) mutate_each(member.value(), root, check, runs);
    // and the members that are not there: each odd value under a name the translators read
    for (const char* key :
         {"type", "content", "role", "tool_calls", "choices", "delta", "function", "index"}) {
      if (o->contains(key)) continue;
      for (const bj::value& odd : odd_values()) {
        (*o)[key] = odd;
        check(root);
        ++runs;
      }
      o->erase(key);
    }
  } else if (bj::array* a = node.if_array()) {
    for (bj::value& element : *a) mutate_each(element, root, check, runs);
  }
  if (&node == static_cast<const void*>(&root)) return;
  const bj::value saved = node;
  for (const bj::value& odd : odd_values()) {
    node = odd;
    check(root);
    ++runs;
  }
  node = saved;
}

std::size_t mutate(std::string_view json, const std::function<void(const bj::object&)>& check) {
  bj::value doc = bj::parse(json);
  std::size_t runs = 0;
  mutate_each(doc, doc.as_object(), check, runs);
  return runs;
}

constexpr std::string_view kResponsesRequest = R"({"model":"m","instructions":"sys","stream":true,
    "input":[{"role":"user","content":[{"type":"input_text","text":"q"},{"type":"input_image","image_url":"https://x"}]},
      {"type":"message","role":"assistant","content":[{"type":"output_text","text":"a"}]},
      {"type":"function_call","call_id":"c","name":"f","arguments":"{}"},
      {"type":"function_call_output","call_id":"c","output":"o"}],
    "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"},
    "text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"}}},"reasoning":{"effort":"low"},
    "include":["message.output_text.logprobs"],"max_output_tokens":10,"temperature":0.5,"metadata":{"k":"v"}})";

constexpr std::string_view kChatAnswer = R"({"id":"x","model":"m","created":1,"choices":[{"index":0,
    "message":{"role":"assistant","content":"t","refusal":"r","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
    "logprobs":{"content":[{"token":"t","logprob":-1}]},"finish_reason":"length"}],
    "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":{"reasoning_tokens":1}}})";

constexpr std::string_view kChatChunk = R"({"id":"x","model":"m","choices":[{"index":0,
    "delta":{"role":"assistant","content":"t","refusal":"r","tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
    "logprobs":{"content":[{"token":"t"}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}})";

constexpr std::string_view kAnthropicRequest = R"({"model":"m","max_tokens":5,"stream":true,
    "system":[{"type":"text","text":"s"}],
    "messages":[{"role":"user","content":[{"type":"text","text":"q"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}}]},
      {"role":"assistant","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t","name":"f","input":{"x":1}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"r"}]}]}],
    "tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},
    "stop_sequences":["E"],"metadata":{"user_id":"u"},"temperature":0.1,"thinking":{"type":"disabled"}})";

constexpr std::string_view kChatRequest =
    R"({"model":"m","max_tokens":5,"stream":true,"stop":["E"],"user":"u",
    "messages":[{"role":"system","content":"s"},
      {"role":"user","content":[{"type":"text","text":"q"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]},
      {"role":"assistant","content":"a","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c","content":"r"}],
    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
    "tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false})";

constexpr std::string_view kAnthropicMessage = R"({"id":"msg","type":"message","role":"assistant","model":"m",
    "content":[{"type":"text","text":"t"},{"type":"tool_use","id":"t","name":"f","input":{"a":1}}],
    "stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":3}})";

TEST(TranslateHostile, ResponsesRequests) {
  const bj::array prior = testing::arr(R"([{"role":"user","content":"p"}])");
  ResponsesRequestOptions reasoning;
  reasoning.reasoning_effort = true;
  const std::size_t runs = mutate(kResponsesRequest, [&](const bj::object& request) {
    EXPECT_NO_THROW({
      (void)responses_request_to_chat(request);
      (void)responses_request_to_chat(request, reasoning, &prior);
      (void)responses_input_items(request);
    }) << bj::serialize(request);
  });
  EXPECT_GT(runs, 500u);
}

TEST(TranslateHostile, ChatAnswersToResponsesAndAnthropic) {
  const bj::object request = obj(kResponsesRequest);
  mutate(kChatAnswer, [&](const bj::object& chat) {
    EXPECT_NO_THROW({
      (void)chat_response_to_responses(chat, request, ResponseMeta{"resp_1", 1});
      (void)chat_response_to_anthropic(chat, AnthropicMeta{"msg_1", "m"});
    }) << bj::serialize(chat);
  });
  // and the echoed request
  mutate(kResponsesRequest, [&](const bj::object& r) {
    EXPECT_NO_THROW((void)chat_response_to_responses(obj(kChatAnswer), r, ResponseMeta{"resp_1", 1}));
  });
}

TEST(TranslateHostile, ChatChunksToBothStreams) {
  const bj::object request = obj(kResponsesRequest);
  mutate(kChatChunk, [&](const bj::object& chunk) {
    EXPECT_NO_THROW({
      ResponsesStream responses(request, ResponseMeta{"resp_1", 1});
      AnthropicStream anthropic(AnthropicMeta{"msg_1", "m"});
      std::vector<StreamEvent> events;
      responses.feed(obj(kChatChunk), events);
      responses.feed(chunk, events);
      responses.feed(chunk, events);
      responses.finish(events);
      anthropic.feed(obj(kChatChunk), events);
      anthropic.feed(chunk, events);
      anthropic.feed(chunk, events);
      anthropic.finish(events);
      for (const StreamEvent& e : events) (void)to_sse(e);
    }) << bj::serialize(chunk);
  });
}

TEST(TranslateHostile, AnthropicRequestsAndMessages) {
  mutate(kAnthropicRequest, [](const bj::object& request) {
    EXPECT_NO_THROW((void)anthropic_request_to_chat(request)) << bj::serialize(request);
  });
  mutate(kChatRequest, [](const bj::object& request) {
    EXPECT_NO_THROW((void)chat_request_to_anthropic(request)) << bj::serialize(request);
  });
  mutate(kAnthropicMessage, [](const bj::object& message) {
    EXPECT_NO_THROW((void)anthropic_response_to_chat(message, ChatMeta{"c", 1, "m", true}))
        << bj::serialize(message);
  });
}

TEST(TranslateHostile, AnthropicEventsToChatChunks) {
  const std::string_view events[] = {
      R"({"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1,"output_tokens":1}}})",
      R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}})",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}})",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"t"}})",
      R"({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}})",
      R"({"type":"error","error":{"type":"api_error","message":"m"}})",
      R"({"type":"message_stop"})"};
  for (std::string_view event : events) {
    mutate(event, [](const bj::object& e) {
      EXPECT_NO_THROW({
        AnthropicToChatStream s(ChatMeta{"c", 1, "m", true});
        std::vector<bj::object> out;
        (void)s.feed(e, out);
        (void)s.feed(e, out);
      }) << bj::serialize(e);
    });
  }
}

// ---------------------------------------------------------------------------------------------

std::string chunk(std::string_view text) {
  bj::object c{{"choices", bj::array{bj::object{{"index", 0}, {"delta", bj::object{{"content", text}}}}}}};
  return bj::serialize(c);
}

TEST(TranslateSplit, TheFinalAnswerDoesNotDependOnTheChunking) {
  const std::string text = "Grüße aus Köln — 日本語のテキスト, emoji 🎉🎉 and \"quotes\"\n\tend.";
  const bj::object request = obj(R"({"model":"m","input":"x","stream":true})");
  bj::object first_response;
  bj::object first_message;
  for (std::size_t pieces = 1; pieces <= 12; ++pieces) {
    ResponsesStream responses(request, ResponseMeta{"resp_1", 1});
    AnthropicStream anthropic(AnthropicMeta{"msg_1", "m"});
    std::vector<StreamEvent> r_events;
    std::vector<StreamEvent> a_events;
    // cut at character boundaries (a chunk's delta is a JSON string: whole characters)
    std::vector<std::size_t> cuts;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) cuts.push_back(i);
    }
    const std::size_t step = (cuts.size() + pieces - 1) / pieces;
    std::size_t deltas = 0;
    for (std::size_t k = 0; k < cuts.size(); k += step) {
      const std::size_t begin = cuts[k];
      const std::size_t end = k + step < cuts.size() ? cuts[k + step] : text.size();
      const bj::object c = obj(chunk(std::string_view(text).substr(begin, end - begin)));
      responses.feed(c, r_events);
      anthropic.feed(c, a_events);
      ++deltas;
    }
    const bj::object stop = obj(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})");
    responses.feed(stop, r_events);
    anthropic.feed(stop, a_events);
    responses.finish(r_events);
    anthropic.finish(a_events);
    EXPECT_EQ(r_events.size(), 8 + deltas) << pieces;
    EXPECT_EQ(a_events.size(), 6 + deltas) << pieces;
    for (std::size_t i = 0; i < r_events.size(); ++i) {
      EXPECT_EQ(r_events[i].data.at("sequence_number").as_int64(), static_cast<std::int64_t>(i));
    }
    if (pieces == 1) {
      first_response = responses.response();
      first_message = anthropic.message();
      EXPECT_EQ(first_response.at("output").at(0).at("content").at(0).at("text").as_string(), text);
      EXPECT_EQ(first_message.at("content").at(0).at("text").as_string(), text);
    } else {
      EXPECT_EQ(responses.response(), first_response) << pieces;
      EXPECT_EQ(anthropic.message(), first_message) << pieces;
    }
  }
}

}  // namespace
}  // namespace parley::translate
