// Anthropic's Messages API (POST /v1/messages) translated to and from chat completions. Pure
// functions over boost::json objects; docs/TRANSLATION.md lists what is translated, ignored and
// refused.
//
// Messages API served by an OpenAI-compatible provider:
//   anthropic_request_to_chat(request)          → chat-completions body
//   chat_response_to_anthropic(answer, meta)    → Anthropic `message`
//   AnthropicStream fed chat chunks             → Anthropic stream events
// Chat completions served by an Anthropic provider (the reverse):
//   chat_request_to_anthropic(request, options) → Messages body
//   anthropic_response_to_chat(message, meta)   → chat.completion
//   AnthropicToChatStream fed Anthropic events  → chat.completion.chunk objects
// Errors in Anthropic's shape: anthropic_error(); an Anthropic error answer as a parley Error:
// error_from_anthropic().
//
// Errors name the field: kBadRequest (400) for what has no equivalent on the other side,
// kValidation (422) for a member of the wrong shape.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "translate/stream_event.hpp"

namespace parley::translate {

// ---------------------------------------------------------------------------------------------
// Messages API → chat completions

// An Anthropic Messages request → a chat-completions request. `max_tokens` is required (as
// Anthropic requires it); `cache_control` anywhere is ignored.
[[nodiscard]] Result<boost::json::object> anthropic_request_to_chat(const boost::json::object& request);

struct AnthropicMeta {
  std::string id;     // "msg_…"
  std::string model;  // the model asked for; used when the chat answer names none
};

// A chat-completions answer → an Anthropic message. Tool-call arguments become the tool_use
// block's `input` (parsed; "" reads as {}); arguments that are not a JSON object are
// kModelOutputInvalid. Only the first choice is read; none is kOpenAiApiError.
[[nodiscard]] Result<boost::json::object> chat_response_to_anthropic(const boost::json::object& chat,
                                                                     const AnthropicMeta& meta);

// Chat-completions stream chunks → Anthropic stream events, named as Anthropic names them:
//   message_start, then per block content_block_start (ping after the first),
//   content_block_delta (text_delta / input_json_delta) ..., content_block_stop; at the end
//   message_delta {stop_reason, stop_sequence, usage} and message_stop; on failure one `error`.
// message_start's usage is what the first chunk reports (0 when it reports none); the final
// counts, input tokens included, are in message_delta (the Anthropic SDKs read them there).
//
// Thread-safety: none; one per stream.
class AnthropicStream {
 public:
  explicit AnthropicStream(AnthropicMeta meta);

  void start(std::vector<StreamEvent>& out);  // message_start, once (feed() calls it)
  // One chunk; {"error": {...}} ends the stream with an `error` event.
  void feed(const boost::json::object& chunk, std::vector<StreamEvent>& out);
  void finish(std::vector<StreamEvent>& out);  // closes the open block; message_delta, message_stop
  void fail(const Error& error, std::vector<StreamEvent>& out);  // an `error` event

  // The message as streamed so far (content, stop_reason and usage final after finish()), as
  // chat_response_to_anthropic would have answered.
  [[nodiscard]] const boost::json::object& message() const noexcept { return message_; }
  [[nodiscard]] bool finished() const noexcept { return finished_; }

 private:
  void emit(std::string_view name, boost::json::object data, std::vector<StreamEvent>& out);
  void open_block(boost::json::object block, std::vector<StreamEvent>& out);
  void close_block(std::vector<StreamEvent>& out);
  void text_delta(std::string_view text, std::vector<StreamEvent>& out);
  void tool_call_delta(const boost::json::object& call, std::size_t position, std::vector<StreamEvent>& out);
  void fail_with(std::string_view type, std::string_view message, std::vector<StreamEvent>& out);

  AnthropicMeta meta_;
  boost::json::object message_;
  bool started_ = false;
  bool finished_ = false;
  bool pinged_ = false;
  bool refusal_ = false;
  enum class Open : std::uint8_t { kNone, kText, kTool };
  Open open_ = Open::kNone;
  std::int64_t call_index_ = -1;  // the chat tool-call index of the open tool_use block
  std::string text_;              // the open text block's text
  struct Call {
    std::int64_t chat_index;
    std::size_t block;  // its index in content
    std::string arguments;
  };
  std::vector<Call> calls_;
  std::string finish_reason_;
  boost::json::value usage_;  // the latest chunk usage object
};

// ---------------------------------------------------------------------------------------------
// Chat completions → Messages API (an Anthropic provider serving /v1/chat/completions)

struct ChatToAnthropicOptions {
  // Anthropic requires max_tokens; a chat request without max_tokens / max_completion_tokens gets
  // this.
  std::int64_t default_max_tokens = 4096;
};

[[nodiscard]] Result<boost::json::object> chat_request_to_anthropic(
    const boost::json::object& request, const ChatToAnthropicOptions& options = {});

struct ChatMeta {
  std::string id;              // "chatcmpl-…"; empty: the Anthropic message's id
  std::int64_t created = 0;    // Unix seconds
  std::string model;           // used when the Anthropic answer names none
  bool include_usage = false;  // stream: stream_options.include_usage asked for the usage chunk
};

// An Anthropic message → a chat.completion.
[[nodiscard]] Result<boost::json::object> anthropic_response_to_chat(const boost::json::object& message,
                                                                     const ChatMeta& meta);

// Anthropic stream events (each event's parsed `data`; its "type" names it) → chat.completion.chunk
// objects. The caller writes `data: [DONE]` after done(). An `error` event is returned as the
// Error it stands for (error_from_anthropic_type).
//
// Thread-safety: none; one per stream.
class AnthropicToChatStream {
 public:
  explicit AnthropicToChatStream(ChatMeta meta) : meta_(std::move(meta)) {}

  Status feed(const boost::json::object& event, std::vector<boost::json::object>& out);

  [[nodiscard]] bool done() const noexcept { return done_; }  // message_stop arrived
  [[nodiscard]] std::int64_t prompt_tokens() const noexcept { return input_ + cache_read_ + cache_creation_; }
  [[nodiscard]] std::int64_t completion_tokens() const noexcept { return output_; }

 private:
  boost::json::object chunk(boost::json::object delta, boost::json::value finish_reason) const;

  ChatMeta meta_;
  bool done_ = false;
  std::vector<std::pair<std::int64_t, std::int64_t>> tools_;  // Anthropic block index → chat tool index
  std::int64_t input_ = 0;
  std::int64_t output_ = 0;
  std::int64_t cache_read_ = 0;
  std::int64_t cache_creation_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Errors

// Anthropic's error type for an HTTP status: 400 (and other 4xx) invalid_request_error,
// 401 authentication_error, 402 billing_error, 403 permission_error, 404 not_found_error,
// 413 request_too_large, 429 rate_limit_error, 503 / 529 overloaded_error, other 5xx api_error.
[[nodiscard]] std::string_view anthropic_error_type(int status) noexcept;

// {"type": "error", "error": {"type", "message"}} (+ "request_id" when given). The message names
// the error's param first ("max_tokens: max_tokens is required"), as Anthropic's own do.
[[nodiscard]] boost::json::object anthropic_error(const Error& error, std::string_view request_id = {});
[[nodiscard]] boost::json::object anthropic_error(int status, std::string_view message,
                                                  std::string_view request_id = {});

// An Anthropic error answer (status and body, body may be null) → the parley Error the /v1 chat
// route answers with: 400 kBadRequest, 401/403 kInvalidApiKey, 404 kModelNotFound, 413
// kPayloadTooLarge, 429 kOpenAiRateLimit, 503/529 kOpenAiConnection, 504 kOpenAiTimeout, other
// kOpenAiApiError. The message is Anthropic's.
[[nodiscard]] Error error_from_anthropic(int status, const boost::json::object* body);
// The same from an `error` event's type and message (a stream has no status).
[[nodiscard]] Error error_from_anthropic_type(std::string_view type, std::string_view message);

}  // namespace parley::translate
