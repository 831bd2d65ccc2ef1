#pragma once
// parley-mock: a fake OpenAI-compatible (and Anthropic Messages API) provider for tests and benchmarks.
//
// This header is the contract between the socket-free logic (logic.cpp: request parsing, reply
// rendering, faults, recorded requests) and the HTTP server (server.cpp). Nothing here throws on
// outside input: bad requests come back as a Reply carrying an OpenAI-shaped error (Anthropic-shaped
// on the Messages API).
//
// Reply rules (other tests rely on them; README.md repeats them):
//   words(s)        = the runs of non-ASCII-whitespace characters of s
//   text(message)   = content if it is a string; the "text" of every {"type":"text"} part joined
//                     with one space if it is an array; "" if null or absent
//   reply words     = ["mock", "reply:"] + words(text(last message whose role is "user")),
//                     cut to the first max_completion_tokens (else max_tokens) words when given
//   content         = reply words joined by single spaces; identical for each of the n choices
//   finish_reason   = "length" when the cut removed words, else "stop"
//   prompt_tokens   = sum over all messages of |words(text(message))|
//   completion_tokens = n * |reply words|; total_tokens = prompt_tokens + completion_tokens
//   stream deltas   = one per word ("mock", " reply:", " next", ...) or, with --chunks N, N runs
//                     of consecutive words (at most one per word); their concatenation == content
//
// Structured replies (response_format json_schema / json_object; never cut by max_tokens):
//   json_object     → {"reply": <the full reply text>}
//   json_schema     → a value built from json_schema.schema: const → it; enum → its FIRST member when
//                     the last user message contains '?', else its LAST member; object → every
//                     property in order; string → the full reply text; integer → |words(last user
//                     message)|; number → 0.5; boolean → true; array → []; null → null
//                     (type lists, anyOf/oneOf/allOf and local $refs: see README.md)
//   completion_tokens = n * |words(content)|, as for ordinary replies
//
// Audio: /v1/audio/speech answers a WAV (8 kHz, 16-bit mono) whose LIST/INFO/ICMT chunk carries the
// input text; /v1/audio/transcriptions reads that text back (else "mock transcription of N bytes").

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <expected>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::mock {

// A complete HTTP answer held in memory; the body is JSON unless content_type says otherwise.
struct Reply {
  unsigned status = 200;
  std::string body;
  std::string retry_after;   // empty: no Retry-After header
  std::string content_type;  // empty: application/json
};

// {"error":{"message","type","param","code"}}; an empty param or code renders as null.
Reply api_error(unsigned status, std::string_view message, std::string_view type, std::string_view param = {},
                std::string_view code = {});
// The error body OpenAI would send for `status` (429 → rate_limit_exceeded, 5xx → server_error, …).
Reply default_error(unsigned status);

std::size_t count_words(std::string_view text);

// A validated chat completion request, reduced to what the reply needs.
struct ChatPlan {
  std::string model;
  std::string content;              // the reply text of every choice
  std::vector<std::string> deltas;  // content split for streaming; concatenated they equal content
  std::string finish_reason;        // "stop" or "length"
  std::uint32_t n = 1;
  bool stream = false;
  bool include_usage = false;
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;  // over all choices
  // Tool call: "use tool NAME" in the last user message with a function tool NAME among `tools`
  // (and tool_choice not "none"): the reply is one tool call (content null, finish_reason
  // "tool_calls") whose arguments are built from the function's parameters like a json_schema reply.
  std::string tool_name;  // none when empty
  std::string tool_arguments;
  std::vector<std::string> tool_argument_deltas;
};

// `chunks` 0 means one delta per word.
std::expected<ChatPlan, Reply> plan_chat(std::string_view body, std::uint32_t chunks);
std::string render_chat(const ChatPlan& plan, std::string_view id, std::int64_t created);
// Every SSE event of a streamed reply, each a complete "data: …\n\n", ending with "data: [DONE]\n\n".
std::vector<std::string> render_chat_events(const ChatPlan& plan, std::string_view id, std::int64_t created);

// Vectors are unit length, derived from an FNV-1a hash of each input; `encoding_format: "base64"`
// gives the same float32 values little-endian. Usage counts words (token arrays: their length).
std::expected<std::string, Reply> render_embeddings(std::string_view body, std::uint32_t default_dimensions);

// POST /v1/audio/speech: a 200 Reply carrying audio bytes and their Content-Type, or a 400.
// Every format but pcm gets the same WAV bytes (speech_wav); pcm gets its samples without header.
std::expected<Reply, Reply> render_speech(std::string_view body);

// A valid WAV file: 8000 Hz 16-bit mono PCM, a 440 Hz tone of 50 ms + 5 ms per character of `text`
// (at most 1 s), with `text` in a LIST/INFO/ICMT chunk placed before the data chunk.
std::string speech_wav(std::string_view text);

// What read_wav finds in a RIFF/WAVE file.
struct WavInfo {
  std::optional<std::string> comment;  // the LIST/INFO/ICMT text, trailing NULs removed
  double duration_seconds = 0;         // data chunk bytes / fmt byte rate (0 without either)
};
std::optional<WavInfo> read_wav(std::string_view bytes);

// One part of a multipart/form-data body; `data` points into that body.
struct FormPart {
  std::string name;
  std::optional<std::string> filename;
  std::string content_type;  // empty when the part has none
  std::string_view data;
};

// Parses the boundary out of `content_type` and splits `body` (CRLF line ends, a closing delimiter
// required). The error is a message for a 400.
std::expected<std::vector<FormPart>, std::string> parse_multipart(std::string_view content_type,
                                                                  std::string_view body);

// POST /v1/audio/transcriptions: the answer in the requested response_format, or a 400.
std::expected<Reply, Reply> render_transcription(std::string_view content_type, std::string_view body);
// The body recorded for a transcription request instead of the upload:
// {"model","file_bytes","filename","response_format"} (null when absent), or, when the body is not
// valid multipart, {"error": message, "body_bytes": N}.
std::string summarize_transcription(std::string_view content_type, std::string_view body);

// Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens). The reply follows the
// rules above with Anthropic's names (README.md has the details):
//   text(message)   = content if it is a string; else its text blocks and the contents of its
//                     tool_result blocks (a string, or their text blocks), joined with one space
//   reply           = "mock reply:" + words(text(last user message)), cut to max_tokens words
//                     (stop_reason "max_tokens") or just before the first stop sequence found in it
//                     (stop_reason "stop_sequence"), else stop_reason "end_turn"
//   tool use        = a custom tool named by "use tool NAME" in the last user message (or forced by
//                     tool_choice any / tool): a tool_use block whose input is built from the tool's
//                     input_schema like a json_schema reply, stop_reason "tool_use"; with tool_choice
//                     auto the full reply text comes first as a text block
//   input_tokens    = words(system) + sum over messages of |words(text(message))|
//   output_tokens   = words of the text block + words of the tool input's JSON text

// {"type":"error","error":{"type","message"},"request_id"}; request_id is left out when empty.
Reply anthropic_error(unsigned status, std::string_view type, std::string_view message,
                      std::string_view request_id);
// The error body Anthropic would send for `status` (429 → rate_limit_error, 529 → overloaded_error, …).
Reply default_anthropic_error(unsigned status, std::string_view request_id);

// A validated Messages API request, reduced to what the reply needs.
struct MessagesPlan {
  std::string model;
  std::string text;                      // the text block; none when empty
  std::vector<std::string> text_deltas;  // text split for streaming, as ChatPlan::deltas
  std::string tool_name;                 // the tool_use block; none when empty
  std::string tool_input;                // its input: the JSON text of an object
  std::vector<std::string> tool_input_deltas;
  std::string stop_reason;  // end_turn, max_tokens, stop_sequence or tool_use
  std::optional<std::string> stop_sequence;
  bool stream = false;
  std::uint64_t input_tokens = 0;
  std::uint64_t output_tokens = 0;
};

// Errors are 400 invalid_request_error carrying `request_id`.
std::expected<MessagesPlan, Reply> plan_messages(std::string_view body, std::uint32_t chunks,
                                                 std::string_view request_id);
// POST /v1/messages/count_tokens: {"input_tokens": N}, N as MessagesPlan::input_tokens.
std::expected<std::string, Reply> count_message_tokens(std::string_view body, std::string_view request_id);
// `id` is the message's (msg_…), `tool_id` the tool_use block's (toolu_…).
std::string render_message(const MessagesPlan& plan, std::string_view id, std::string_view tool_id);
// Every SSE event of a streamed message, each a complete "event: NAME\ndata: {…}\n\n": message_start,
// per block content_block_start / content_block_delta… / content_block_stop (one ping after the
// first block starts), message_delta, message_stop.
std::vector<std::string> render_message_events(const MessagesPlan& plan, std::string_view id,
                                               std::string_view tool_id);

// OpenAI's Responses API (POST /v1/responses), minimal and stateless: `input` (a string, or message
// items whose text is read like chat messages' content), `instructions`, `max_output_tokens` and
// `stream` are read; the reply follows the chat rules above. The answer is a `response` object
// with one output message; streamed, OpenAI's events with sequence_number (no [DONE]).
std::expected<ChatPlan, Reply> plan_responses(std::string_view body, std::uint32_t chunks);
std::string render_response(const ChatPlan& plan, std::string_view id, std::int64_t created);
// Every SSE event, each a complete "event: NAME\ndata: {…}\n\n".
std::vector<std::string> render_response_events(const ChatPlan& plan, std::string_view id,
                                                std::int64_t created);

std::string render_models(const std::vector<std::string>& models);
std::optional<std::string> render_model(const std::vector<std::string>& models, std::string_view id);

// One queued misbehaviour; exactly one action besides an optional leading delay.
struct Fault {
  std::uint64_t delay_ms = 0;                      // wait first (alone: then answer normally)
  std::optional<unsigned> status;                  // answer this status …
  std::string retry_after;                         // … with this Retry-After header if not empty
  std::optional<std::string> body;                 // … and this raw body (default: default_error)
  bool reset = false;                              // RST before any response byte
  bool hang = false;                               // never answer
  bool malformed = false;                          // 200 application/json with invalid JSON
  std::optional<std::uint64_t> drop_after_chunks;  // stream N events (or part of the body), then close
};

// Parses {"faults":[F, …]}; all or nothing. The error is a message for a 400.
std::expected<std::vector<Fault>, std::string> parse_faults(std::string_view body);

struct RecordedRequest {
  std::string method;
  std::string path;
  std::optional<std::string> authorization;
  std::optional<std::string> x_api_key;          // Anthropic's key header
  std::optional<std::string> anthropic_version;  // and its version header
  std::string body;
  std::int64_t received_at_ms = 0;  // Unix time
};

// The control state shared by every connection. Thread-safe: one mutex, held only briefly.
class State {
 public:
  // Keeps at most `record_limit` requests (the newest); 0 records nothing.
  explicit State(std::size_t record_limit) : record_limit_(record_limit) {}

  // Appends faults; returns how many are now pending.
  std::size_t add_faults(std::vector<Fault> faults);
  // Records a /v1 request and takes the next fault, under one lock so both stay in arrival order.
  std::optional<Fault> on_request(RecordedRequest request);
  std::string render_requests() const;
  void reset();

 private:
  mutable std::mutex mutex_;
  std::deque<Fault> faults_;
  std::deque<RecordedRequest> requests_;
  std::size_t record_limit_;
};

struct ServerOptions {
  std::string listen = "127.0.0.1:9100";
  unsigned threads = 1;
  std::vector<std::string> models;
  std::vector<std::string> keys;  // empty: any key (or none) is accepted
  std::uint32_t embedding_dimensions = 8;
  std::chrono::milliseconds ttfb{0};
  std::chrono::milliseconds chunk_delay{0};
  std::uint32_t chunks = 0;
  std::size_t record_limit = 10000;
  bool log_requests = false;
};

// Runs until SIGINT or SIGTERM. Returns the process exit code; reports bad options on stderr.
int run_server(const ServerOptions& options);

}  // namespace parley::mock
