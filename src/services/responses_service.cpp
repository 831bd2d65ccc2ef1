#include "services/responses_service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <limits>
#include <vector>

#include "crypto/random.hpp"
#include "http/types.hpp"
#include "translate/responses.hpp"
#include "translate/stream_event.hpp"

namespace parley::services {

namespace asio = boost::asio;
namespace bj = boost::json;
using store::ResponseRecord;
using store::ResponseStore;

namespace {

Error not_found(std::string_view id) {
  return {ErrorKind::kNotFound, fmt::format("Response with id '{}' not found.", id)};
}

const bj::value* given(const bj::object& o, std::string_view key) {
  const bj::value* v = o.if_contains(key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

Result<bool> boolean(const bj::object& o, std::string_view key, bool fallback) {
  const bj::value* v = given(o, key);
  if (v == nullptr) return fallback;
  if (!v->is_bool()) return validation(std::string(key), fmt::format("{} must be a boolean", key));
  return v->get_bool();
}

// An id for an input item that has none, by its kind.
std::string item_id(std::string_view type) {
  std::string_view prefix = "item_";
  if (type == "message") prefix = "msg_";
  if (type == "function_call") prefix = "fc_";
  if (type == "function_call_output") prefix = "fco_";
  return std::string(prefix) + crypto::random_base62(32);
}

Result<bj::array> parse_array(std::string_view text) {
  boost::system::error_code ec;
  bj::value v = bj::parse(text, ec);
  if (ec || !v.is_array()) return fail(ErrorKind::kInternal, "a stored response is damaged");
  return std::move(v.get_array());
}

Result<bj::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  bj::value v = bj::parse(text, ec);
  if (ec || !v.is_object()) return fail(ErrorKind::kInternal, "a stored response is damaged");
  return std::move(v.get_object());
}

// The provider's message in an error body (OpenAI's envelope), else a generic one.
std::string provider_message(std::string_view body) {
  boost::system::error_code ec;
  const bj::value doc = bj::parse(body, ec);
  if (!ec && doc.is_object()) {
    const bj::value* error = doc.get_object().if_contains("error");
    if (error != nullptr && error->is_object()) {
      const bj::value* m = error->get_object().if_contains("message");
      if (m != nullptr && m->is_string() && !m->get_string().empty()) return std::string(m->get_string());
    }
  }
  return "the provider refused the request";
}

std::int64_t number_in(const bj::object& o, std::string_view key) {
  const bj::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return std::max<std::int64_t>(0, v->get_int64());
  if (v->is_uint64())
    return static_cast<std::int64_t>(std::min<std::uint64_t>(v->get_uint64(), 1'000'000'000'000));
  return 0;
}

}  // namespace

bool response_over(std::string_view status) {
  return status == "completed" || status == "incomplete" || status == "failed" || status == "cancelled";
}

// A Responses `usage` object ({input_tokens, output_tokens, total_tokens}) as parley's Usage.
Usage usage_of_response(const bj::object& response) {
  Usage u;
  const bj::value* usage = response.if_contains("usage");
  if (usage == nullptr || !usage->is_object()) return u;
  u.prompt_tokens = number_in(usage->get_object(), "input_tokens");
  u.completion_tokens = number_in(usage->get_object(), "output_tokens");
  u.total_tokens = number_in(usage->get_object(), "total_tokens");
  if (u.total_tokens == 0) u.total_tokens = u.prompt_tokens + u.completion_tokens;
  return u;
}

void ResponsesService::own(const ResponsesCall& call, bj::object& response) {
  response["id"] = call.id;
  response["store"] = call.store;
  response["background"] = call.background;
  if (call.previous_response_id) {
    response["previous_response_id"] = *call.previous_response_id;
  } else {
    response["previous_response_id"] = nullptr;
  }
  if (call.conversation) response["conversation"] = bj::object{{"id", *call.conversation}};
}

asio::awaitable<Result<ResponsesCall>> ResponsesService::prepare(const auth::Principal& who,
                                                                 bj::object request,
                                                                 const std::string& request_id) {
  // The request is kept in its own storage (moved, not copied, at the end).
  ResponsesCall out{.request = bj::object(request.storage())};
  const bj::value* model = request.if_contains("model");
  if (model == nullptr || !model->is_string() || model->get_string().empty() ||
      model->get_string().size() > 256) {
    co_return validation("model", "model must be a non-empty string naming the model to use");
  }
  const std::string model_name(model->get_string());
  auto store = boolean(request, "store", true);
  if (!store) co_return std::unexpected(store.error());
  auto background = boolean(request, "background", false);
  if (!background) co_return std::unexpected(background.error());
  auto stream = boolean(request, "stream", false);
  if (!stream) co_return std::unexpected(stream.error());
  out.store = *store;
  out.background = *background;
  if (out.background && !out.store) {
    co_return fail(ErrorKind::kBadRequest,
                   "Background responses must be stored: set store to true (or leave it out)", "background");
  }
  if (const bj::value* v = given(request, "previous_response_id")) {
    if (!v->is_string() || v->get_string().empty() || v->get_string().size() > 256) {
      co_return validation("previous_response_id", "previous_response_id must be a response id");
    }
    out.previous_response_id = std::string(v->get_string());
  }
  if (const bj::value* v = given(request, "conversation")) {
    const bj::value* id = v;
    if (v->is_object()) id = v->get_object().if_contains("id");
    if (id == nullptr || !id->is_string() || id->get_string().empty() || id->get_string().size() > 256) {
      co_return validation("conversation", "conversation must be a conversation id or {\"id\": …}");
    }
    out.conversation = std::string(id->get_string());
    request["conversation"] = bj::object{{"id", *out.conversation}};
  }
  if (out.conversation && out.previous_response_id) {
    co_return fail(ErrorKind::kBadRequest, "previous_response_id and conversation cannot be used together",
                   "conversation");
  }
  if (out.conversation && conversations_ == nullptr) {
    co_return fail(ErrorKind::kBadRequest, "conversations are not available", "conversation");
  }
  // The earlier turns, oldest first: each earlier response's input items, then its output items.
  bj::array prior;
  if (out.previous_response_id) {
    const std::string first = *out.previous_response_id;
    auto chain = co_await pool_.run([&]() -> Result<std::vector<ResponseRecord>> {
      std::vector<ResponseRecord> found;
      ResponseStore responses(db_);
      std::string next = first;
      while (found.size() < options_.max_chain) {
        auto r = responses.get(next);
        if (!r) return std::unexpected(r.error());
        if (!*r || (*r)->user_id != who.user_id) break;
        found.push_back(std::move(**r));
        if (!found.back().previous_response_id) break;
        next = *found.back().previous_response_id;
      }
      return found;
    });
    if (!chain) co_return std::unexpected(chain.error());
    if (chain->empty()) {
      Error e = not_found(first);
      e.param = "previous_response_id";
      co_return std::unexpected(std::move(e));
    }
    for (auto it = chain->rbegin(); it != chain->rend(); ++it) {
      auto input = parse_array(it->input_items);
      if (!input) co_return std::unexpected(input.error());
      for (auto& item : *input) prior.push_back(std::move(item));
      auto response = parse_object(it->response);
      if (!response) co_return std::unexpected(response.error());
      if (bj::value* output = response->if_contains("output"); output != nullptr && output->is_array()) {
        for (auto& item : output->get_array()) prior.push_back(std::move(item));
      }
    }
  } else if (out.conversation) {
    auto history = co_await conversations_->history(who, *out.conversation);
    if (!history) {
      Error e = std::move(history.error());
      if (!e.param) e.param = "conversation";
      co_return std::unexpected(std::move(e));
    }
    prior = std::move(*history);
  }

  auto call = co_await gateway_.route_built(who, GatewayEndpoint::kResponses, model_name, request_id);
  if (!call) co_return std::unexpected(call.error());
  out.call = std::move(*call);
  out.relay = out.call.route.entry->responses;

  // The input as items: what is stored, appended to a conversation or relayed. A translated call
  // that keeps nothing needs none (the translator reads the input itself).
  const bool keeps = out.store || out.conversation.has_value();
  if (keeps || out.relay) {
    auto items = translate::responses_input_items(request);
    if (!items) co_return std::unexpected(std::move(items.error()));
    for (bj::value& item : *items) {
      bj::object& o = item.get_object();
      const bj::value* id = o.if_contains("id");
      if (keeps && (id == nullptr || !id->is_string() || id->get_string().empty())) {
        const bj::value* type = o.if_contains("type");
        o["id"] = item_id(type != nullptr && type->is_string() ? std::string_view(type->get_string()) : "");
      }
    }
    out.input_items = std::move(*items);
  }
  if (out.relay) {
    // The body is a Responses request: only deployments that offer the Responses API can take it.
    std::erase_if(out.call.route.candidates, [](const Candidate& c) { return !c.entry->responses; });
    // The provider keeps no state: the context goes as input items, and it stores nothing.
    bj::object body = request;
    body.erase("previous_response_id");
    body.erase("conversation");
    body.erase("background");
    body["store"] = false;
    bj::array input;
    input.reserve(prior.size() + out.input_items.size());
    for (const auto* list : {&prior, &out.input_items}) {
      for (const auto& item : *list) {
        bj::object o = item.get_object();
        // The ids parley gave are not the provider's; only reasoning items need theirs.
        const bj::value* type = o.if_contains("type");
        const bool reasoning = type != nullptr && type->is_string() && type->get_string() == "reasoning";
        if (!reasoning) o.erase("id");
        input.emplace_back(std::move(o));
      }
    }
    body["input"] = std::move(input);
    out.call.stream = *stream || out.background;
    if (out.call.stream) body["stream"] = true;
    out.call.path = "/responses";
    out.call.body = bj::serialize(body);
  } else {
    translate::ResponsesRequestOptions options;
    options.stream = out.background;
    auto chat = translate::responses_request_to_chat(request, options, prior.empty() ? nullptr : &prior);
    if (!chat) co_return std::unexpected(std::move(chat.error()));
    out.call.stream = chat->contains("stream");
    out.call.path = "/chat/completions";
    out.call.body = bj::serialize(*chat);
  }
  std::optional<std::int64_t> max_tokens;
  if (const bj::value* m = given(request, "max_output_tokens")) {
    if (m->is_int64()) max_tokens = std::clamp<std::int64_t>(m->get_int64(), 0, 1'000'000'000);
    if (m->is_uint64()) max_tokens = 1'000'000'000;
  }
  Status admitted = co_await gateway_.admit_built(who, out.call, max_tokens);
  if (!admitted) co_return std::unexpected(admitted.error());
  out.request = std::move(request);
  out.id = "resp_" + crypto::random_base62(40);
  out.created_at = clock_.now_s();
  co_return out;
}

asio::awaitable<void> ResponsesService::append_to_conversation(const auth::Principal& who,
                                                               const ResponsesCall& call,
                                                               const bj::object& response) {
  if (!call.conversation || conversations_ == nullptr) co_return;
  const bj::value* status = response.if_contains("status");
  if (status == nullptr || !status->is_string() ||
      (status->get_string() != "completed" && status->get_string() != "incomplete")) {
    co_return;
  }
  bj::array output;
  if (const bj::value* o = response.if_contains("output"); o != nullptr && o->is_array())
    output = o->get_array();
  std::string model = call.call.route.model;
  if (const bj::value* m = response.if_contains("model"); m != nullptr && m->is_string())
    model = m->get_string();
  Status appended = co_await conversations_->append(who, *call.conversation, call.input_items, output, model);
  if (!appended) {
    spdlog::warn("response {}: could not append to conversation {}: {}", call.id, *call.conversation,
                 appended.error().message);
  }
}

asio::awaitable<bj::object> ResponsesService::keep(const auth::Principal& who, const ResponsesCall& call,
                                                   bj::object response) {
  own(call, response);
  if (call.store) {
    ResponseRecord r;
    r.id = call.id;
    r.user_id = who.user_id;
    r.previous_response_id = call.previous_response_id;
    r.model = call.call.route.model;
    if (const bj::value* m = response.if_contains("model"); m != nullptr && m->is_string())
      r.model = m->get_string();
    r.status = "completed";
    if (const bj::value* s = response.if_contains("status");
        s != nullptr && s->is_string() && response_over(s->get_string()))
      r.status = s->get_string();
    r.background = call.background;
    r.response = bj::serialize(response);
    r.input_items = bj::serialize(call.input_items);
    r.created_at = r.updated_at = clock_.now_ms();
    GroupCommit::Write insert = [&r](store::Connection& c) { return ResponseStore(c).insert(r); };
    Status stored = co_await commits_.run(std::move(insert));
    if (!stored) spdlog::error("could not store response {}: {}", call.id, stored.error().message);
  }
  co_await append_to_conversation(who, call, response);
  co_return response;
}

struct ResponsesService::Job {
  auth::Principal who;
  ResponsesCall call;
  bj::object queued;  // the response as first stored
  std::chrono::steady_clock::time_point t0;
};

asio::awaitable<Result<ResponsesService::Started>> ResponsesService::start_background(
    const auth::Principal& who, ResponsesCall call, asio::any_io_executor executor) {
  auto job = std::make_shared<Job>();
  job->who = who;
  job->t0 = std::chrono::steady_clock::now();
  {
    translate::ResponsesStream skeleton(call.request, {call.id, call.created_at});
    std::vector<translate::StreamEvent> ignored;
    skeleton.start(ignored);
    job->queued = skeleton.response();
  }
  own(call, job->queued);
  job->queued["status"] = "queued";
  ResponseRecord r;
  r.id = call.id;
  r.user_id = who.user_id;
  r.previous_response_id = call.previous_response_id;
  r.model = call.call.route.model;
  r.status = "queued";
  r.background = true;
  r.response = bj::serialize(job->queued);
  r.input_items = bj::serialize(call.input_items);
  r.created_at = r.updated_at = clock_.now_ms();
  auto generation = registry_.start(call.id, call.id, executor);
  if (!generation) co_return fail(ErrorKind::kConflict, "This response is already being generated");
  auto stored = co_await pool_.run([&] { return ResponseStore(db_).insert(r); });
  if (!stored) {
    registry_.finished(*generation);
    gateway_.account(who, call.call, stored.error().status(), {}, 0);
    co_return std::unexpected(stored.error());
  }
  // The request may live in the handler's per-call resource: the job keeps its own copy.
  bj::object request(std::move(call.request), bj::storage_ptr{});
  job->call = std::move(call);
  job->call.request = std::move(request);
  Started started{generation, job->queued};
  asio::co_spawn(executor, run(generation, job),
                 asio::bind_cancellation_slot(generation->cancel_signal().slot(), asio::detached));
  co_return started;
}

asio::awaitable<void> ResponsesService::run(std::shared_ptr<Generation> generation,
                                            std::shared_ptr<Job> job) {
  // A cancellation ends the provider call; what follows (storing the response) must still run.
  co_await asio::this_coro::throw_if_cancelled(false);
  ResponsesCall& call = job->call;
  Router& router = gateway_.router();
  translate::ResponsesStream translator(call.request, {call.id, call.created_at});
  std::vector<translate::StreamEvent> events;
  Usage usage;
  std::optional<bj::object> relayed;  // the relayed response of the terminal event
  std::int64_t next_sequence = 0;     // relay: after the last event relayed
  auto publish = [&] {
    for (auto& event : events) {
      if (call.relay) event.data["sequence_number"] = next_sequence++;
      generation->append(translate::to_sse(event));
    }
    events.clear();
  };
  if (!call.relay) {
    translator.start(events);
    publish();
  }
  provider::EventSink sink = [&](std::string_view data) -> asio::awaitable<bool> {
    boost::system::error_code ec;
    bj::value parsed = bj::parse(data, ec);
    if (ec || !parsed.is_object()) co_return !generation->cancel_requested();
    bj::object& chunk = parsed.get_object();
    if (call.relay) {
      const bj::value* type = chunk.if_contains("type");
      if (type == nullptr || !type->is_string()) co_return !generation->cancel_requested();
      const std::string name(type->get_string());
      if (bj::value* response = chunk.if_contains("response"); response != nullptr && response->is_object()) {
        own(call, response->get_object());
        if (name == "response.completed" || name == "response.incomplete" || name == "response.failed") {
          relayed = response->get_object();
          usage = usage_of_response(*relayed);
        }
      }
      if (const bj::value* n = chunk.if_contains("sequence_number"); n != nullptr && n->is_int64())
        next_sequence = n->get_int64() + 1;
      std::string text = "event: " + name + "\ndata: " + bj::serialize(chunk) + "\n\n";
      generation->append(text);
    } else {
      if (auto u = provider::usage_in(parsed)) usage = *u;
      translator.feed(chunk, events);
      publish();
    }
    co_return !generation->cancel_requested();
  };
  std::string body = std::move(call.call.body);
  auto out = co_await router.post_stream(call.call.route, call.call.path, std::move(body), sink);
  co_await asio::this_coro::reset_cancellation_state();

  bj::object result;
  std::string status;
  int code = 200;
  std::optional<Error> error;
  if (!out) {
    error = out.error();
  } else if (out->rejected()) {
    error = Error(ErrorKind::kOpenAiApiError, provider_message(out->error_body));
  } else if (call.relay && !relayed && !generation->cancel_requested()) {
    error = Error(ErrorKind::kOpenAiApiError, "The provider's stream ended without a response");
  }
  if (generation->cancel_requested()) {
    result = call.relay ? relayed.value_or(job->queued) : translator.response();
    status = "cancelled";
    code = static_cast<int>(http::kClientClosedStatus);
  } else if (error) {
    code = error->status();
    if (call.relay) {
      result = relayed.value_or(job->queued);
      result["status"] = "failed";
      result["error"] = bj::object{{"code", "server_error"}, {"message", error->message}};
      events.push_back({"response.failed", bj::object{{"type", "response.failed"}, {"response", result}}});
    } else if (!translator.finished()) {
      translator.fail(*error, events);
    }
    publish();
    if (!call.relay) result = translator.response();
    status = "failed";
  } else {
    if (!call.relay && !translator.finished()) translator.finish(events);
    publish();
    result = call.relay ? *relayed : translator.response();
    status = "completed";
    if (const bj::value* s = result.if_contains("status");
        s != nullptr && s->is_string() && response_over(s->get_string()))
      status = s->get_string();
  }
  result["status"] = status;
  own(call, result);
  const auto latency =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - job->t0)
          .count();
  gateway_.account(job->who, call.call, code, usage, latency);

  Generation::Unsaved tail = generation->unsaved();
  store::ResponseUpdate u;
  u.status = status;
  u.response = bj::serialize(result);
  u.events = std::move(tail.text);
  u.event_lengths = std::move(tail.lengths);
  u.now_ms = clock_.now_ms();
  auto saved = co_await pool_.run([&] { return ResponseStore(db_).finish(call.id, u); });
  if (!saved) spdlog::error("could not store response {}: {}", call.id, saved.error().message);
  co_await append_to_conversation(job->who, call, result);
  generation->finish(AnswerEnd{});
  registry_.finished(*generation);
}

asio::awaitable<Result<ResponseRecord>> ResponsesService::record(const auth::Principal& who,
                                                                 const std::string& id) {
  auto found = co_await pool_.run([&] { return ResponseStore(db_).get(id); });
  if (!found) co_return std::unexpected(found.error());
  if (!*found || (*found)->user_id != who.user_id) co_return std::unexpected(not_found(id));
  co_return std::move(**found);
}

asio::awaitable<Result<bj::object>> ResponsesService::get(const auth::Principal& who, const std::string& id) {
  auto r = co_await record(who, id);
  if (!r) co_return std::unexpected(r.error());
  auto response = parse_object(r->response);
  if (!response) co_return std::unexpected(response.error());
  std::string status = r->status;
  if (!response_over(status)) {
    auto live = registry_.find(id);
    if (live && !live->finished()) status = "in_progress";
  }
  (*response)["status"] = status;
  co_return response;
}

asio::awaitable<Result<bj::object>> ResponsesService::remove(const auth::Principal& who,
                                                             const std::string& id) {
  auto removed = co_await pool_.run([&] { return ResponseStore(db_).remove(id, who.user_id); });
  if (!removed) co_return std::unexpected(removed.error());
  if (!*removed) co_return std::unexpected(not_found(id));
  if (auto live = registry_.find(id)) live->request_cancel();
  co_return bj::object{{"id", id}, {"object", "response.deleted"}, {"deleted", true}};
}

asio::awaitable<Result<bj::object>> ResponsesService::input_items(const auth::Principal& who,
                                                                  const std::string& id,
                                                                  const InputItemsQuery& query) {
  auto r = co_await record(who, id);
  if (!r) co_return std::unexpected(r.error());
  auto items = parse_array(r->input_items);
  if (!items) co_return std::unexpected(items.error());
  if (!query.ascending) std::reverse(items->begin(), items->end());
  std::size_t start = 0;
  if (query.after) {
    std::size_t i = 0;
    for (; i < items->size(); ++i) {
      const bj::value* item_id = (*items)[i].get_object().if_contains("id");
      if (item_id != nullptr && item_id->is_string() && item_id->get_string() == *query.after) break;
    }
    if (i == items->size())
      co_return validation("after", "after must be the id of one of the response's input items");
    start = i + 1;
  }
  bj::array data;
  const auto limit = static_cast<std::size_t>(query.limit);
  for (std::size_t i = start; i < items->size() && data.size() < limit; ++i) data.push_back((*items)[i]);
  const bool has_more = start + data.size() < items->size();
  bj::value first_id = nullptr;
  bj::value last_id = nullptr;
  if (!data.empty()) {
    first_id = data.front().get_object().at("id");
    last_id = data.back().get_object().at("id");
  }
  co_return bj::object{{"object", "list"},
                       {"data", std::move(data)},
                       {"first_id", first_id},
                       {"last_id", last_id},
                       {"has_more", has_more}};
}

asio::awaitable<Result<bj::object>> ResponsesService::cancel(const auth::Principal& who,
                                                             const std::string& id) {
  auto r = co_await record(who, id);
  if (!r) co_return std::unexpected(r.error());
  if (!r->background) {
    co_return fail(ErrorKind::kBadRequest,
                   "Cannot cancel a synchronous response: only background responses can be cancelled");
  }
  if (!response_over(r->status)) {
    if (auto live = registry_.find(id)) {
      // Here: the generation stops and stores itself cancelled; wait for it (bounded).
      live->request_cancel();
      for (int i = 0; i < 50 && !live->finished(); ++i) {
        co_await live->wait(std::numeric_limits<std::uint64_t>::max() - 1, std::chrono::milliseconds(200));
      }
    } else {
      // Generated by another instance (or by none any more): recorded cancelled here.
      auto response = parse_object(r->response);
      if (!response) co_return std::unexpected(response.error());
      (*response)["status"] = "cancelled";
      store::ResponseUpdate u;
      u.status = "cancelled";
      u.response = bj::serialize(*response);
      u.now_ms = clock_.now_ms();
      auto saved = co_await pool_.run([&] { return ResponseStore(db_).finish(id, u); });
      if (!saved) co_return std::unexpected(saved.error());
    }
  }
  co_return co_await get(who, id);
}

asio::awaitable<Result<ResponseFollow>> ResponsesService::follow(const auth::Principal& who,
                                                                 const std::string& id) {
  auto r = co_await record(who, id);
  if (!r) co_return std::unexpected(r.error());
  if (!r->background) {
    co_return fail(ErrorKind::kBadRequest, "Only background responses can be streamed again", "stream");
  }
  ResponseFollow out;
  out.live = registry_.find(id);
  out.stored = std::move(*r);
  co_return out;
}

void ResponsesService::interrupt_running() {
  for (const auto& generation : registry_.running()) {
    Generation::Unsaved tail = generation->unsaved();
    auto found = ResponseStore(db_).get(generation->message_id());
    if (!found || !*found) continue;
    auto response = parse_object((*found)->response);
    if (!response) continue;
    (*response)["status"] = "failed";
    (*response)["error"] =
        bj::object{{"code", "server_error"}, {"message", "The server stopped while generating"}};
    store::ResponseUpdate u;
    u.status = "failed";
    u.response = bj::serialize(*response);
    u.events = std::move(tail.text);
    u.event_lengths = std::move(tail.lengths);
    u.now_ms = clock_.now_ms();
    auto saved = ResponseStore(db_).finish(generation->message_id(), u);
    if (!saved)
      spdlog::error("could not store response {}: {}", generation->message_id(), saved.error().message);
    generation->finish(AnswerEnd{});
    registry_.finished(*generation);
  }
}

}  // namespace parley::services
