// OpenAI's Responses API on parley (POST/GET/DELETE /v1/responses…; docs/GATEWAY.md, "Responses
// API"). parley keeps the state: a stored response (store true, the default) holds the response
// object, the input items of its turn and its owner; previous_response_id and `conversation` are
// expanded into input items by parley, whichever provider served the earlier turns.
//
// prepare() turns a request into the provider call: routed by `model` and admitted like the other
// /v1 routes (usage endpoint "responses"). A provider that offers the Responses API (`responses =
// true` in its configuration) gets the request relayed to {base}/responses with the context
// expanded and `store: false`; any other gets it translated to chat completions
// (translate/responses.hpp). The handler (api/responses.cpp) makes the call and hands the answer
// to keep(). A background response runs detached from its request as a Generation (its events
// are the SSE text of each Responses stream event) and can be followed, resumed and cancelled.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "http/blocking_pool.hpp"
#include "services/conversation_items.hpp"
#include "services/gateway_service.hpp"
#include "services/generation.hpp"
#include "services/group_commit.hpp"
#include "store/database.hpp"
#include "store/response_store.hpp"

namespace parley::services {

struct ResponsesOptions {
  std::size_t max_chain = 100;                  // earlier responses followed through previous_response_id
  std::chrono::milliseconds poll{250};          // a follower on another instance polls the store this often
  std::chrono::milliseconds poll_cap{600'000};  // and gives up after this long
};

// One POST /v1/responses, ready to send.
struct ResponsesCall {
  GatewayCall call;                // path "/responses" (relay) or "/chat/completions" (translated)
  boost::json::object request;     // as sent, `conversation` normalized to {"id": …}
  std::string id;                  // "resp_…"
  std::int64_t created_at = 0;     // unix seconds
  boost::json::array input_items;  // this turn's input items, each with an id
  bool relay = false;              // the provider offers the Responses API: its answer is relayed
  bool store = true;
  bool background = false;
  std::optional<std::string> conversation;
  std::optional<std::string> previous_response_id;
};

// GET /v1/responses/{id}/input_items.
struct InputItemsQuery {
  std::optional<std::string> after;  // an item id
  std::int64_t limit = 20;           // 1 to 100
  bool ascending = false;            // order "asc"; OpenAI's default is "desc"
};

// What a client follows to stream a background response: its live generation on this instance,
// else its stored record (the handler polls the store while it is running elsewhere).
struct ResponseFollow {
  std::shared_ptr<Generation> live;
  store::ResponseRecord stored;
};

class ResponsesService {
 public:
  // `conversations` may be null: a request naming a conversation is then refused.
  ResponsesService(GatewayService& gateway, http::BlockingPool& pool, store::Database& db, const Clock& clock,
                   GenerationRegistry& registry, ConversationItems* conversations,
                   ResponsesOptions options = {})
      : gateway_(gateway),
        pool_(pool),
        db_(db),
        clock_(clock),
        registry_(registry),
        conversations_(conversations),
        options_(options),
        commits_(db, pool) {}

  // Validates the parley-side members (store, background, previous_response_id, conversation),
  // builds the context, the provider's body (relayed or translated) and admits the call. Errors:
  // kInvalidJson/kBadRequest/kValidation naming `param` (the translator's refusals among them),
  // kNotFound (previous_response_id, conversation), kModelNotFound, the limits' errors.
  boost::asio::awaitable<Result<ResponsesCall>> prepare(const auth::Principal& who,
                                                        boost::json::object request,
                                                        const std::string& request_id);

  // The answer of a foreground call (a `response` object, relayed or translated): its id, store,
  // previous_response_id and background set to parley's; stored when `store`; appended to the
  // conversation. Returns the response as the client is to see it.
  boost::asio::awaitable<boost::json::object> keep(const auth::Principal& who, const ResponsesCall& call,
                                                   boost::json::object response);
  // Rewrites a relayed response's id, store, previous_response_id and background to parley's.
  static void own(const ResponsesCall& call, boost::json::object& response);

  // background: stores the response queued and starts generating it on `executor`, detached from
  // the request. Returns the generation (the caller may follow it) and the response as queued.
  struct Started {
    std::shared_ptr<Generation> generation;
    boost::json::object response;
  };
  boost::asio::awaitable<Result<Started>> start_background(const auth::Principal& who, ResponsesCall call,
                                                           boost::asio::any_io_executor executor);

  // The caller's stored response; kNotFound for another user's or none.
  boost::asio::awaitable<Result<boost::json::object>> get(const auth::Principal& who, const std::string& id);
  boost::asio::awaitable<Result<boost::json::object>> remove(const auth::Principal& who,
                                                             const std::string& id);
  boost::asio::awaitable<Result<boost::json::object>> input_items(const auth::Principal& who,
                                                                  const std::string& id,
                                                                  const InputItemsQuery& query);
  // Background responses only (kBadRequest otherwise); a response already over comes back as it is.
  boost::asio::awaitable<Result<boost::json::object>> cancel(const auth::Principal& who,
                                                             const std::string& id);

  // GET /v1/responses/{id}?stream=true: background responses only (kBadRequest otherwise).
  boost::asio::awaitable<Result<ResponseFollow>> follow(const auth::Principal& who, const std::string& id);
  // The stored record (polling while another instance generates it).
  boost::asio::awaitable<Result<store::ResponseRecord>> record(const auth::Principal& who,
                                                               const std::string& id);

  // At shutdown, once the event loops have stopped: responses still generating are stored failed.
  void interrupt_running();

  [[nodiscard]] GatewayService& gateway() { return gateway_; }
  [[nodiscard]] const ResponsesOptions& options() const { return options_; }

 private:
  struct Job;
  boost::asio::awaitable<void> run(std::shared_ptr<Generation> generation, std::shared_ptr<Job> job);
  boost::asio::awaitable<void> append_to_conversation(const auth::Principal& who, const ResponsesCall& call,
                                                      const boost::json::object& response);

  GatewayService& gateway_;
  http::BlockingPool& pool_;
  store::Database& db_;
  const Clock& clock_;
  GenerationRegistry& registry_;
  ConversationItems* conversations_;
  ResponsesOptions options_;
  GroupCommit commits_;  // stored responses: concurrent inserts share one commit
};

// A Responses `usage` object ({input_tokens, output_tokens, total_tokens}) as parley's Usage.
Usage usage_of_response(const boost::json::object& response);

// Is this response status one a response ends with?
bool response_over(std::string_view status);

}  // namespace parley::services
