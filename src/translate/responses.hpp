// OpenAI's Responses API (POST /v1/responses) translated to and from chat completions, for a
// provider that only speaks chat completions. Pure functions over boost::json objects: no I/O, no
// state but a stream's own. docs/TRANSLATION.md lists what is translated, ignored and refused.
//
//   request:   responses_request_to_chat(request, options, prior_items) → chat-completions body
//   answer:    chat_response_to_responses(chat answer, request, meta)   → Responses `response`
//   stream:    ResponsesStream fed each chat-completions chunk          → Responses stream events
//
// Errors name the field: kBadRequest (400) for what has no chat-completions equivalent (built-in
// tools, input files, state kept by OpenAI), kValidation (422) for a member of the wrong shape.
// The translated request's item ids (message "msg_<s>", function call "fc_<s>_<n>") derive from
// the response id "resp_<s>" the caller gives, so a streamed and a stored answer agree.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "translate/stream_event.hpp"

namespace parley::translate {

struct ResponsesRequestOptions {
  // The provider's chat completions take `reasoning_effort`: `reasoning.effort` becomes it.
  // Otherwise a request asking for an effort is refused (param "reasoning").
  bool reasoning_effort = false;
  // Ask for a stream whatever the request's `stream` says (a background response is generated
  // streamed so that its events can be followed).
  bool stream = false;
};

// A Responses request → a chat-completions request. `prior_items` (may be null) are the items of
// the earlier turns, oldest first, as stored: each earlier response's input items then its output
// items (previous_response_id); they come after `instructions` and before `input`. An item of
// them that cannot be translated is an error with param "previous_response_id".
[[nodiscard]] Result<boost::json::object> responses_request_to_chat(
    const boost::json::object& request, const ResponsesRequestOptions& options = {},
    const boost::json::array* prior_items = nullptr);

// The request's `input` as a list of items, as OpenAI stores and lists them (GET
// /v1/responses/{id}/input_items): a string becomes one user message item; a message given as
// {role, content} gets "type": "message" and its string content one input_text/output_text part.
[[nodiscard]] Result<boost::json::array> responses_input_items(const boost::json::object& request);

struct ResponseMeta {
  std::string id;               // "resp_…"
  std::int64_t created_at = 0;  // Unix seconds; 0: the chat answer's `created`
};

// A chat-completions answer → a Responses `response` object, with the request's fields echoed as
// OpenAI does (instructions, max_output_tokens, temperature, tools, text, tool_choice,
// previous_response_id, store, metadata, ...). Only the first choice is read. An answer without a
// choice is kOpenAiApiError. The response is built in `sp`.
[[nodiscard]] Result<boost::json::object> chat_response_to_responses(const boost::json::object& chat,
                                                                     const boost::json::object& request,
                                                                     const ResponseMeta& meta,
                                                                     const boost::json::storage_ptr& sp = {});

// The same response as JSON text, written straight from the answer (no object built, so a response
// that is neither stored nor appended costs a fraction of building one); the object above is this
// text parsed.
[[nodiscard]] Result<std::string> chat_response_to_responses_text(const boost::json::object& chat,
                                                                  const boost::json::object& request,
                                                                  const ResponseMeta& meta);

// Chat-completions stream chunks (one per `data:` line, parsed) → Responses stream events, in
// OpenAI's order, each with its `sequence_number` (0, 1, 2, ...):
//   response.created, response.in_progress,
//   per message:       response.output_item.added, response.content_part.added,
//                      response.output_text.delta ... (or response.refusal.delta ...),
//                      response.output_text.done, response.content_part.done, response.output_item.done
//   per tool call:     response.output_item.added, response.function_call_arguments.delta ...,
//                      response.function_call_arguments.done, response.output_item.done
//   at the end:        response.completed (finish_reason length / content_filter:
//                      response.incomplete), or response.failed.
// An item closes when the next one opens or at the end. A provider that interleaves the argument
// pieces of two tool calls (none known does) has a late piece added to the closed call's arguments
// in the final response, with no delta event.
//
// Thread-safety: none; one per stream.
class ResponsesStream {
 public:
  ResponsesStream(const boost::json::object& request, ResponseMeta meta);

  // response.created and response.in_progress; once (feed() calls it when not yet called).
  void start(std::vector<StreamEvent>& out);
  // One chunk. A chunk {"error": {...}} (the gateway's mid-stream failure) ends the stream with
  // response.failed. Chunks after the end add nothing.
  void feed(const boost::json::object& chunk, std::vector<StreamEvent>& out);
  // The upstream stream ended ([DONE] or the body's end): closes the open items, then
  // response.completed or response.incomplete.
  void finish(std::vector<StreamEvent>& out);
  // The stream failed (the provider broke off, a timeout): closes nothing, response.failed with
  // {code, message} from the error.
  void fail(const Error& error, std::vector<StreamEvent>& out);

  // The response as it stands: final (status, output, usage) after finish() or fail().
  [[nodiscard]] const boost::json::object& response() const noexcept { return response_; }
  [[nodiscard]] bool finished() const noexcept { return finished_; }
  [[nodiscard]] std::int64_t next_sequence_number() const noexcept { return sequence_; }

 private:
  void emit(std::string_view name, boost::json::object data, std::vector<StreamEvent>& out);
  boost::json::object snapshot() const;
  void open_message(std::vector<StreamEvent>& out);
  void open_part(bool refusal, std::vector<StreamEvent>& out);
  void close_part(std::vector<StreamEvent>& out);
  void close_item(std::vector<StreamEvent>& out);
  void text_delta(std::string_view text, bool refusal, const boost::json::value* logprobs,
                  std::vector<StreamEvent>& out);
  void tool_call_delta(const boost::json::object& call, std::size_t position, std::vector<StreamEvent>& out);
  void fail_with(std::string_view code, std::string_view message, std::vector<StreamEvent>& out);

  ResponseMeta meta_;
  boost::json::object response_;  // the skeleton echoing the request; output and usage at the end
  boost::json::array output_;     // finished items, in output_index order
  std::int64_t sequence_ = 0;
  bool started_ = false;
  bool finished_ = false;

  // The open item, if any.
  enum class Open : std::uint8_t { kNone, kMessage, kFunctionCall };
  Open open_ = Open::kNone;
  std::size_t open_index_ = 0;  // its output_index
  std::string item_id_;
  // message: the parts so far and the open one
  boost::json::array parts_;
  bool part_open_ = false;
  bool part_refusal_ = false;
  std::string part_text_;
  boost::json::array part_logprobs_;
  std::size_t messages_ = 0;
  // function call
  std::int64_t call_index_ = -1;  // the chat tool-call index of the open call
  std::string call_id_;
  std::string call_name_;
  std::string call_arguments_;
  std::vector<std::pair<std::int64_t, std::size_t>> calls_;  // chat tool-call index → output_index

  std::string finish_reason_;
  boost::json::value usage_;  // the chunk's usage object, null until one arrives
  std::string model_;
};

}  // namespace parley::translate
