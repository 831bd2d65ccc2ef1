// Anonymous chat (GET /ws/chat, off unless realtime.anonymous; docs/REALTIME.md): conversations
// kept in this process's memory only — never stored, never in any user's history — with tighter
// bounds than a user's: how many conversations, how many messages each, how long an idle one is
// kept, how long an answer may be. Answers are Generations like stored ones (their own registry),
// so a client that drops its socket resumes the same way. Thread-safe; never blocks.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.hpp"
#include "services/chat_service.hpp"
#include "services/conversation_context.hpp"
#include "services/conversation_service.hpp"
#include "services/generation.hpp"

namespace parley::services {

struct AnonymousOptions {
  std::size_t max_conversations = 1000;  // held at once (all anonymous clients together)
  std::size_t max_messages = 40;         // per conversation, questions and answers
  std::chrono::seconds idle_ttl{1800};   // a conversation unused this long is forgotten
  std::int64_t max_tokens = 512;         // cap on each answer's length
  std::optional<std::string> model;      // else the deployment's default model
  ContextBudgets budgets;
};

// The principal anonymous calls are made (and accounted) as.
inline constexpr std::string_view kAnonymousUserId = "anonymous";

class AnonymousChat {
 public:
  AnonymousChat(ChatService& chat, const Clock& clock, AnonymousOptions options);

  Result<store::ConversationRecord> start(const NewConversation& input);
  Result<store::ConversationRecord> get(const std::string& conversation_id);
  Result<store::ConversationRecord> set_status(const std::string& conversation_id, std::string_view status);
  Result<store::MessageRecord> message(const std::string& conversation_id, const std::string& message_id);

  // Stores the question and starts the answer on `executor` (as AnswerService::start does).
  boost::asio::awaitable<Result<StartedAnswer>> ask(std::string conversation_id, std::string content,
                                                    std::optional<double> temperature,
                                                    std::optional<std::int64_t> max_tokens,
                                                    std::string request_id,
                                                    boost::asio::any_io_executor executor);

  [[nodiscard]] GenerationRegistry& registry() { return registry_; }
  [[nodiscard]] std::size_t size();
  [[nodiscard]] static auth::Principal principal();

 private:
  struct Conversation {
    store::ConversationRecord record;
    std::vector<store::MessageRecord> messages;  // oldest first
    std::chrono::steady_clock::time_point used;
  };
  struct Job;
  boost::asio::awaitable<void> run(std::shared_ptr<Generation> generation, std::shared_ptr<Job> job);
  void forget_idle_locked(std::chrono::steady_clock::time_point now);

  ChatService& chat_;
  const Clock& clock_;
  AnonymousOptions options_;
  GenerationRegistry registry_;
  std::mutex mutex_;
  std::unordered_map<std::string, Conversation> conversations_;
};

}  // namespace parley::services
