// One event a streaming translator emits: the SSE event name and its JSON data. Responses API
// events and Anthropic's events both carry their name twice, as the SSE `event:` line and as the
// data's "type" member; the translators set both.
//
// The translators (ResponsesStream, AnthropicStream, AnthropicToChatStream) append to a
// caller-owned std::vector<StreamEvent>, so a route can reuse one vector for a whole stream.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

namespace parley::translate {

struct StreamEvent {
  std::string_view name;  // a string literal: "response.output_text.delta", "message_start", ...
  boost::json::object data;
};

// "event: <name>\ndata: <json>\n\n" appended to `out`.
void append_sse(std::string& out, const StreamEvent& event);
[[nodiscard]] std::string to_sse(const StreamEvent& event);

}  // namespace parley::translate
