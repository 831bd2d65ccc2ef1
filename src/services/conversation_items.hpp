// A parley conversation seen as OpenAI's Conversations API sees it: a list of items. The Responses
// API (a response created with `conversation`) reads a conversation's items for its context and
// appends each turn's items to it, so that the console, /api/v1/conversations and
// /v1/conversations show the same history (docs/GATEWAY.md, "Responses API").
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <string>

#include "auth/principal.hpp"
#include "core/error.hpp"

namespace parley::services {

class ConversationItems {
 public:
  virtual ~ConversationItems() = default;

  // The conversation's items, oldest first, as Responses input items: messages
  // ({"type":"message","role":…,"content":[{"type":"input_text"|"output_text","text":…}]}),
  // function_call and function_call_output items. Errors: kNotFound (no such conversation, or one
  // the caller may not read), kValidation for an id that cannot be one.
  virtual boost::asio::awaitable<Result<boost::json::array>> history(const auth::Principal& who,
                                                                     const std::string& conversation_id) = 0;

  // Appends one turn to the conversation: the response's input items, then its output items (as the
  // Responses API returns them), answered by `model`. Errors: those of history(), kConflict for a
  // conversation that no longer takes messages.
  virtual boost::asio::awaitable<Status> append(const auth::Principal& who,
                                                const std::string& conversation_id,
                                                const boost::json::array& input_items,
                                                const boost::json::array& output_items,
                                                const std::string& model) = 0;
};

}  // namespace parley::services
