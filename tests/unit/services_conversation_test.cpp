// The model context of a conversation (one test per rule) and the event log of an answer being
// generated (services/conversation_context.hpp, services/generation.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <thread>

#include "services/conversation_context.hpp"
#include "services/generation.hpp"

namespace parley::services {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

store::MessageRecord msg(std::string role, std::string content, std::string status = "complete") {
  store::MessageRecord m;
  m.role = std::move(role);
  m.content = std::move(content);
  m.status = std::move(status);
  return m;
}

std::vector<std::string> roles(const std::vector<ChatMessage>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.role + ":" + m.content);
  return out;
}

// Each message below costs estimate_tokens(8 bytes) = 2 + 4 = 6 tokens.
const std::vector<store::MessageRecord> kHistory = {msg("user", "question"), msg("assistant", "answer03"),
                                                    msg("user", "askagain"), msg("assistant", "answer01"),
                                                    msg("user", "firstask")};  // newest first

TEST(ConversationContext, EstimateIsBytesOverFourPlusTheMessageOverhead) {
  EXPECT_EQ(estimate_tokens(""), kMessageOverheadTokens);
  EXPECT_EQ(estimate_tokens("abcd"), 1 + kMessageOverheadTokens);
  EXPECT_EQ(estimate_tokens("abcde"), 2 + kMessageOverheadTokens);
  EXPECT_EQ(estimate_tokens("é"), 1 + kMessageOverheadTokens);  // UTF-8 bytes, not characters
}

TEST(ConversationContext, EverythingFitsOldestFirstAfterTheSystemMessage) {
  auto out = build_context(std::string("sys"), kHistory, 1000);
  EXPECT_EQ(roles(out), (std::vector<std::string>{"system:sys", "user:firstask", "assistant:answer01",
                                                  "user:askagain", "assistant:answer03", "user:question"}));
}

TEST(ConversationContext, OlderMessagesAreDroppedWholeAtTheBudget) {
  // 3 messages fit 18 tokens; the fourth would make 24.
  auto out = build_context(std::nullopt, kHistory, 18);
  EXPECT_EQ(roles(out), (std::vector<std::string>{"user:askagain", "assistant:answer03", "user:question"}));
  for (const auto& m : out) EXPECT_EQ(m.content.size(), 8U) << "a message was cut";
}

TEST(ConversationContext, TheSystemMessageCountsAgainstTheBudget) {
  // "sys" costs 5: 5 + 6 + 6 = 17 fits 18, a third message does not.
  auto out = build_context(std::string("sys"), kHistory, 18);
  EXPECT_EQ(roles(out), (std::vector<std::string>{"system:sys", "user:question"}))
      << "a history that would begin with an answer begins at the next question";
}

TEST(ConversationContext, TheMessageAnsweredIsSentEvenOverTheBudget) {
  std::vector<store::MessageRecord> h = {msg("user", std::string(400, 'x')), msg("assistant", "earlier")};
  auto out = build_context(std::string("sys"), h, 20);
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[1].content.size(), 400U);
}

TEST(ConversationContext, AHistoryNeverBeginsWithAnAnswer) {
  auto out = build_context(std::nullopt, kHistory, 24);  // 4 messages fit: the oldest would be an answer
  EXPECT_EQ(roles(out), (std::vector<std::string>{"user:askagain", "assistant:answer03", "user:question"}));
}

TEST(ConversationContext, AnswersWithoutTextAreLeftOutAndDoNotEndTheHistory) {
  std::vector<store::MessageRecord> h = {msg("user", "retry"), msg("assistant", "", "failed"),
                                         msg("user", "hello")};
  auto out = build_context(std::nullopt, h, 1000);
  EXPECT_EQ(roles(out), (std::vector<std::string>{"user:hello", "user:retry"}));
}

TEST(ConversationContext, ABudgetIsChosenPerModelFirstMatchWins) {
  ContextBudgets b;
  b.fallback = 4096;
  b.by_model = {{"gpt-4o-mini", 1000}, {"gpt-4o*", 100000}, {"mock-*", 60}};
  EXPECT_EQ(b.for_model("gpt-4o-mini"), 1000);
  EXPECT_EQ(b.for_model("gpt-4o-2024-08-06"), 100000);
  EXPECT_EQ(b.for_model("mock-small"), 60);
  EXPECT_EQ(b.for_model("demo"), 4096);
}

TEST(Generation, EventsAreNumberedFromOneAndTheTerminalEventComesLast) {
  asio::io_context io;
  Generation g("m1", "c1", io.get_executor());
  g.append("Hel");
  g.append("lo");
  auto s = g.after(0);
  EXPECT_EQ(s.first, 1U);
  EXPECT_EQ(s.pieces, (std::vector<std::string>{"Hel", "lo"}));
  EXPECT_FALSE(s.end);
  EXPECT_EQ(g.after(1).pieces, (std::vector<std::string>{"lo"}));
  EXPECT_EQ(g.after(1).first, 2U);
  AnswerEnd end;
  end.message.id = "m1";
  end.message.status = "complete";
  g.finish(end);
  g.append("ignored after the end");
  auto all = g.after(2);
  ASSERT_TRUE(all.end);
  EXPECT_EQ(all.end_number, 3U);
  EXPECT_TRUE(all.pieces.empty());
  // A client that saw the terminal event gets nothing more.
  auto none = g.after(3);
  EXPECT_TRUE(none.pieces.empty());
  EXPECT_FALSE(none.end);
}

TEST(Generation, UnsavedPiecesAreWhatTheNextCheckpointWrites) {
  asio::io_context io;
  Generation g("m1", "c1", io.get_executor());
  g.append("Hel");
  g.append("lo");
  auto u = g.unsaved();
  EXPECT_EQ(u.text, "Hello");
  EXPECT_EQ(u.lengths, "3,2");
  EXPECT_EQ(u.through, 2U);
  g.saved(2, false);
  g.append(", world");
  u = g.unsaved();
  EXPECT_EQ(u.text, ", world");
  EXPECT_EQ(u.lengths, "7");
  EXPECT_EQ(u.through, 3U);
  EXPECT_EQ(g.after(0).pieces.size(), 3U) << "saved pieces stay in memory until a bound asks";
}

TEST(Generation, ForgottenPiecesSendFollowersToTheStore) {
  asio::io_context io;
  std::atomic<std::int64_t> total{0};
  Generation g("m1", "c1", io.get_executor());
  g.account_to(&total);
  for (const char* p : {"aa", "bb", "cc", "dd"}) g.append(p);
  const auto before = g.memory_bytes();
  EXPECT_EQ(total.load(), static_cast<std::int64_t>(before));
  g.saved(3, true);
  EXPECT_LT(g.memory_bytes(), before);
  EXPECT_EQ(total.load(), static_cast<std::int64_t>(g.memory_bytes()));
  EXPECT_TRUE(g.after(0).behind);
  EXPECT_TRUE(g.after(2).behind);
  auto s = g.after(3);
  EXPECT_FALSE(s.behind);
  EXPECT_EQ(s.first, 4U);
  EXPECT_EQ(s.pieces, (std::vector<std::string>{"dd"}));
  EXPECT_EQ(g.unsaved().text, "dd");
  EXPECT_EQ(g.pieces(), 4U);
  // Once over, the text is read from the store; the terminal event stays.
  g.finish(AnswerEnd{});
  EXPECT_TRUE(g.after(3).behind);
  auto end = g.after(4);
  EXPECT_TRUE(end.end);
  EXPECT_EQ(end.end_number, 5U);
  EXPECT_EQ(total.load(), 0);
}

TEST(Generation, ASliceIsBoundedAndTheEndWaitsForTheLastPiece) {
  asio::io_context io;
  Generation g("m1", "c1", io.get_executor());
  for (int i = 0; i < 10; ++i) g.append("x");
  auto s = g.after(0, 4);
  EXPECT_EQ(s.pieces.size(), 4U);
  auto rest = g.after(8, 4);
  EXPECT_EQ(rest.pieces.size(), 2U);
  EXPECT_FALSE(rest.end);
}

TEST(Generation, StoredAnswersReplayAsTheSamePieces) {
  EXPECT_EQ(replay_pieces("Hello", "3,2"), (std::vector<std::string>{"Hel", "lo"}));
  EXPECT_EQ(replay_pieces("", ""), (std::vector<std::string>{}));
  // Lengths that do not add up to the text: the text as one piece.
  EXPECT_EQ(replay_pieces("Hello", "3,3"), (std::vector<std::string>{"Hello"}));
  EXPECT_EQ(replay_pieces("Hello", "3"), (std::vector<std::string>{"Hello"}));
  EXPECT_EQ(replay_pieces("Hello", "x,2"), (std::vector<std::string>{"Hello"}));
  EXPECT_EQ(replay_pieces("Hello", ""), (std::vector<std::string>{"Hello"}));
}

TEST(Generation, AFollowerOnAnotherLoopIsWokenByEachPiece) {
  asio::io_context producer_loop;
  asio::io_context follower_loop;
  auto g = std::make_shared<Generation>("m1", "c1", producer_loop.get_executor());
  std::vector<std::string> seen;
  std::atomic<int> consumed{0};
  bool ended = false;
  bool behind = false;
  asio::co_spawn(
      follower_loop,
      [](std::shared_ptr<Generation> gen, std::vector<std::string>* out, std::atomic<int>* count, bool* done,
         bool* fell_behind) -> asio::awaitable<void> {
        std::uint64_t n = 0;
        for (;;) {
          auto slice = gen->after(n);
          if (slice.behind) {
            *fell_behind = true;
            co_return;
          }
          for (auto& p : slice.pieces) out->push_back(p);
          n += slice.pieces.size();
          count->store(static_cast<int>(n));
          if (slice.end) {
            *done = true;
            co_return;
          }
          co_await gen->wait(n, 10s);
        }
      }(g, &seen, &consumed, &ended, &behind),
      asio::detached);
  std::thread follower([&] { follower_loop.run(); });
  for (int i = 0; i < 50; ++i) {
    g->append(std::to_string(i));
    if (i % 7 == 0) std::this_thread::sleep_for(1ms);
  }
  // Each wait is capped at 10 s: a lost wake-up would show as a follower that falls far behind.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (consumed.load() < 50 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(consumed.load(), 50);
  g->finish(AnswerEnd{});
  follower.join();
  EXPECT_FALSE(behind);
  EXPECT_TRUE(ended);
  ASSERT_EQ(seen.size(), 50U);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(seen[i], std::to_string(i));
}

TEST(Generation, CancelIsAskedOnceAndNotAfterTheEnd) {
  asio::io_context io;
  auto g = std::make_shared<Generation>("m1", "c1", io.get_executor());
  EXPECT_FALSE(g->cancel_requested());
  EXPECT_TRUE(g->request_cancel());
  EXPECT_TRUE(g->cancel_requested());
  EXPECT_TRUE(g->request_cancel());
  io.run();  // the cancellation is emitted on the producer's loop
  g->finish(AnswerEnd{});
  EXPECT_FALSE(g->request_cancel());
}

TEST(GenerationRegistry, OneRunningAnswerPerConversationAndFinishedLogsExpire) {
  asio::io_context io;
  GenerationRegistry registry(0s);
  auto a = registry.start("m1", "c1", io.get_executor());
  ASSERT_TRUE(a);
  EXPECT_FALSE(registry.start("m2", "c1", io.get_executor())) << "c1 is busy";
  auto b = registry.start("m3", "c2", io.get_executor());
  ASSERT_TRUE(b);
  EXPECT_EQ(registry.running_in("c1"), a);
  EXPECT_EQ(registry.find("m3"), b);
  EXPECT_EQ(registry.running().size(), 2U);
  a->finish(AnswerEnd{});
  registry.finished(*a);
  EXPECT_FALSE(registry.running_in("c1"));
  EXPECT_FALSE(registry.find("m1")) << "retention 0: gone at once";
  EXPECT_TRUE(registry.start("m4", "c1", io.get_executor())) << "c1 takes a new answer";

  GenerationRegistry keeping(60s);
  auto k = keeping.start("m1", "c1", io.get_executor());
  k->finish(AnswerEnd{});
  keeping.finished(*k);
  EXPECT_EQ(keeping.find("m1"), k) << "kept for followers within the retention";
  EXPECT_FALSE(keeping.running_in("c1"));
}

}  // namespace
}  // namespace parley::services
