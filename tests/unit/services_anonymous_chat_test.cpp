// Anonymous chat kept in memory (services/anonymous_chat.hpp): its bounds, and answers that are
// Generations whose stored form replays the same events.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/clock.hpp"
#include "provider/demo_provider.hpp"
#include "services/anonymous_chat.hpp"

namespace parley::services {
namespace {

namespace asio = boost::asio;

class NoOwnKeys final : public OwnKeys {
 public:
  asio::awaitable<Result<std::optional<crypto::Secret>>> find(std::string, std::string) override {
    co_return std::optional<crypto::Secret>{};
  }
};

class AnonymousChatTest : public ::testing::Test {
 protected:
  AnonymousChatTest() {
    provider::ProviderEntry demo;
    demo.provider = std::make_shared<provider::DemoProvider>();
    demo.credentials = provider::Credentials::kSystem;
    demo.models = {"demo", "demo-*"};
    registry_.add(std::move(demo));
    chat_ = std::make_unique<ChatService>(registry_, own_keys_, "demo");
  }

  AnonymousChat make(AnonymousOptions options) { return AnonymousChat(*chat_, clock_, std::move(options)); }

  // Asks and runs the answer to its end on a private loop.
  static Result<StartedAnswer> ask(AnonymousChat& chat, const std::string& conversation, std::string text) {
    asio::io_context io;
    std::optional<Result<StartedAnswer>> out;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          out = co_await chat.ask(conversation, std::move(text), std::nullopt, std::nullopt, "req-1",
                                  io.get_executor());
        },
        asio::detached);
    io.run();
    return std::move(*out);
  }

  provider::ProviderRegistry registry_;
  NoOwnKeys own_keys_;
  std::unique_ptr<ChatService> chat_;
  SystemClock clock_;
};

TEST_F(AnonymousChatTest, AnAnswerIsKeptWithTheEventsItWasStreamedIn) {
  AnonymousChat chat = make({});
  NewConversation input;
  input.title = "hello";
  auto c = chat.start(input);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user_id, kAnonymousUserId);
  EXPECT_EQ(c->title, "hello");
  auto started = ask(chat, c->id, "tell me something");
  ASSERT_TRUE(started) << started.error().message;
  ASSERT_TRUE(started->generation->finished());
  auto stored = chat.message(c->id, started->answer.id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->status, "complete");
  EXPECT_NE(stored->content.find("tell me something"), std::string::npos);
  // The kept answer replays as the pieces it was streamed in.
  auto pieces = replay_pieces(stored->content, stored->event_lengths);
  EXPECT_EQ(pieces.size(), started->generation->pieces());
  std::string joined;
  for (const auto& p : pieces) joined += p;
  EXPECT_EQ(joined, stored->content);
  auto question = chat.message(c->id, started->user_message->id);
  ASSERT_TRUE(question);
  EXPECT_EQ(question->content, "tell me something");
  EXPECT_EQ(chat.get(c->id)->message_count, 2);
}

TEST_F(AnonymousChatTest, AConversationHoldsAtMostMaxMessages) {
  AnonymousOptions options;
  options.max_messages = 4;
  AnonymousChat chat = make(options);
  auto c = chat.start({});
  ASSERT_TRUE(c);
  ASSERT_TRUE(ask(chat, c->id, "one"));
  ASSERT_TRUE(ask(chat, c->id, "two"));
  auto third = ask(chat, c->id, "three");
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().kind, ErrorKind::kConflict);
}

TEST_F(AnonymousChatTest, AnEndedConversationTakesNoMessageUntilReopened) {
  AnonymousChat chat = make({});
  auto c = chat.start({});
  ASSERT_TRUE(chat.set_status(c->id, "ended"));
  EXPECT_TRUE(chat.get(c->id)->ended_at.has_value());
  auto refused = ask(chat, c->id, "hello");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kConflict);
  ASSERT_TRUE(chat.set_status(c->id, "active"));
  EXPECT_TRUE(ask(chat, c->id, "hello"));
}

TEST_F(AnonymousChatTest, TooManyConversationsAreRefusedUntilIdleOnesAreForgotten) {
  AnonymousOptions options;
  options.max_conversations = 2;
  options.idle_ttl = std::chrono::seconds(0);  // every conversation is idle at once
  AnonymousChat forgetful = make(options);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(forgetful.start({}));
  EXPECT_LE(forgetful.size(), 2U);

  options.idle_ttl = std::chrono::seconds(3600);
  AnonymousChat chat = make(options);
  ASSERT_TRUE(chat.start({}));
  ASSERT_TRUE(chat.start({}));
  auto third = chat.start({});
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().kind, ErrorKind::kUnavailable);
}

TEST_F(AnonymousChatTest, UnknownConversationsAndMessagesAreNotFound) {
  AnonymousChat chat = make({});
  EXPECT_EQ(chat.get("nope").error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(chat.set_status("nope", "ended").error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(chat.message("nope", "x").error().kind, ErrorKind::kNotFound);
  auto missing = ask(chat, "nope", "hello");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::kNotFound);
}

}  // namespace
}  // namespace parley::services
