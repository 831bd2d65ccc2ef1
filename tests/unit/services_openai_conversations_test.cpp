// Items of OpenAI's Conversations API as parley messages and back (services/openai_conversations.hpp):
// what role and content hold, what is kept as the original item, and the metadata rules.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "backend_fixture.hpp"
#include "run_awaitable.hpp"
#include "services/openai_conversations.hpp"
#include "store/user_store.hpp"

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

// ---- ConversationItems, the Responses API's view, on both backends ---------------------------------

auth::Principal principal(std::string user_id) {
  auth::Principal p;
  p.user_id = std::move(user_id);
  p.username = p.user_id;
  return p;
}

class ConversationItemsTest : public test::BackendTest {
 protected:
  void SetUp() override {
    open_scratch(true);
    if (IsSkipped() || HasFatalFailure()) return;
    store::UserStore users(db());
    for (const char* name : {"alice", "bob"}) {
      store::UserRecord u;
      u.id = std::string("usr_") + name;
      u.username = name;
      u.email = std::string(name) + "@example.com";
      u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
      u.role = "user";
      u.created_at = u.updated_at = 1'700'000'000'000;
      auto created = users.create(u);
      ASSERT_TRUE(created) << created.error().message;
    }
    conversations_ = std::make_unique<ConversationService>(db(), clock_);
    items_ = std::make_unique<OpenAiConversations>(*conversations_, registry_, pool_, db(), clock_, 200);
  }

  std::string new_conversation() {
    auto created = test::run(items_->create(alice_, {}, std::nullopt));
    EXPECT_TRUE(created) << created.error().message;
    return created ? created->conversation.id : std::string();
  }

  ManualClock clock_{1'700'000'000'000};
  GenerationRegistry registry_{std::chrono::seconds(1)};
  http::BlockingPool pool_{1};
  std::unique_ptr<ConversationService> conversations_;
  std::unique_ptr<OpenAiConversations> items_;
  auth::Principal alice_ = principal("usr_alice");
  auth::Principal bob_ = principal("usr_bob");
};

TEST_P(ConversationItemsTest, AppendStoresTheTurnAndHistoryReturnsItOldestFirst) {
  const std::string id = new_conversation();
  ConversationItems& items = *items_;
  const bj::array input = bj::parse(R"([{"role":"user","content":"Weather in Paris?"}])").as_array();
  const bj::array output =
      bj::parse(
          R"([{"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{}","status":"completed"}])")
          .as_array();
  ASSERT_TRUE(test::run(items.append(alice_, id, input, output, "mock-1")));
  const bj::array input2 =
      bj::parse(R"([{"type":"function_call_output","call_id":"call_1","output":"18C"}])").as_array();
  const bj::array output2 =
      bj::parse(
          R"([{"type":"message","id":"msg_9","status":"completed","role":"assistant","content":[{"type":"output_text","text":"18C in Paris","annotations":[]}]}])")
          .as_array();
  ASSERT_TRUE(test::run(items.append(alice_, id, input2, output2, "mock-1")));

  auto history = test::run(items.history(alice_, id));
  ASSERT_TRUE(history) << history.error().message;
  ASSERT_EQ(history->size(), 4U);
  EXPECT_EQ((*history)[0].at("role"), "user");
  EXPECT_EQ((*history)[1].at("type"), "function_call");
  EXPECT_EQ((*history)[1].at("call_id"), "call_1");
  EXPECT_EQ((*history)[2].at("type"), "function_call_output");
  EXPECT_EQ((*history)[2].at("output"), "18C");
  EXPECT_EQ((*history)[3].at("content").at(0).at("text"), "18C in Paris");

  // As parley messages: the answers name the model and the question they answer.
  store::MessageQuery q;
  q.conversation_id = id;
  auto messages = store::ConversationStore(db()).list_messages(q);
  ASSERT_TRUE(messages);
  ASSERT_EQ(messages->items.size(), 4U);
  EXPECT_EQ(messages->items[0].sender_id, "usr_alice");
  EXPECT_EQ(messages->items[1].model, "mock-1");
  EXPECT_EQ(messages->items[1].parent_id, messages->items[0].id);
  EXPECT_EQ(messages->items[3].model, "mock-1");
  EXPECT_EQ((*history)[0].at("id"), bj::value(messages->items[0].id));
  auto conversation = store::ConversationStore(db()).get_conversation(id);
  ASSERT_TRUE(conversation && *conversation);
  EXPECT_EQ((*conversation)->message_count, 4);
}

TEST_P(ConversationItemsTest, HistoryFollowsTheActiveBranchOnly) {
  const std::string id = new_conversation();
  ASSERT_TRUE(
      test::run(items_->append(alice_, id, bj::parse(R"([{"role":"user","content":"Q"}])").as_array(),
                               bj::parse(R"([{"role":"assistant","content":"old"}])").as_array(), "m")));
  // Regenerated through parley: a sibling answer supersedes the stored one.
  store::MessageQuery q;
  q.conversation_id = id;
  auto before = store::ConversationStore(db()).list_messages(q);
  ASSERT_TRUE(before);
  store::MessageRecord again;
  again.id = "msg_new_answer";
  again.conversation_id = id;
  again.parent_id = before->items[0].id;
  again.role = "assistant";
  again.status = "generating";
  again.created_at = again.updated_at = clock_.now_ms();
  ASSERT_TRUE(store::ConversationStore(db()).add_exchange(std::nullopt, again));
  store::AnswerUpdate done;
  done.content = "new";
  done.status = "complete";
  done.now_ms = clock_.now_ms();
  ASSERT_TRUE(store::ConversationStore(db()).update_answer(again.id, done));

  auto history = test::run(items_->history(alice_, id));
  ASSERT_TRUE(history) << history.error().message;
  ASSERT_EQ(history->size(), 2U);
  EXPECT_EQ((*history)[1].at("id"), "msg_new_answer");
  EXPECT_EQ((*history)[1].at("content").at(0).at("text"), "new");
}

TEST_P(ConversationItemsTest, OthersEndedConversationsAndUnknownItemsAreRefused) {
  const std::string id = new_conversation();
  const bj::array input = bj::parse(R"([{"role":"user","content":"Q"}])").as_array();
  auto theirs = test::run(items_->history(bob_, id));
  ASSERT_FALSE(theirs);
  EXPECT_EQ(theirs.error().kind, ErrorKind::kNotFound);
  auto appended = test::run(items_->append(bob_, id, input, {}, "m"));
  ASSERT_FALSE(appended);
  EXPECT_EQ(appended.error().kind, ErrorKind::kNotFound);
  auto missing = test::run(items_->history(alice_, "conv_missing"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::kNotFound);

  auto unknown = test::run(
      items_->append(alice_, id, input, bj::parse(R"([{"type":"reasoning","summary":[]}])").as_array(), "m"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::kValidation);
  EXPECT_EQ(unknown.error().param, "output[0].type");
  auto history = test::run(items_->history(alice_, id));
  ASSERT_TRUE(history);
  EXPECT_TRUE(history->empty()) << "nothing of a refused turn is stored";

  ASSERT_TRUE(conversations_->set_status(alice_, "usr_alice", id, "ended"));
  auto ended = test::run(items_->append(alice_, id, input, {}, "m"));
  ASSERT_FALSE(ended);
  EXPECT_EQ(ended.error().kind, ErrorKind::kConflict);
}

TEST_P(ConversationItemsTest, ItemReferencesAreNotStoredAgain) {
  const std::string id = new_conversation();
  const bj::array input =
      bj::parse(R"([{"type":"item_reference","id":"msg_x"},{"role":"user","content":"Q"}])").as_array();
  ASSERT_TRUE(test::run(items_->append(alice_, id, input, {}, "m")));
  auto history = test::run(items_->history(alice_, id));
  ASSERT_TRUE(history);
  EXPECT_EQ(history->size(), 1U);
}

INSTANTIATE_TEST_SUITE_P(Backends, ConversationItemsTest,
                         ::testing::Values(store::Dialect::kSqlite, store::Dialect::kPostgres),
                         test::backend_name);

}  // namespace
}  // namespace parley::services
