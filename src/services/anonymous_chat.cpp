#include "services/anonymous_chat.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include "crypto/random.hpp"

namespace parley::services {

namespace asio = boost::asio;
using store::ConversationRecord;
using store::MessageRecord;

struct AnonymousChat::Job {
  ChatService::Route route;
  ChatInput input;
  MessageRecord answer;
  std::chrono::steady_clock::time_point t0;
};

AnonymousChat::AnonymousChat(ChatService& chat, const Clock& clock, AnonymousOptions options)
    : chat_(chat),
      clock_(clock),
      options_(std::move(options)),
      // A finished answer's log stays while its conversation may still be resumed.
      registry_(std::chrono::seconds(60)) {}

auth::Principal AnonymousChat::principal() {
  auth::Principal p;
  p.user_id = std::string(kAnonymousUserId);
  p.username = std::string(kAnonymousUserId);
  return p;
}

std::size_t AnonymousChat::size() {
  std::lock_guard lock(mutex_);
  return conversations_.size();
}

void AnonymousChat::forget_idle_locked(std::chrono::steady_clock::time_point now) {
  std::erase_if(conversations_, [&](const auto& entry) {
    return now - entry.second.used >= options_.idle_ttl && !registry_.running_in(entry.first);
  });
}

Result<ConversationRecord> AnonymousChat::start(const NewConversation& input) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (conversations_.size() >= options_.max_conversations) forget_idle_locked(now);
  if (conversations_.size() >= options_.max_conversations) {
    return fail(ErrorKind::kUnavailable, "Too many anonymous conversations at once; try again later");
  }
  Conversation c;
  c.record.id = crypto::new_public_id();
  c.record.user_id = std::string(kAnonymousUserId);
  c.record.title = input.title.value_or(std::string(kDefaultConversationTitle));
  c.record.system_message = input.system_message;
  c.record.model = input.model;
  c.record.created_at = c.record.updated_at = clock_.now_ms();
  c.used = now;
  ConversationRecord record = c.record;
  conversations_.emplace(c.record.id, std::move(c));
  return record;
}

Result<ConversationRecord> AnonymousChat::get(const std::string& conversation_id) {
  std::lock_guard lock(mutex_);
  auto it = conversations_.find(conversation_id);
  if (it == conversations_.end()) return fail(ErrorKind::kNotFound, "Conversation not found");
  it->second.used = std::chrono::steady_clock::now();
  return it->second.record;
}

Result<ConversationRecord> AnonymousChat::set_status(const std::string& conversation_id,
                                                     std::string_view status) {
  std::lock_guard lock(mutex_);
  auto it = conversations_.find(conversation_id);
  if (it == conversations_.end()) return fail(ErrorKind::kNotFound, "Conversation not found");
  ConversationRecord& r = it->second.record;
  it->second.used = std::chrono::steady_clock::now();
  if (r.status != status) {
    r.status = std::string(status);
    r.updated_at = clock_.now_ms();
    r.ended_at = status == "ended" ? std::optional<std::int64_t>(r.updated_at) : std::nullopt;
  }
  return r;
}

Result<MessageRecord> AnonymousChat::message(const std::string& conversation_id,
                                             const std::string& message_id) {
  std::lock_guard lock(mutex_);
  auto it = conversations_.find(conversation_id);
  if (it != conversations_.end()) {
    for (const auto& m : it->second.messages) {
      if (m.id == message_id) return m;
    }
  }
  return fail(ErrorKind::kNotFound, "Message not found");
}

asio::awaitable<Result<StartedAnswer>> AnonymousChat::ask(std::string conversation_id, std::string content,
                                                          std::optional<double> temperature,
                                                          std::optional<std::int64_t> max_tokens,
                                                          std::string request_id,
                                                          asio::any_io_executor executor) {
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<std::string> model;
  std::optional<std::string> system;
  MessageRecord question;
  std::vector<MessageRecord> newest_first;
  {
    std::lock_guard lock(mutex_);
    auto it = conversations_.find(conversation_id);
    if (it == conversations_.end()) co_return fail(ErrorKind::kNotFound, "Conversation not found");
    Conversation& c = it->second;
    if (c.record.status == "ended") {
      co_return fail(ErrorKind::kConflict,
                     "The conversation has ended; reconnect to it before sending messages");
    }
    if (c.messages.size() + 2 > options_.max_messages) {
      co_return fail(ErrorKind::kConflict,
                     fmt::format("An anonymous conversation holds at most {} messages; start a new one",
                                 options_.max_messages));
    }
    model = c.record.model ? c.record.model : options_.model;
    system = c.record.system_message;
    question.id = crypto::new_public_id();
    question.conversation_id = conversation_id;
    question.role = "user";
    question.sender_id = std::string(kAnonymousUserId);
    question.content = std::move(content);
    question.created_at = question.updated_at = clock_.now_ms();
    newest_first.push_back(question);
    newest_first.insert(newest_first.end(), c.messages.rbegin(), c.messages.rend());
  }
  auth::Principal who = principal();
  auto route = co_await chat_.route(who, model, request_id);
  if (!route) co_return std::unexpected(route.error());

  auto job = std::make_shared<Job>();
  job->t0 = t0;
  job->input.model = route->model;
  job->input.temperature = temperature;
  job->input.max_tokens = std::min(max_tokens.value_or(options_.max_tokens), options_.max_tokens);
  job->input.endpoint = "conversation";
  job->input.messages = build_context(system, newest_first, options_.budgets.for_model(route->model));
  MessageRecord& answer = job->answer;
  answer.id = crypto::new_public_id();
  answer.conversation_id = conversation_id;
  answer.parent_id = question.id;
  answer.role = "assistant";
  answer.status = "generating";
  answer.model = route->model;
  answer.created_at = answer.updated_at = question.created_at;

  auto generation = registry_.start(answer.id, conversation_id, executor);
  if (!generation)
    co_return fail(ErrorKind::kConflict, "An answer is still being generated in this conversation");
  {
    std::lock_guard lock(mutex_);
    auto it = conversations_.find(conversation_id);
    if (it == conversations_.end()) {
      registry_.finished(*generation);
      co_return fail(ErrorKind::kNotFound, "Conversation not found");
    }
    Conversation& c = it->second;
    question.seq = static_cast<std::int64_t>(c.messages.size()) + 1;
    c.messages.push_back(question);
    answer.seq = question.seq + 1;
    c.messages.push_back(answer);
    c.record.message_count = static_cast<std::int64_t>(c.messages.size());
    c.record.last_message_at = c.record.updated_at = question.created_at;
    c.used = std::chrono::steady_clock::now();
  }
  generation->mark_stored();
  job->route = std::move(*route);
  StartedAnswer started{question, answer, generation};
  asio::co_spawn(executor, run(generation, job),
                 asio::bind_cancellation_slot(generation->cancel_signal().slot(), asio::detached));
  co_return started;
}

asio::awaitable<void> AnonymousChat::run(std::shared_ptr<Generation> generation, std::shared_ptr<Job> job) {
  co_await asio::this_coro::throw_if_cancelled(false);
  TokenSink sink = [&](std::string_view piece) -> asio::awaitable<bool> {
    generation->append(piece);
    co_return !generation->cancel_requested();
  };
  auth::Principal who = principal();
  auto out = co_await chat_.stream(who, job->route, job->input, sink, job->t0);
  co_await asio::this_coro::reset_cancellation_state();

  AnswerEnd end;
  MessageRecord& answer = job->answer;
  Generation::Unsaved all = generation->unsaved();  // nothing is ever saved: this is the whole answer
  answer.content = std::move(all.text);
  answer.event_lengths = std::move(all.lengths);
  answer.latency_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - job->t0)
          .count();
  if (generation->cancel_requested()) {
    answer.status = "cancelled";
  } else if (!out) {
    answer.status = "failed";
    answer.error_code = std::string(out.error().info().code);
    end.error = out.error();
  } else {
    answer.status = "complete";
  }
  if (out) {
    answer.model = out->model;
    answer.prompt_tokens = out->usage.prompt_tokens;
    answer.completion_tokens = out->usage.completion_tokens;
  }
  answer.updated_at = clock_.now_ms();
  {
    std::lock_guard lock(mutex_);
    if (auto it = conversations_.find(answer.conversation_id); it != conversations_.end()) {
      for (auto& m : it->second.messages) {
        if (m.id == answer.id) m = answer;
      }
    }
  }
  end.message = answer;
  generation->finish(std::move(end));
  registry_.finished(*generation);
}

}  // namespace parley::services
