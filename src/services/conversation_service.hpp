// Conversations and messages (issue 12, seeds 004 and 002; docs/CONVERSATIONS.md).
//
// ConversationService: who may see and change which conversation, and the store calls behind the
// REST routes. BLOCKING: call it on the blocking pool.
//
// AnswerService: asks the model for an answer in a conversation. It checks and stores the user
// message, builds the model context (services/conversation_context.hpp) and starts the answer as
// a Generation that runs on its own, independent of the request that asked for it: a client that
// leaves does not stop it, the answer is checkpointed while it grows and stored when it ends, and
// any client may follow it (services/generation.hpp). Asynchronous; never blocks the loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/policy.hpp"
#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "http/blocking_pool.hpp"
#include "services/chat_service.hpp"
#include "services/conversation_context.hpp"
#include "services/generation.hpp"
#include "store/conversation_store.hpp"
#include "store/database.hpp"

namespace parley::services {

struct NewConversation {
  std::optional<std::string> title;
  std::optional<std::string> system_message;
  std::optional<std::string> model;
  std::optional<std::string> metadata;  // a serialized JSON object
};

inline constexpr std::string_view kDefaultConversationTitle = "New conversation";

class ConversationService {
 public:
  ConversationService(store::Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  // Routes under /api/v1/users/{user_id}/conversations: `user_id` is the path's; a conversation of
  // another user is 404 whoever asks.
  Result<store::ConversationRecord> create(const auth::Principal& who, std::string_view user_id,
                                           const NewConversation& input);
  Result<store::Page<store::ConversationRecord>> list(const auth::Principal& who,
                                                      const store::ConversationQuery& query);
  Result<store::ConversationRecord> get(const auth::Principal& who, std::string_view user_id,
                                        std::string_view conversation_id, auth::Access access);
  Result<store::ConversationRecord> update(const auth::Principal& who, std::string_view user_id,
                                           std::string_view conversation_id, store::ConversationUpdate patch);
  Status remove(const auth::Principal& who, std::string_view user_id, std::string_view conversation_id);
  // "ended" or "active" (reconnect re-opens an ended conversation).
  Result<store::ConversationRecord> set_status(const auth::Principal& who, std::string_view user_id,
                                               std::string_view conversation_id, std::string_view status);
  Result<store::ConversationStats> stats(const auth::Principal& who, std::string_view user_id,
                                         std::string_view conversation_id);

  // Routes under /api/v1/conversations/{conversation_id}.
  Result<store::ConversationRecord> find(const auth::Principal& who, std::string_view conversation_id,
                                         auth::Access access);
  Result<store::MessagePage> messages(const auth::Principal& who, const store::MessageQuery& query);
  // A message of this conversation (404 when it belongs to another).
  Result<store::MessageRecord> message(const auth::Principal& who, std::string_view conversation_id,
                                       std::string_view message_id, auth::Access access);
  Result<std::vector<store::MessageRecord>> siblings(const auth::Principal& who,
                                                     std::string_view conversation_id,
                                                     std::string_view message_id);

  // Answers a process left "generating" (see ConversationStore::fail_stale_answers).
  Result<std::int64_t> fail_stale_answers(std::chrono::seconds stale_after);
  // Every answer still "generating" is failed: at start with SQLite, whose file one process owns.
  Result<std::int64_t> fail_all_generating();

 private:
  store::Database& db_;
  const Clock& clock_;
};

struct AnswerOptions {
  ContextBudgets budgets;
  std::int64_t context_max_messages = 200;
  std::chrono::milliseconds checkpoint{1000};
  // Text of answers being generated kept in memory: past either bound, saved text leaves memory
  // and followers that need it read the store.
  std::size_t memory_per_answer = std::size_t{256} * 1024;
  std::size_t memory_total = std::size_t{64} * 1024 * 1024;
};

// One answer to ask for.
struct AnswerRequest {
  auth::Principal who;
  store::ConversationRecord conversation;
  // The new user message; unset for a regeneration.
  std::optional<std::string> content;
  // Regeneration: the message whose answer is generated again (an answer or its user message).
  std::optional<std::string> regenerate_message_id;
  std::optional<std::string> model;  // else the conversation's, the user's default_model, the deployment's
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
  std::string request_id;
};

struct StartedAnswer {
  std::optional<store::MessageRecord> user_message;  // unset for a regeneration
  store::MessageRecord answer;                       // status "generating"
  std::shared_ptr<Generation> generation;
  RateLimitInfo limits;  // the caller's limits after this answer was admitted (response headers)
};

class AnswerService {
 public:
  AnswerService(ChatService& chat, http::BlockingPool& pool, store::Database& db, const Clock& clock,
                GenerationRegistry& registry, AnswerOptions options)
      : chat_(chat), pool_(pool), db_(db), clock_(clock), registry_(registry), options_(std::move(options)) {}

  // Resolves the model and the caller's credentials first (an unknown model or a missing key is
  // refused with nothing stored), then stores the exchange and starts generating on `executor`.
  // kConflict when the conversation is ended or already generating an answer.
  boost::asio::awaitable<Result<StartedAnswer>> start(AnswerRequest request,
                                                      boost::asio::any_io_executor executor);

  // At shutdown, once the event loops have stopped: stores every answer still running as failed
  // (error_code INTERRUPTED) with what it had so far. Blocking.
  void interrupt_running();

  [[nodiscard]] GenerationRegistry& registry() { return registry_; }

 private:
  struct Job;
  boost::asio::awaitable<void> run(std::shared_ptr<Generation> generation, std::shared_ptr<Job> job);
  // Saves the pieces not saved yet (appended to the stored answer); false when the answer is no
  // longer "generating" in the store.
  boost::asio::awaitable<Result<bool>> checkpoint(Generation& generation, const store::MessageRecord& answer,
                                                  bool forget);

  ChatService& chat_;
  http::BlockingPool& pool_;
  store::Database& db_;
  const Clock& clock_;
  GenerationRegistry& registry_;
  AnswerOptions options_;
};

}  // namespace parley::services
