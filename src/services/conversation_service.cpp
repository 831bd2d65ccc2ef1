#include "services/conversation_service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include "crypto/random.hpp"
#include "store/preference_store.hpp"
#include "store/user_store.hpp"

namespace parley::services {

namespace asio = boost::asio;
using store::ConversationRecord;
using store::ConversationStore;
using store::MessageRecord;

namespace {

std::unexpected<Error> not_found() {
  return fail(ErrorKind::kNotFound, "Conversation not found");
}

}  // namespace

// ---- ConversationService -------------------------------------------------------------------

Result<ConversationRecord> ConversationService::create(const auth::Principal& who, std::string_view user_id,
                                                       const NewConversation& input) {
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, user_id); !s)
    return std::unexpected(s.error());
  ConversationRecord c;
  c.id = crypto::new_public_id();
  c.user_id = std::string(user_id);
  c.title = input.title.value_or(std::string(kDefaultConversationTitle));
  c.system_message = input.system_message;
  c.model = input.model;
  c.metadata = input.metadata.value_or("{}");
  c.status = "active";
  c.created_at = c.updated_at = clock_.now_ms();
  auto created = ConversationStore(db_).create_conversation(c);
  if (!created && created.error().kind == ErrorKind::kNotFound)
    return fail(ErrorKind::kNotFound, "User not found");
  return created;
}

Result<store::Page<ConversationRecord>> ConversationService::list(const auth::Principal& who,
                                                                  const store::ConversationQuery& query) {
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, query.user_id); !s)
    return std::unexpected(s.error());
  auto page = ConversationStore(db_).list_conversations(query);
  if (page && page->total == 0 && !query.search && !query.status) {
    // An empty list of a user who does not exist is a 404, as everywhere under /users/{user_id}.
    auto user = store::UserStore(db_).get_by_id(query.user_id);
    if (!user) return std::unexpected(user.error());
    if (!*user) return fail(ErrorKind::kNotFound, "User not found");
  }
  return page;
}

Result<ConversationRecord> ConversationService::get(const auth::Principal& who, std::string_view user_id,
                                                    std::string_view conversation_id, auth::Access access) {
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, user_id); !s)
    return std::unexpected(s.error());
  auto found = ConversationStore(db_).get_conversation(conversation_id);
  if (!found) return std::unexpected(found.error());
  if (!*found || (*found)->user_id != user_id) return not_found();
  if (auto s = auth::authorize_owned(who, access, user_id); !s) return std::unexpected(s.error());
  return std::move(**found);
}

Result<ConversationRecord> ConversationService::update(const auth::Principal& who, std::string_view user_id,
                                                       std::string_view conversation_id,
                                                       store::ConversationUpdate patch) {
  auto existing = get(who, user_id, conversation_id, auth::Access::kWrite);
  if (!existing) return existing;
  patch.now_ms = clock_.now_ms();
  auto updated = ConversationStore(db_).update_conversation(conversation_id, patch);
  if (!updated) return std::unexpected(updated.error());
  if (!*updated) return not_found();
  return std::move(**updated);
}

Status ConversationService::remove(const auth::Principal& who, std::string_view user_id,
                                   std::string_view conversation_id) {
  auto existing = get(who, user_id, conversation_id, auth::Access::kWrite);
  if (!existing) return std::unexpected(existing.error());
  auto deleted = ConversationStore(db_).delete_conversation(conversation_id);
  if (!deleted) return std::unexpected(deleted.error());
  if (!*deleted) return not_found();
  return {};
}

Result<ConversationRecord> ConversationService::set_status(const auth::Principal& who,
                                                           std::string_view user_id,
                                                           std::string_view conversation_id,
                                                           std::string_view status) {
  auto existing = get(who, user_id, conversation_id, auth::Access::kWrite);
  if (!existing) return existing;
  if (existing->status == status) return existing;
  store::ConversationUpdate patch;
  patch.status = std::string(status);
  return update(who, user_id, conversation_id, std::move(patch));
}

Result<store::ConversationStats> ConversationService::stats(const auth::Principal& who,
                                                            std::string_view user_id,
                                                            std::string_view conversation_id) {
  auto existing = get(who, user_id, conversation_id, auth::Access::kRead);
  if (!existing) return std::unexpected(existing.error());
  return ConversationStore(db_).stats(conversation_id);
}

Result<ConversationRecord> ConversationService::find(const auth::Principal& who,
                                                     std::string_view conversation_id, auth::Access access) {
  auto found = ConversationStore(db_).get_conversation(conversation_id);
  if (!found) return std::unexpected(found.error());
  if (!*found) return not_found();
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, (*found)->user_id); !s) return not_found();
  if (auto s = auth::authorize_owned(who, access, (*found)->user_id); !s) return std::unexpected(s.error());
  return std::move(**found);
}

Result<store::MessagePage> ConversationService::messages(const auth::Principal& who,
                                                         const store::MessageQuery& query) {
  auto conversation = find(who, query.conversation_id, auth::Access::kRead);
  if (!conversation) return std::unexpected(conversation.error());
  return ConversationStore(db_).list_messages(query);
}

Result<MessageRecord> ConversationService::message(const auth::Principal& who,
                                                   std::string_view conversation_id,
                                                   std::string_view message_id, auth::Access access) {
  auto conversation = find(who, conversation_id, access);
  if (!conversation) return std::unexpected(conversation.error());
  auto found = ConversationStore(db_).get_message(message_id);
  if (!found) return std::unexpected(found.error());
  if (!*found || (*found)->conversation_id != conversation_id) {
    return fail(ErrorKind::kNotFound, "Message not found");
  }
  return std::move(**found);
}

Result<std::vector<MessageRecord>> ConversationService::siblings(const auth::Principal& who,
                                                                 std::string_view conversation_id,
                                                                 std::string_view message_id) {
  auto m = message(who, conversation_id, message_id, auth::Access::kRead);
  if (!m) return std::unexpected(m.error());
  // A user message's answers, or an answer's siblings (itself included).
  const std::string parent = m->role == "user" ? m->id : m->parent_id.value_or("");
  if (parent.empty()) return std::vector<MessageRecord>{*m};
  return ConversationStore(db_).siblings(parent);
}

Result<std::int64_t> ConversationService::fail_stale_answers(std::chrono::seconds stale_after) {
  const std::int64_t now = clock_.now_ms();
  return ConversationStore(db_).fail_stale_answers(
      now - std::chrono::duration_cast<std::chrono::milliseconds>(stale_after).count(), now);
}

Result<std::int64_t> ConversationService::fail_all_generating() {
  const std::int64_t now = clock_.now_ms();
  return ConversationStore(db_).fail_stale_answers(now + 1, now);
}

// ---- AnswerService ---------------------------------------------------------------------------

struct AnswerService::Job {
  auth::Principal who;
  ChatService::Route route;
  ChatInput input;
  MessageRecord answer;
  std::chrono::steady_clock::time_point t0;
};

namespace {

// What start() reads from the store before it asks anyone.
struct Prepared {
  std::optional<std::string> default_model;
  std::optional<std::string> system_prompt;
  std::vector<MessageRecord> recent;         // newest first
  std::optional<MessageRecord> regenerated;  // the user message answered again
};

std::string error_code_of(const Error& e) {
  return std::string(e.info().code);
}

}  // namespace

asio::awaitable<Result<StartedAnswer>> AnswerService::start(AnswerRequest request,
                                                            asio::any_io_executor executor) {
  const auto t0 = std::chrono::steady_clock::now();
  const ConversationRecord& conversation = request.conversation;
  if (conversation.status == "ended") {
    co_return fail(ErrorKind::kConflict,
                   "The conversation has ended; reconnect to it (POST …/reconnect) before sending messages");
  }
  if (registry_.running_in(conversation.id)) {
    co_return fail(ErrorKind::kConflict, "An answer is still being generated in this conversation");
  }

  auto prepared = co_await pool_.run([&]() -> Result<Prepared> {
    Prepared p;
    auto prefs = store::PreferenceStore(db_).get(request.who.user_id);
    if (!prefs) return std::unexpected(prefs.error());
    if (*prefs) {
      p.default_model = (*prefs)->default_model;
      p.system_prompt = (*prefs)->system_prompt;
    }
    ConversationStore store(db_);
    if (request.regenerate_message_id) {
      auto m = store.get_message(*request.regenerate_message_id);
      if (!m) return std::unexpected(m.error());
      if (!*m || (*m)->conversation_id != conversation.id)
        return fail(ErrorKind::kNotFound, "Message not found");
      std::string parent_id = (*m)->role == "user" ? (*m)->id : (*m)->parent_id.value_or("");
      auto parent =
          parent_id == (*m)->id ? std::optional<MessageRecord>(**m) : std::optional<MessageRecord>();
      if (!parent && !parent_id.empty()) {
        auto found = store.get_message(parent_id);
        if (!found) return std::unexpected(found.error());
        parent = *found;
      }
      if (!parent)
        return fail(ErrorKind::kValidation, "Only an answer to a user message can be regenerated",
                    "message_id");
      p.regenerated = std::move(parent);
    }
    auto recent = store.recent_for_context(conversation.id, options_.context_max_messages);
    if (!recent) return std::unexpected(recent.error());
    p.recent = std::move(*recent);
    return p;
  });
  if (!prepared) co_return std::unexpected(prepared.error());

  std::vector<MessageRecord> newest_first;
  std::optional<MessageRecord> user_message;
  const std::int64_t now = clock_.now_ms();
  if (prepared->regenerated) {
    // Only the newest user message's answer is regenerated: the history after an older one would
    // no longer match the answer.
    const MessageRecord& parent = *prepared->regenerated;
    for (const auto& m : prepared->recent) {
      if (m.role == "user" && m.seq > parent.seq) {
        co_return fail(ErrorKind::kConflict, "Only the answer to the newest user message can be regenerated");
      }
    }
    newest_first.push_back(parent);
    for (const auto& m : prepared->recent) {
      if (m.seq < parent.seq) newest_first.push_back(m);
    }
  } else {
    MessageRecord u;
    u.id = crypto::new_public_id();
    u.conversation_id = conversation.id;
    u.role = "user";
    u.sender_id = request.who.user_id;
    u.content = request.content.value_or("");
    u.status = "complete";
    u.created_at = u.updated_at = now;
    newest_first.push_back(u);
    newest_first.insert(newest_first.end(), prepared->recent.begin(), prepared->recent.end());
    user_message = std::move(u);
  }

  std::optional<std::string> model = request.model;
  if (!model) model = conversation.model;
  if (!model) model = prepared->default_model;
  auto route = co_await chat_.route(request.who, model, request.request_id);
  if (!route) co_return std::unexpected(route.error());

  auto job = std::make_shared<Job>();
  job->who = request.who;
  job->t0 = t0;
  job->input.model = route->model;
  job->input.temperature = request.temperature;
  job->input.max_tokens = request.max_tokens;
  job->input.endpoint = "conversation";
  std::optional<std::string> system =
      conversation.system_message ? conversation.system_message : prepared->system_prompt;
  job->input.messages = build_context(system, newest_first, options_.budgets.for_model(route->model));
  // Limits are checked once the context is known (its size is the prompt's), before anything is stored.
  Status admitted = co_await chat_.admit(request.who, *route, estimate_prompt_tokens(job->input.messages),
                                         request.max_tokens);
  if (!admitted) co_return std::unexpected(admitted.error());

  MessageRecord& answer = job->answer;
  answer.id = crypto::new_public_id();
  answer.conversation_id = conversation.id;
  answer.parent_id = user_message ? user_message->id : newest_first.front().id;
  answer.role = "assistant";
  answer.status = "generating";
  answer.model = route->model;
  answer.created_at = answer.updated_at = now;

  auto generation = registry_.start(answer.id, conversation.id, executor);
  if (!generation)
    co_return fail(ErrorKind::kConflict, "An answer is still being generated in this conversation");
  auto stored = co_await pool_.run([&] { return ConversationStore(db_).add_exchange(user_message, answer); });
  if (!stored) {
    registry_.finished(*generation);
    co_return std::unexpected(stored.error());
  }
  answer = stored->second;
  generation->mark_stored();
  job->route = std::move(*route);

  StartedAnswer started{stored->first, answer, generation, job->route.admission.info};
  asio::co_spawn(executor, run(generation, job),
                 asio::bind_cancellation_slot(generation->cancel_signal().slot(), asio::detached));
  co_return started;
}

asio::awaitable<Result<bool>> AnswerService::checkpoint(Generation& generation, const MessageRecord& answer,
                                                        bool forget) {
  Generation::Unsaved tail = generation.unsaved();
  store::AnswerUpdate u;
  u.append = true;
  u.content = std::move(tail.text);
  u.event_lengths = std::move(tail.lengths);
  u.status = "generating";
  u.model = answer.model;
  u.now_ms = clock_.now_ms();
  auto saved = co_await pool_.run([&] { return ConversationStore(db_).update_answer(answer.id, u); });
  if (saved && *saved) generation.saved(tail.through, forget);
  co_return saved;
}

asio::awaitable<void> AnswerService::run(std::shared_ptr<Generation> generation, std::shared_ptr<Job> job) {
  // A cancellation ends the provider call; what follows (storing the answer) must still run.
  co_await asio::this_coro::throw_if_cancelled(false);
  MessageRecord& answer = job->answer;
  auto last_checkpoint = std::chrono::steady_clock::now();
  bool checkpoint_failed = false;
  TokenSink sink = [&](std::string_view piece) -> asio::awaitable<bool> {
    generation->append(piece);
    if (generation->cancel_requested()) co_return false;
    const auto now = std::chrono::steady_clock::now();
    // Over a memory limit, saved text leaves memory (followers behind read the store).
    const bool over = generation->memory_bytes() > options_.memory_per_answer ||
                      registry_.memory_bytes() > static_cast<std::int64_t>(options_.memory_total);
    if ((now - last_checkpoint >= options_.checkpoint || over) && !checkpoint_failed) {
      last_checkpoint = now;
      auto saved = co_await checkpoint(*generation, answer, over);
      if (!saved) {
        checkpoint_failed = true;
        spdlog::warn("could not checkpoint answer {}: {}", answer.id, saved.error().message);
      } else if (!*saved) {
        co_return false;  // finished elsewhere (marked failed as abandoned): stop
      }
    }
    co_return true;
  };
  auto out = co_await chat_.stream(job->who, job->route, job->input, sink, job->t0);
  co_await asio::this_coro::reset_cancellation_state();

  AnswerEnd end;
  Generation::Unsaved tail = generation->unsaved();
  store::AnswerUpdate u;
  u.append = true;
  u.content = std::move(tail.text);
  u.event_lengths = std::move(tail.lengths);
  u.model = answer.model;
  u.latency_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - job->t0)
          .count();
  if (generation->cancel_requested()) {
    u.status = "cancelled";
  } else if (!out) {
    u.status = "failed";
    u.error_code = error_code_of(out.error());
    end.error = out.error();
  } else {
    u.status = "complete";
  }
  if (out) {
    u.model = out->model;
    u.prompt_tokens = out->usage.prompt_tokens;
    u.completion_tokens = out->usage.completion_tokens;
  }
  u.now_ms = clock_.now_ms();
  auto saved = co_await pool_.run([&] { return ConversationStore(db_).update_answer(answer.id, u); });
  if (!saved) {
    spdlog::error("could not store answer {}: {}", answer.id, saved.error().message);
    if (!end.error) end.error = saved.error();
  } else if (!*saved) {
    // Marked failed meanwhile as abandoned (no checkpoint for stale_after_s): what is stored is
    // what every follower must see.
    end.error = Error(ErrorKind::kOpenAiTimeout, "The answer was abandoned");
  }
  // The terminal event is made from the stored message, as a replay from the store makes it.
  auto stored = co_await pool_.run([&] { return ConversationStore(db_).get_message(answer.id); });
  if (stored && *stored) {
    end.message = std::move(**stored);
  } else {
    answer.status = u.status;
    answer.error_code = u.error_code;
    answer.updated_at = u.now_ms;
    end.message = answer;
  }
  generation->finish(std::move(end));
  registry_.finished(*generation);
}

void AnswerService::interrupt_running() {
  for (const auto& generation : registry_.running()) {
    Generation::Unsaved tail = generation->unsaved();
    store::AnswerUpdate u;
    u.append = true;
    u.content = std::move(tail.text);
    u.event_lengths = std::move(tail.lengths);
    u.status = "failed";
    u.error_code = "INTERRUPTED";
    u.now_ms = clock_.now_ms();
    auto saved = ConversationStore(db_).update_answer(generation->message_id(), u);
    if (!saved) {
      spdlog::warn("could not store interrupted answer {}: {}", generation->message_id(),
                   saved.error().message);
    }
  }
}

}  // namespace parley::services
