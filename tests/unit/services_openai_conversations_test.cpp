// Items of OpenAI's Conversations API as parley messages and back (services/openai_conversations.hpp):
// what role and content hold, what is kept as the original item, and the metadata rules.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "services/openai_conversations.hpp"

namespace parley::services {
namespace {

namespace bj = boost::json;

store::MessageRecord stored(const store::MessageRecord& m, std::string id = "msg1") {
  store::MessageRecord out = m;
  out.id = std::move(id);
  out.status = "complete";
  return out;
}

TEST(OpenAiConversationItems, AnEasyUserMessageIsAPlainMessage) {
  auto m = item_to_message(bj::parse(R"({"role":"user","content":"Hello"})"), "items[0]");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->role, "user");
  EXPECT_EQ(m->content, "Hello");
  EXPECT_FALSE(m->item) << "role and content rebuild it";
  EXPECT_EQ(bj::value(message_to_item(stored(*m))),
            bj::parse(R"({"id":"msg1","type":"message","status":"completed","role":"user",
                          "content":[{"type":"input_text","text":"Hello"}]})"));
}

TEST(OpenAiConversationItems, AnAssistantMessageRoundTripsWithAnnotations) {
  auto m =
      item_to_message(bj::parse(R"({"type":"message","id":"msg_x","status":"completed","role":"assistant",
                    "content":[{"type":"output_text","text":"Hi"}]})"),
                      "items[0]");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->role, "assistant");
  EXPECT_EQ(m->content, "Hi");
  EXPECT_FALSE(m->item);
  EXPECT_EQ(bj::value(message_to_item(stored(*m, "a1"))),
            bj::parse(R"({"id":"a1","type":"message","status":"completed","role":"assistant",
                          "content":[{"type":"output_text","text":"Hi","annotations":[]}]})"));
}

TEST(OpenAiConversationItems, SeveralPartsAreJoinedAndKeptExactly) {
  const bj::value sent = bj::parse(
      R"({"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]})");
  auto m = item_to_message(sent, "items[0]");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->content, "a\nb");
  ASSERT_TRUE(m->item);
  bj::object back = message_to_item(stored(*m));
  EXPECT_EQ(back["content"], sent.at("content"));
}

TEST(OpenAiConversationItems, ADeveloperMessageIsASystemMessageThatKeepsItsRole) {
  auto m = item_to_message(bj::parse(R"({"role":"developer","content":"Be terse"})"), "items[0]");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->role, "system");
  EXPECT_EQ(message_to_item(stored(*m))["role"], "developer");
}

TEST(OpenAiConversationItems, FunctionCallsAndOutputsRoundTripWithAReadableRendering) {
  const bj::value call = bj::parse(
      R"({"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"})");
  auto m = item_to_message(call, "items[0]");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->role, "assistant");
  EXPECT_EQ(m->content, R"([function_call] get_weather({"city":"Paris"}))");
  bj::object back = message_to_item(stored(*m, "m2"));
  EXPECT_EQ(back["id"], "m2");
  EXPECT_EQ(back["type"], "function_call");
  EXPECT_EQ(back["call_id"], "call_1");
  EXPECT_EQ(back["name"], "get_weather");
  EXPECT_EQ(back["arguments"], call.at("arguments"));
  EXPECT_EQ(back["status"], "completed");

  auto out = item_to_message(
      bj::parse(R"({"type":"function_call_output","call_id":"call_1","output":"18C"})"), "items[1]");
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(out->role, "user");
  EXPECT_EQ(out->content, "[function_call_output] 18C");
  bj::object out_back = message_to_item(stored(*out));
  EXPECT_EQ(out_back["output"], "18C");
  EXPECT_EQ(out_back["call_id"], "call_1");
}

TEST(OpenAiConversationItems, WhatParleyCannotHoldIsRefusedWithItsParam) {
  auto unknown = item_to_message(bj::parse(R"({"type":"web_search_call","id":"ws"})"), "items[2]");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::kValidation);
  EXPECT_EQ(unknown.error().param, "items[2].type");

  auto role = item_to_message(bj::parse(R"({"type":"message","role":"tool","content":"x"})"), "items[0]");
  ASSERT_FALSE(role);
  EXPECT_EQ(role.error().param, "items[0].role");

  auto image = item_to_message(
      bj::parse(R"({"role":"user","content":[{"type":"input_image","image_url":"https://x/y.png"}]})"),
      "items[0]");
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().param, "items[0].content[0].type");

  auto call = item_to_message(bj::parse(R"({"type":"function_call","call_id":"c","name":"f"})"), "items[1]");
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().param, "items[1].arguments");

  EXPECT_FALSE(item_to_message(bj::parse(R"("text")"), "items[0]"));
  EXPECT_FALSE(item_to_message(bj::parse(R"({"content":"no role"})"), "items[0]"));
}

TEST(OpenAiConversationItems, AnAnswerBeingGeneratedIsInProgressAndAFailedOneIncomplete) {
  store::MessageRecord m;
  m.id = "m";
  m.role = "assistant";
  m.content = "part";
  m.status = "generating";
  EXPECT_EQ(message_to_item(m)["status"], "in_progress");
  m.status = "failed";
  EXPECT_EQ(message_to_item(m)["status"], "incomplete");
}

TEST(OpenAiConversationMetadata, SixteenStringPairsAtMost) {
  EXPECT_EQ(*read_openai_metadata(bj::parse(R"({"a":"1"})")), R"({"a":"1"})");
  EXPECT_EQ(*read_openai_metadata(nullptr), "{}");
  bj::object many;
  for (int i = 0; i < 17; ++i) many[std::to_string(i)] = "v";
  EXPECT_EQ(read_openai_metadata(many).error().param, "metadata");
  EXPECT_EQ(read_openai_metadata(bj::parse(R"({"a":1})")).error().param, "metadata.a");
  EXPECT_FALSE(read_openai_metadata(bj::object{{std::string(65, 'k'), "v"}}));
  EXPECT_FALSE(read_openai_metadata(bj::object{{"k", std::string(513, 'v')}}));
  EXPECT_TRUE(read_openai_metadata(bj::object{{"k", std::string(512, 'v')}}));
  EXPECT_FALSE(read_openai_metadata(bj::parse("[]")));
}

TEST(OpenAiConversationObject, CreatedAtInSecondsAndTheMetadataObject) {
  store::ConversationRecord c;
  c.id = "c1";
  c.created_at = 1'700'000'123'456;
  c.metadata = R"({"topic":"x"})";
  EXPECT_EQ(
      bj::value(conversation_object(c)),
      bj::parse(R"({"id":"c1","object":"conversation","created_at":1700000123,"metadata":{"topic":"x"}})"));
}

}  // namespace
}  // namespace parley::services
