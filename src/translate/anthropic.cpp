#include "translate/anthropic.hpp"

#include <boost/json.hpp>
#include <string_view>
#include <utility>

#include "translate/detail.hpp"

namespace parley::translate {
namespace bj = boost::json;
using detail::at;
using detail::dot;
using detail::given;
using detail::integer_or;
using detail::invalid;
using detail::is_number;
using detail::refuse;
using detail::string_or;

namespace {

std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('\'');
  out.append(text);
  out.push_back('\'');
  return out;
}

// ---------------------------------------------------------------------------------------------
// Messages API → chat completions

struct MessagesState {
  bj::array messages;
  std::vector<std::string_view> tool_use_ids;
};

// An image block's source → a chat image_url part.
Result<bj::object> image_part(const bj::object& block, const std::string& path) {
  const bj::object* source = detail::object_member(block, "source");
  if (source == nullptr) return invalid(dot(path, "source"), "an image block needs a source");
  const std::string_view type = string_or(*source, "type");
  std::string url;
  if (type == "base64") {
    const std::string_view media = string_or(*source, "media_type");
    const std::string_view data = string_or(*source, "data");
    if (media.empty() || data.empty()) {
      return invalid(dot(path, "source"), "a base64 image source needs media_type and data");
    }
    url.reserve(media.size() + data.size() + 13);
    url.append("data:").append(media).append(";base64,").append(data);
  } else if (type == "url") {
    url = string_or(*source, "url");
    if (url.empty()) return invalid(dot(path, "source.url"), "a url image source needs url");
  } else {
    return refuse(dot(path, "source.type"),
                  "image source type " + quoted(type) + " cannot be translated; send base64 or url");
  }
  return bj::object{{"type", "image_url"}, {"image_url", bj::object{{"url", std::move(url)}}}};
}

// A tool_result block's content (string, or text blocks) → the tool message's text.
Result<std::string> tool_result_text(const bj::object& block, const std::string& path) {
  const bj::value* content = given(block, "content");
  if (content == nullptr) return std::string();
  if (const bj::string* s = content->if_string()) return std::string(*s);
  const bj::array* blocks = content->if_array();
  if (blocks == nullptr)
    return invalid(dot(path, "content"), "tool_result content must be a string or blocks");
  std::string text;
  for (std::size_t k = 0; k < blocks->size(); ++k) {
    const bj::object* b = (*blocks)[k].if_object();
    if (b == nullptr || string_or(*b, "type") != "text") {
      return refuse(
          at(dot(path, "content"), k),
          "a tool result is translated as text only: chat-completions tool messages carry no images");
    }
    detail::join(text, string_or(*b, "text"), "\n");
  }
  return text;
}

void flush_user(bj::array& parts, MessagesState& st) {
  if (parts.empty()) return;
  bj::object message;
  message.reserve(2);
  message.emplace("role", "user");
  if (parts.size() == 1 && string_or(parts[0].get_object(), "type") == "text") {
    message.emplace("content", std::move(parts[0].get_object()["text"]));
  } else {
    message.emplace("content", std::move(parts));
  }
  parts = bj::array();
  st.messages.emplace_back(std::move(message));
}

Status add_user(const bj::array& blocks, const std::string& path, MessagesState& st) {
  bj::array parts;  // user content gathered until a tool_result or the end
  for (std::size_t j = 0; j < blocks.size(); ++j) {
    const std::string bpath = at(dot(path, "content"), j);
    const bj::object* block = blocks[j].if_object();
    if (block == nullptr) return invalid(bpath, "a content block must be an object");
    const std::string_view type = string_or(*block, "type");
    if (type == "text") {
      const bj::value* text = block->if_contains("text");
      if (text == nullptr || !text->is_string())
        return invalid(dot(bpath, "text"), "a text block needs text");
      parts.emplace_back(bj::object{{"type", "text"}, {"text", *text}});
    } else if (type == "image") {
      Result<bj::object> part = image_part(*block, bpath);
      if (!part) return std::unexpected(std::move(part.error()));
      parts.emplace_back(std::move(*part));
    } else if (type == "tool_result") {
      const std::string_view id = string_or(*block, "tool_use_id");
      if (id.empty()) return invalid(dot(bpath, "tool_use_id"), "a tool_result block needs tool_use_id");
      bool known = false;
      for (const std::string_view seen : st.tool_use_ids) known = known || seen == id;
      if (!known) {
        return invalid(dot(bpath, "tool_use_id"),
                       "no tool_use block with id " + quoted(id) + " comes before it");
      }
      Result<std::string> text = tool_result_text(*block, bpath);
      if (!text) return std::unexpected(std::move(text.error()));
      flush_user(parts, st);
      st.messages.emplace_back(
          bj::object{{"role", "tool"}, {"tool_call_id", id}, {"content", std::move(*text)}});
    } else {
      return refuse(dot(bpath, "type"),
                    "content block type " + quoted(type) + " cannot be translated to chat completions");
    }
  }
  flush_user(parts, st);
  return {};
}

Status add_assistant(const bj::array& blocks, const std::string& path, MessagesState& st) {
  std::string text;
  bj::array calls;
  for (std::size_t j = 0; j < blocks.size(); ++j) {
    const std::string bpath = at(dot(path, "content"), j);
    const bj::object* block = blocks[j].if_object();
    if (block == nullptr) return invalid(bpath, "a content block must be an object");
    const std::string_view type = string_or(*block, "type");
    if (type == "text") {
      text.append(string_or(*block, "text"));
    } else if (type == "tool_use") {
      const bj::value* id = block->if_contains("id");
      const bj::value* name = block->if_contains("name");
      if (id == nullptr || !id->is_string() || id->get_string().empty()) {
        return invalid(dot(bpath, "id"), "a tool_use block needs an id");
      }
      if (name == nullptr || !name->is_string())
        return invalid(dot(bpath, "name"), "a tool_use block needs a name");
      const bj::value* input = given(*block, "input");
      std::string arguments = input != nullptr ? bj::serialize(*input) : std::string("{}");
      calls.emplace_back(
          bj::object{{"id", *id},
                     {"type", "function"},
                     {"function", bj::object{{"name", *name}, {"arguments", std::move(arguments)}}}});
      st.tool_use_ids.push_back(id->get_string());
    } else if (type == "thinking" || type == "redacted_thinking") {
      // earlier reasoning: chat completions take none back; dropped
    } else {
      return refuse(dot(bpath, "type"),
                    "content block type " + quoted(type) + " cannot be translated to chat completions");
    }
  }
  bj::object message;
  message.reserve(3);
  message.emplace("role", "assistant");
  if (text.empty() && !calls.empty()) {
    message.emplace("content", nullptr);
  } else {
    message.emplace("content", std::move(text));
  }
  if (!calls.empty()) message.emplace("tool_calls", std::move(calls));
  st.messages.emplace_back(std::move(message));
  return {};
}

Status add_system(const bj::value& system, MessagesState& st) {
  if (const bj::string* s = system.if_string()) {
    if (!s->empty()) st.messages.emplace_back(bj::object{{"role", "system"}, {"content", *s}});
    return {};
  }
  const bj::array* blocks = system.if_array();
  if (blocks == nullptr) return invalid("system", "system must be a string or an array of text blocks");
  std::string text;
  for (std::size_t j = 0; j < blocks->size(); ++j) {
    const bj::object* block = (*blocks)[j].if_object();
    if (block == nullptr || string_or(*block, "type") != "text") {
      return invalid(at("system", j), "system blocks must be text blocks");
    }
    detail::join(text, string_or(*block, "text"), "\n");
  }
  if (!text.empty()) st.messages.emplace_back(bj::object{{"role", "system"}, {"content", std::move(text)}});
  return {};
}

Status add_tools(const bj::value& value, bj::object& chat) {
  const bj::array* tools = value.if_array();
  if (tools == nullptr) return invalid("tools", "tools must be an array");
  if (tools->empty()) return {};
  bj::array out;
  out.reserve(tools->size());
  for (std::size_t i = 0; i < tools->size(); ++i) {
    const std::string path = at("tools", i);
    const bj::object* tool = (*tools)[i].if_object();
    if (tool == nullptr) return invalid(path, "a tool must be an object");
    const std::string_view type = string_or(*tool, "type", "custom");
    if (type != "custom") {
      return refuse(
          dot(path, "type"),
          "tool type " + quoted(type) + " is a tool Anthropic runs; chat completions take client tools only");
    }
    const bj::value* name = tool->if_contains("name");
    if (name == nullptr || !name->is_string() || name->get_string().empty()) {
      return invalid(dot(path, "name"), "a tool needs a name");
    }
    const bj::value* schema = tool->if_contains("input_schema");
    if (schema == nullptr || !schema->is_object()) {
      return invalid(dot(path, "input_schema"), "a tool needs an input_schema object");
    }
    bj::object function;
    function.reserve(3);
    function.emplace("name", *name);
    if (const bj::value* d = given(*tool, "description")) function.emplace("description", *d);
    function.emplace("parameters", *schema);
    out.emplace_back(bj::object{{"type", "function"}, {"function", std::move(function)}});
  }
  chat.emplace("tools", std::move(out));
  return {};
}

// tool_choice → chat tool_choice (and parallel_tool_calls: false for disable_parallel_tool_use).
Status add_tool_choice(const bj::value& value, bj::object& out) {
  const bj::object* choice = value.if_object();
  if (choice == nullptr) return invalid("tool_choice", "tool_choice must be an object");
  const std::string_view type = string_or(*choice, "type");
  if (type == "auto") {
    out.emplace("tool_choice", "auto");
  } else if (type == "any") {
    out.emplace("tool_choice", "required");
  } else if (type == "none") {
    out.emplace("tool_choice", "none");
  } else if (type == "tool") {
    const std::string_view name = string_or(*choice, "name");
    if (name.empty()) return invalid("tool_choice.name", "a tool tool_choice needs a name");
    out.emplace("tool_choice", bj::object{{"type", "function"}, {"function", bj::object{{"name", name}}}});
  } else {
    return invalid("tool_choice.type", "tool_choice.type must be auto, any, tool or none");
  }
  if (const bj::value* d = given(*choice, "disable_parallel_tool_use")) {
    if (!d->is_bool()) return invalid("tool_choice.disable_parallel_tool_use", "must be a boolean");
    if (d->get_bool()) out.emplace("parallel_tool_calls", false);
  }
  return {};
}

// chat finish_reason → Anthropic stop_reason.
std::string_view stop_reason(std::string_view finish_reason, bool tool_calls, bool refusal) noexcept {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "content_filter" || refusal) return "refusal";
  if (tool_calls || finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  return "end_turn";
}

bj::object anthropic_usage(const detail::ChatUsage& u) {
  const std::int64_t input = u.prompt > u.cached ? u.prompt - u.cached : 0;
  return bj::object{{"input_tokens", input},
                    {"cache_creation_input_tokens", 0},
                    {"cache_read_input_tokens", u.cached},
                    {"output_tokens", u.completion}};
}

// A tool call's arguments → a tool_use block's input ("" → {}).
Result<bj::value> tool_input(std::string_view arguments) {
  if (arguments.find_first_not_of(" \t\r\n") == std::string_view::npos) return bj::value(bj::object());
  boost::system::error_code ec;
  bj::value parsed = bj::parse(arguments, ec);
  if (ec || !parsed.is_object()) {
    return fail(ErrorKind::kModelOutputInvalid, "the model's tool call arguments are not a JSON object");
  }
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Chat completions → Messages API

// A chat message's content (string or parts) → Anthropic blocks appended to `blocks`.
Status content_blocks(const bj::value& content, const std::string& path, bj::array& blocks, bool user) {
  if (const bj::string* s = content.if_string()) {
    if (!s->empty()) blocks.emplace_back(bj::object{{"type", "text"}, {"text", *s}});
    return {};
  }
  const bj::array* parts = content.if_array();
  if (parts == nullptr) return invalid(path, "content must be a string or an array of parts");
  for (std::size_t j = 0; j < parts->size(); ++j) {
    const std::string ppath = at(path, j);
    const bj::object* part = (*parts)[j].if_object();
    if (part == nullptr) return invalid(ppath, "a content part must be an object");
    const std::string_view type = string_or(*part, "type");
    if (type == "text") {
      const std::string_view text = string_or(*part, "text");
      if (!text.empty()) blocks.emplace_back(bj::object{{"type", "text"}, {"text", text}});
    } else if (type == "refusal" && !user) {
      const std::string_view text = string_or(*part, "refusal");
      if (!text.empty()) blocks.emplace_back(bj::object{{"type", "text"}, {"text", text}});
    } else if (type == "image_url" && user) {
      const bj::object* image = detail::object_member(*part, "image_url");
      const std::string_view url = image != nullptr ? string_or(*image, "url") : std::string_view{};
      if (url.starts_with("data:")) {
        const std::size_t marker = url.find(";base64,");
        if (marker == std::string_view::npos) {
          return invalid(dot(ppath, "image_url.url"), "a data: URL image must be base64");
        }
        blocks.emplace_back(bj::object{{"type", "image"},
                                       {"source", bj::object{{"type", "base64"},
                                                             {"media_type", url.substr(5, marker - 5)},
                                                             {"data", url.substr(marker + 8)}}}});
      } else if (url.starts_with("https://") || url.starts_with("http://")) {
        blocks.emplace_back(
            bj::object{{"type", "image"}, {"source", bj::object{{"type", "url"}, {"url", url}}}});
      } else {
        return invalid(dot(ppath, "image_url.url"), "an image URL must be https:, http: or data:");
      }
    } else {
      return refuse(dot(ppath, "type"),
                    "content part type " + quoted(type) + " cannot be translated to the Messages API");
    }
  }
  return {};
}

// Appends a message, merging it into the last one when both have the same role (Anthropic wants
// user and assistant turns to alternate; tool results are user turns).
void push_turn(bj::array& messages, std::string_view role, bj::array blocks) {
  if (!messages.empty()) {
    bj::object& last = messages.back().get_object();
    if (string_or(last, "role") == role) {
      bj::array& content = last["content"].get_array();
      for (bj::value& b : blocks) content.emplace_back(std::move(b));
      return;
    }
  }
  messages.emplace_back(bj::object{{"role", role}, {"content", std::move(blocks)}});
}

std::string_view finish_reason_of(std::string_view stop_reason) noexcept {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn
}

}  // namespace

// =============================================================================================
// Messages API → chat completions

Result<bj::object> anthropic_request_to_chat(const bj::object& request) {
  const bj::value* model = nullptr;
  const bj::value* messages = nullptr;
  const bj::value* max_tokens = nullptr;
  const bj::value* system = nullptr;
  const bj::value* tools = nullptr;
  const bj::value* tool_choice = nullptr;
  bj::object rest;
  rest.reserve(6);
  bool stream = false;
  for (const auto& member : request) {
    const std::string_view key = member.key();
    const bj::value& v = member.value();
    if (key == "model") {
      model = &v;
    } else if (key == "messages") {
      messages = &v;
    } else if (key == "max_tokens") {
      max_tokens = &v;
    } else if (key == "system") {
      system = &v;
    } else if (key == "tools") {
      tools = &v;
    } else if (key == "tool_choice") {
      tool_choice = &v;
    } else if (key == "temperature" || key == "top_p") {
      if (v.is_null()) continue;
      if (!is_number(v)) return invalid(std::string(key), std::string(key) + " must be a number");
      rest.emplace(key, v);
    } else if (key == "stop_sequences") {
      if (v.is_null()) continue;
      const bj::array* stops = v.if_array();
      if (stops == nullptr) return invalid("stop_sequences", "stop_sequences must be an array of strings");
      for (std::size_t i = 0; i < stops->size(); ++i) {
        if (!(*stops)[i].is_string())
          return invalid(at("stop_sequences", i), "a stop sequence must be a string");
      }
      if (!stops->empty()) rest.emplace("stop", *stops);
    } else if (key == "stream") {
      if (!v.is_null() && !v.is_bool()) return invalid("stream", "stream must be a boolean");
      stream = v.is_bool() && v.get_bool();
    } else if (key == "metadata") {
      if (v.is_null()) continue;
      const bj::object* metadata = v.if_object();
      if (metadata == nullptr) return invalid("metadata", "metadata must be an object");
      if (const bj::value* user = given(*metadata, "user_id")) {
        if (!user->is_string()) return invalid("metadata.user_id", "metadata.user_id must be a string");
        rest.emplace("user", *user);
      }
    } else if (key == "thinking") {
      const bj::object* thinking = v.if_object();
      if (v.is_null() || (thinking != nullptr && string_or(*thinking, "type") == "disabled")) continue;
      return refuse("thinking",
                    "extended thinking cannot be translated to chat completions; remove thinking");
    } else if (key == "top_k") {
      if (!v.is_null()) return refuse("top_k", "top_k has no chat-completions equivalent");
    } else if (key == "service_tier") {
      // a capacity hint for Anthropic's own servers; nothing to translate
    } else if (key == "container" || key == "mcp_servers" || key == "context_management" ||
               key == "output_format" || key == "output_config") {
      if (!v.is_null()) {
        return refuse(std::string(key), std::string(key) +
                                            " needs Anthropic's own servers; it cannot be "
                                            "translated to chat completions");
      }
    } else {
      return refuse(std::string(key), std::string(key) + ": Extra inputs are not permitted");
    }
  }
  if (model == nullptr || !model->is_string() || model->get_string().empty()) {
    return invalid("model", "model must be a non-empty string");
  }
  if (max_tokens == nullptr || max_tokens->is_null()) return invalid("max_tokens", "max_tokens is required");
  if (!max_tokens->is_int64() && !max_tokens->is_uint64()) {
    return invalid("max_tokens", "max_tokens must be an integer");
  }
  if (messages == nullptr || !messages->is_array()) return invalid("messages", "messages must be an array");
  const bj::array& list = messages->get_array();
  if (list.empty()) return invalid("messages", "messages must not be empty");

  MessagesState st;
  st.messages.reserve(list.size() + 1);
  if (system != nullptr && !system->is_null()) {
    if (Status done = add_system(*system, st); !done) return std::unexpected(std::move(done.error()));
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string path = at("messages", i);
    const bj::object* message = list[i].if_object();
    if (message == nullptr) return invalid(path, "a message must be an object");
    const std::string_view role = string_or(*message, "role");
    if (role != "user" && role != "assistant")
      return invalid(dot(path, "role"), "role must be user or assistant");
    const bj::value* content = message->if_contains("content");
    if (content == nullptr) return invalid(dot(path, "content"), "a message needs content");
    if (const bj::string* s = content->if_string()) {
      st.messages.emplace_back(bj::object{{"role", role}, {"content", *s}});
      continue;
    }
    const bj::array* blocks = content->if_array();
    if (blocks == nullptr)
      return invalid(dot(path, "content"), "content must be a string or an array of blocks");
    Status done = role == "user" ? add_user(*blocks, path, st) : add_assistant(*blocks, path, st);
    if (!done) return std::unexpected(std::move(done.error()));
  }

  bj::object chat;
  chat.reserve(rest.size() + 8);
  chat.emplace("model", *model);
  chat.emplace("messages", std::move(st.messages));
  chat.emplace("max_tokens", *max_tokens);
  bool has_tools = false;
  if (tools != nullptr && !tools->is_null()) {
    if (Status done = add_tools(*tools, chat); !done) return std::unexpected(std::move(done.error()));
    has_tools = chat.contains("tools");
  }
  if (tool_choice != nullptr && !tool_choice->is_null()) {
    bj::object choice;
    if (Status done = add_tool_choice(*tool_choice, choice); !done)
      return std::unexpected(std::move(done.error()));
    if (has_tools) {
      for (auto& member : choice) chat.emplace(member.key(), std::move(member.value()));
    }
  }
  for (auto& member : rest) chat.emplace(member.key(), std::move(member.value()));
  if (stream) {
    chat.emplace("stream", true);
    chat.emplace("stream_options", bj::object{{"include_usage", true}});
  }
  return chat;
}

Result<bj::object> chat_response_to_anthropic(const bj::object& chat, const AnthropicMeta& meta) {
  const bj::array* choices = detail::array_member(chat, "choices");
  if (choices == nullptr || choices->empty() || !(*choices)[0].is_object()) {
    return fail(ErrorKind::kOpenAiApiError, "the provider's answer has no choices");
  }
  const bj::object& choice = (*choices)[0].get_object();
  static const bj::object no_message;
  const bj::object* found = detail::object_member(choice, "message");
  const bj::object& message = found != nullptr ? *found : no_message;

  const bj::array* tool_calls = detail::array_member(message, "tool_calls");
  bj::array content;
  content.reserve(1 + (tool_calls != nullptr ? tool_calls->size() : 0));
  std::string joined;
  if (const bj::value* c = given(message, "content")) {
    if (c->is_string()) {
      joined = c->get_string();
    } else if (const bj::array* parts = c->if_array()) {
      for (const bj::value& part : *parts) {
        if (const bj::object* p = part.if_object()) joined.append(string_or(*p, "text"));
      }
    }
  }
  const std::string_view refusal = string_or(message, "refusal");
  if (!joined.empty()) content.emplace_back(bj::object{{"type", "text"}, {"text", std::move(joined)}});
  if (!refusal.empty()) content.emplace_back(bj::object{{"type", "text"}, {"text", refusal}});
  bool calls = false;
  if (tool_calls != nullptr) {
    for (const bj::value& c : *tool_calls) {
      const bj::object* call = c.if_object();
      if (call == nullptr) continue;
      const bj::object* function = detail::object_member(*call, "function");
      if (function == nullptr) continue;
      Result<bj::value> input = tool_input(string_or(*function, "arguments"));
      if (!input) return std::unexpected(std::move(input.error()));
      content.emplace_back(bj::object{{"type", "tool_use"},
                                      {"id", string_or(*call, "id")},
                                      {"name", string_or(*function, "name")},
                                      {"input", std::move(*input)}});
      calls = true;
    }
  }
  const detail::ChatUsage usage = detail::read_chat_usage(detail::object_member(chat, "usage"));
  return bj::object{{"id", meta.id},
                    {"type", "message"},
                    {"role", "assistant"},
                    {"model", string_or(chat, "model", meta.model)},
                    {"content", std::move(content)},
                    {"stop_reason", stop_reason(string_or(choice, "finish_reason"), calls, !refusal.empty())},
                    {"stop_sequence", nullptr},
                    {"usage", anthropic_usage(usage)}};
}

// ---------------------------------------------------------------------------------------------
// AnthropicStream

AnthropicStream::AnthropicStream(AnthropicMeta meta) : meta_(std::move(meta)) {
  message_ = bj::object{
      {"id", meta_.id},           {"type", "message"},
      {"role", "assistant"},      {"model", meta_.model},
      {"content", bj::array()},   {"stop_reason", nullptr},
      {"stop_sequence", nullptr}, {"usage", bj::object{{"input_tokens", 0}, {"output_tokens", 0}}}};
}

void AnthropicStream::emit(std::string_view name, bj::object data, std::vector<StreamEvent>& out) {
  out.push_back(StreamEvent{name, std::move(data)});
}

void AnthropicStream::start(std::vector<StreamEvent>& out) {
  if (started_) return;
  started_ = true;
  if (const bj::object* usage = usage_.if_object()) {
    const detail::ChatUsage u = detail::read_chat_usage(usage);
    message_["usage"] = bj::object{{"input_tokens", u.prompt > u.cached ? u.prompt - u.cached : 0},
                                   {"output_tokens", u.completion}};
  }
  emit("message_start", bj::object{{"type", "message_start"}, {"message", message_}}, out);
}

void AnthropicStream::open_block(bj::object block, std::vector<StreamEvent>& out) {
  bj::array& content = message_["content"].get_array();
  const std::size_t index = content.size();
  emit("content_block_start",
       bj::object{{"type", "content_block_start"}, {"index", detail::index(index)}, {"content_block", block}},
       out);
  content.emplace_back(std::move(block));
  if (!pinged_) {
    pinged_ = true;
    emit("ping", bj::object{{"type", "ping"}}, out);
  }
}

void AnthropicStream::close_block(std::vector<StreamEvent>& out) {
  if (open_ == Open::kNone) return;
  bj::array& content = message_["content"].get_array();
  const std::size_t index = content.size() - 1;
  if (open_ == Open::kText) {
    content[index].get_object()["text"] = text_;
    text_.clear();
  }
  open_ = Open::kNone;
  emit("content_block_stop", bj::object{{"type", "content_block_stop"}, {"index", detail::index(index)}},
       out);
}

void AnthropicStream::text_delta(std::string_view text, std::vector<StreamEvent>& out) {
  if (open_ != Open::kText) {
    close_block(out);
    open_block(bj::object{{"type", "text"}, {"text", ""}}, out);
    open_ = Open::kText;
  }
  text_.append(text);
  emit("content_block_delta",
       bj::object{{"type", "content_block_delta"},
                  {"index", detail::index(message_["content"].get_array().size() - 1)},
                  {"delta", bj::object{{"type", "text_delta"}, {"text", text}}}},
       out);
}

void AnthropicStream::tool_call_delta(const bj::object& call, std::size_t position,
                                      std::vector<StreamEvent>& out) {
  const std::int64_t index = integer_or(call, "index", static_cast<std::int64_t>(position));
  const bj::object* function = detail::object_member(call, "function");
  const std::string_view arguments =
      function != nullptr ? string_or(*function, "arguments") : std::string_view{};
  Call* target = nullptr;
  for (Call& c : calls_) {
    if (c.chat_index == index) target = &c;
  }
  if (target != nullptr && !(open_ == Open::kTool && call_index_ == index)) {
    target->arguments.append(arguments);  // a piece of a closed call: kept in message(), no event
    return;
  }
  if (target == nullptr) {
    close_block(out);
    std::string id(string_or(call, "id"));
    if (id.empty())
      id = "toolu_" + std::string(detail::id_suffix(meta_.id, "msg_")) + "_" + std::to_string(index);
    const std::string_view name = function != nullptr ? string_or(*function, "name") : std::string_view{};
    calls_.push_back(Call{index, message_["content"].get_array().size(), {}});
    open_block(bj::object{{"type", "tool_use"}, {"id", id}, {"name", name}, {"input", bj::object()}}, out);
    open_ = Open::kTool;
    call_index_ = index;
    target = &calls_.back();
  }
  if (arguments.empty()) return;
  target->arguments.append(arguments);
  emit("content_block_delta",
       bj::object{{"type", "content_block_delta"},
                  {"index", detail::index(target->block)},
                  {"delta", bj::object{{"type", "input_json_delta"}, {"partial_json", arguments}}}},
       out);
}

void AnthropicStream::feed(const bj::object& chunk, std::vector<StreamEvent>& out) {
  if (finished_) return;
  if (const bj::value* usage = given(chunk, "usage"); usage != nullptr && usage->is_object()) usage_ = *usage;
  if (const std::string_view model = string_or(chunk, "model"); !model.empty()) message_["model"] = model;
  if (const bj::object* error = detail::object_member(chunk, "error")) {
    start(out);
    std::string_view type = string_or(*error, "type");
    if (type != "rate_limit_error" && type != "overloaded_error" && type != "invalid_request_error")
      type = "api_error";
    fail_with(type, string_or(*error, "message", "the provider failed"), out);
    return;
  }
  start(out);
  detail::for_each_choice_piece(chunk, [&](const detail::ChoicePiece& piece) {
    if (!piece.text.empty()) text_delta(piece.text, out);
    if (!piece.refusal.empty()) {
      refusal_ = true;
      text_delta(piece.refusal, out);
    }
    if (piece.tool_calls != nullptr) {
      for (std::size_t k = 0; k < piece.tool_calls->size(); ++k) {
        if (const bj::object* call = (*piece.tool_calls)[k].if_object()) tool_call_delta(*call, k, out);
      }
    }
    if (!piece.finish_reason.empty()) finish_reason_ = piece.finish_reason;
  });
}

void AnthropicStream::finish(std::vector<StreamEvent>& out) {
  if (finished_) return;
  start(out);
  close_block(out);
  finished_ = true;
  bj::array& content = message_["content"].get_array();
  for (const Call& c : calls_) {
    Result<bj::value> input = tool_input(c.arguments);
    content[c.block].get_object()["input"] = input ? std::move(*input) : bj::value(bj::object());
  }
  const std::string_view reason = stop_reason(finish_reason_, !calls_.empty(), refusal_);
  message_["stop_reason"] = reason;
  const detail::ChatUsage u = detail::read_chat_usage(usage_.if_object());
  message_["usage"] = anthropic_usage(u);
  emit("message_delta",
       bj::object{{"type", "message_delta"},
                  {"delta", bj::object{{"stop_reason", reason}, {"stop_sequence", nullptr}}},
                  {"usage", message_["usage"]}},
       out);
  emit("message_stop", bj::object{{"type", "message_stop"}}, out);
}

void AnthropicStream::fail(const Error& error, std::vector<StreamEvent>& out) {
  if (finished_) return;
  start(out);
  fail_with(anthropic_error_type(error.status()), error.message, out);
}

void AnthropicStream::fail_with(std::string_view type, std::string_view message,
                                std::vector<StreamEvent>& out) {
  finished_ = true;
  emit("error", bj::object{{"type", "error"}, {"error", bj::object{{"type", type}, {"message", message}}}},
       out);
}

// =============================================================================================
// Chat completions → Messages API

Result<bj::object> chat_request_to_anthropic(const bj::object& request,
                                             const ChatToAnthropicOptions& options) {
  const bj::value* model = nullptr;
  const bj::value* messages = nullptr;
  const bj::value* tools = nullptr;
  const bj::value* tool_choice = nullptr;
  const bj::value* max_tokens = nullptr;
  bool parallel = true;
  bool stream = false;
  bj::object rest;
  rest.reserve(6);
  for (const auto& member : request) {
    const std::string_view key = member.key();
    const bj::value& v = member.value();
    if (key == "model") {
      model = &v;
    } else if (key == "messages") {
      messages = &v;
    } else if (key == "tools") {
      tools = &v;
    } else if (key == "tool_choice") {
      tool_choice = &v;
    } else if (key == "max_tokens" || key == "max_completion_tokens") {
      if (v.is_null()) continue;
      if (!v.is_int64() && !v.is_uint64())
        return invalid(std::string(key), std::string(key) + " must be an integer");
      max_tokens = &v;
    } else if (key == "temperature" || key == "top_p") {
      if (v.is_null()) continue;
      if (!is_number(v)) return invalid(std::string(key), std::string(key) + " must be a number");
      rest.emplace(key, v);
    } else if (key == "stop") {
      if (v.is_null()) continue;
      if (v.is_string()) {
        rest.emplace("stop_sequences", bj::array{v});
      } else if (const bj::array* stops = v.if_array()) {
        for (std::size_t i = 0; i < stops->size(); ++i) {
          if (!(*stops)[i].is_string()) return invalid(at("stop", i), "a stop sequence must be a string");
        }
        if (!stops->empty()) rest.emplace("stop_sequences", *stops);
      } else {
        return invalid("stop", "stop must be a string or an array of strings");
      }
    } else if (key == "stream") {
      if (!v.is_null() && !v.is_bool()) return invalid("stream", "stream must be a boolean");
      stream = v.is_bool() && v.get_bool();
    } else if (key == "parallel_tool_calls") {
      if (!v.is_null() && !v.is_bool())
        return invalid("parallel_tool_calls", "parallel_tool_calls must be a boolean");
      parallel = !v.is_bool() || v.get_bool();
    } else if (key == "user") {
      if (v.is_null()) continue;
      if (!v.is_string()) return invalid("user", "user must be a string");
      rest.emplace("metadata", bj::object{{"user_id", v}});
    } else if (key == "n") {
      if (!v.is_null() && !(v.is_int64() && v.get_int64() == 1)) {
        return refuse("n", "the Messages API answers one choice; n must be 1");
      }
    } else if (key == "response_format") {
      const bj::object* format = v.if_object();
      if (v.is_null() || (format != nullptr && string_or(*format, "type") == "text")) continue;
      return refuse("response_format",
                    "response_format json_object / json_schema cannot be translated to the "
                    "Messages API");
    } else if (key == "frequency_penalty" || key == "presence_penalty") {
      if (v.is_null() || (is_number(v) && v.to_number<double>() == 0.0)) continue;
      return refuse(std::string(key), std::string(key) + " has no Messages API equivalent");
    } else if (key == "logit_bias") {
      const bj::object* bias = v.if_object();
      if (v.is_null() || (bias != nullptr && bias->empty())) continue;
      return refuse("logit_bias", "logit_bias has no Messages API equivalent");
    } else if (key == "logprobs" || key == "top_logprobs") {
      if (v.is_null() || (v.is_bool() && !v.get_bool())) continue;
      return refuse(std::string(key), "the Messages API reports no log probabilities");
    } else if (key == "modalities") {
      const bj::array* modalities = v.if_array();
      if (v.is_null() || (modalities != nullptr && modalities->size() == 1 && (*modalities)[0] == "text"))
        continue;
      return refuse("modalities", "the Messages API answers text only");
    } else if (key == "reasoning_effort" || key == "audio" || key == "prediction" ||
               key == "web_search_options" || key == "functions" || key == "function_call") {
      if (!v.is_null()) {
        return refuse(std::string(key), std::string(key) + " cannot be translated to the Messages API");
      }
    } else if (key == "seed" || key == "stream_options" || key == "store" || key == "metadata" ||
               key == "service_tier" || key == "safety_identifier" || key == "prompt_cache_key") {
      // hints for OpenAI's servers, or parley's own (stream_options: AnthropicToChatStream)
    } else {
      return refuse(std::string(key), "Unrecognized request argument supplied: " + std::string(key));
    }
  }
  if (model == nullptr || !model->is_string() || model->get_string().empty()) {
    return invalid("model", "model must be a non-empty string");
  }
  if (messages == nullptr || !messages->is_array()) return invalid("messages", "messages must be an array");
  const bj::array& list = messages->get_array();

  std::string system;
  bj::array turns;
  turns.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string path = at("messages", i);
    const bj::object* message = list[i].if_object();
    if (message == nullptr) return invalid(path, "a message must be an object");
    const std::string_view role = string_or(*message, "role");
    const bj::value* content = given(*message, "content");
    if (role == "system" || role == "developer") {
      if (content == nullptr) continue;
      if (const bj::string* s = content->if_string()) {
        detail::join(system, *s, "\n");
      } else if (const bj::array* parts = content->if_array()) {
        for (const bj::value& part : *parts) {
          if (const bj::object* p = part.if_object()) detail::join(system, string_or(*p, "text"), "\n");
        }
      } else {
        return invalid(dot(path, "content"), "content must be a string or an array of parts");
      }
    } else if (role == "user") {
      bj::array blocks;
      if (content == nullptr) return invalid(dot(path, "content"), "a user message needs content");
      if (Status done = content_blocks(*content, dot(path, "content"), blocks, true); !done) {
        return std::unexpected(std::move(done.error()));
      }
      push_turn(turns, "user", std::move(blocks));
    } else if (role == "assistant") {
      bj::array blocks;
      if (content != nullptr) {
        if (Status done = content_blocks(*content, dot(path, "content"), blocks, false); !done) {
          return std::unexpected(std::move(done.error()));
        }
      }
      if (const bj::array* calls = detail::array_member(*message, "tool_calls")) {
        for (std::size_t j = 0; j < calls->size(); ++j) {
          const std::string cpath = at(dot(path, "tool_calls"), j);
          const bj::object* call = (*calls)[j].if_object();
          const bj::object* function = call != nullptr ? detail::object_member(*call, "function") : nullptr;
          if (function == nullptr) return invalid(cpath, "a tool call needs a function");
          Result<bj::value> input = tool_input(string_or(*function, "arguments"));
          if (!input)
            return invalid(dot(cpath, "function.arguments"), "tool call arguments must be a JSON object");
          blocks.emplace_back(bj::object{{"type", "tool_use"},
                                         {"id", string_or(*call, "id")},
                                         {"name", string_or(*function, "name")},
                                         {"input", std::move(*input)}});
        }
      }
      if (!blocks.empty()) push_turn(turns, "assistant", std::move(blocks));
    } else if (role == "tool") {
      const std::string_view id = string_or(*message, "tool_call_id");
      if (id.empty()) return invalid(dot(path, "tool_call_id"), "a tool message needs tool_call_id");
      bj::object result{{"type", "tool_result"}, {"tool_use_id", id}};
      if (content != nullptr) {
        if (const bj::string* s = content->if_string()) {
          result.emplace("content", *s);
        } else if (const bj::array* parts = content->if_array()) {
          std::string text;
          for (const bj::value& part : *parts) {
            if (const bj::object* p = part.if_object()) text.append(string_or(*p, "text"));
          }
          result.emplace("content", std::move(text));
        } else {
          return invalid(dot(path, "content"), "content must be a string or an array of parts");
        }
      }
      bj::array blocks;
      blocks.emplace_back(std::move(result));
      push_turn(turns, "user", std::move(blocks));
    } else if (role == "function") {
      return refuse(dot(path, "role"), "the legacy function role cannot be translated; use tool messages");
    } else {
      return invalid(dot(path, "role"), "role must be system, developer, user, assistant or tool");
    }
  }
  if (turns.empty()) return invalid("messages", "messages need a user or assistant message");

  bj::object out;
  out.reserve(rest.size() + 8);
  out.emplace("model", *model);
  out.emplace("messages", std::move(turns));
  out.emplace("max_tokens", max_tokens != nullptr ? *max_tokens : bj::value(options.default_max_tokens));
  if (!system.empty()) out.emplace("system", std::move(system));
  bool has_tools = false;
  if (tools != nullptr && !tools->is_null()) {
    const bj::array* list_tools = tools->if_array();
    if (list_tools == nullptr) return invalid("tools", "tools must be an array");
    bj::array converted;
    converted.reserve(list_tools->size());
    for (std::size_t i = 0; i < list_tools->size(); ++i) {
      const std::string path = at("tools", i);
      const bj::object* tool = (*list_tools)[i].if_object();
      if (tool == nullptr) return invalid(path, "a tool must be an object");
      if (string_or(*tool, "type") != "function") {
        return refuse(dot(path, "type"), "only function tools translate to the Messages API");
      }
      const bj::object* function = detail::object_member(*tool, "function");
      const std::string_view name = function != nullptr ? string_or(*function, "name") : std::string_view{};
      if (name.empty()) return invalid(dot(path, "function.name"), "a function tool needs a name");
      bj::object t;
      t.reserve(3);
      t.emplace("name", name);
      if (const bj::value* d = given(*function, "description")) t.emplace("description", *d);
      if (const bj::value* p = given(*function, "parameters"); p != nullptr && p->is_object()) {
        t.emplace("input_schema", *p);
      } else {
        t.emplace("input_schema", bj::object{{"type", "object"}, {"properties", bj::object()}});
      }
      converted.emplace_back(std::move(t));
    }
    has_tools = !converted.empty();
    if (has_tools) out.emplace("tools", std::move(converted));
  }
  if (has_tools) {
    bj::object choice{{"type", "auto"}};
    if (tool_choice != nullptr && !tool_choice->is_null()) {
      if (const bj::string* s = tool_choice->if_string()) {
        if (*s == "required") {
          choice["type"] = "any";
        } else if (*s == "none") {
          choice["type"] = "none";
        } else if (*s != "auto") {
          return invalid("tool_choice", "tool_choice must be none, auto, required or a function");
        }
      } else if (const bj::object* c = tool_choice->if_object()) {
        const bj::object* function = detail::object_member(*c, "function");
        const std::string_view name = function != nullptr ? string_or(*function, "name") : std::string_view{};
        if (string_or(*c, "type") != "function" || name.empty()) {
          return refuse("tool_choice", "only a function tool_choice translates to the Messages API");
        }
        choice = bj::object{{"type", "tool"}, {"name", name}};
      } else {
        return invalid("tool_choice", "tool_choice must be a string or an object");
      }
    }
    if (!parallel && string_or(choice, "type") != "none") choice.emplace("disable_parallel_tool_use", true);
    if (tool_choice != nullptr || !parallel) out.emplace("tool_choice", std::move(choice));
  }
  for (auto& member : rest) out.emplace(member.key(), std::move(member.value()));
  if (stream) out.emplace("stream", true);
  return out;
}

Result<bj::object> anthropic_response_to_chat(const bj::object& message, const ChatMeta& meta) {
  const bj::array* content = detail::array_member(message, "content");
  if (content == nullptr) return fail(ErrorKind::kOpenAiApiError, "the provider's answer has no content");
  std::string text;
  bj::array calls;
  for (const bj::value& b : *content) {
    const bj::object* block = b.if_object();
    if (block == nullptr) continue;
    const std::string_view type = string_or(*block, "type");
    if (type == "text") {
      text.append(string_or(*block, "text"));
    } else if (type == "tool_use") {
      const bj::value* input = given(*block, "input");
      calls.emplace_back(bj::object{
          {"id", string_or(*block, "id")},
          {"type", "function"},
          {"function",
           bj::object{{"name", string_or(*block, "name")},
                      {"arguments", input != nullptr ? bj::serialize(*input) : std::string("{}")}}}});
    }
  }
  const std::string_view stop = string_or(message, "stop_reason");
  bj::object reply;
  reply.reserve(4);
  reply.emplace("role", "assistant");
  if (text.empty() && !calls.empty()) {
    reply.emplace("content", nullptr);
  } else {
    reply.emplace("content", std::move(text));
  }
  reply.emplace("refusal", nullptr);
  if (!calls.empty()) reply.emplace("tool_calls", std::move(calls));
  bj::object choice{{"index", 0},
                    {"message", std::move(reply)},
                    {"logprobs", nullptr},
                    {"finish_reason", stop.empty() ? bj::value(nullptr) : bj::value(finish_reason_of(stop))}};
  bj::array choices;
  choices.emplace_back(std::move(choice));
  bj::object usage;
  if (const bj::object* u = detail::object_member(message, "usage")) {
    const std::int64_t cache_read = integer_or(*u, "cache_read_input_tokens", 0);
    const std::int64_t prompt =
        integer_or(*u, "input_tokens", 0) + cache_read + integer_or(*u, "cache_creation_input_tokens", 0);
    const std::int64_t completion = integer_or(*u, "output_tokens", 0);
    usage = bj::object{{"prompt_tokens", prompt},
                       {"completion_tokens", completion},
                       {"total_tokens", prompt + completion},
                       {"prompt_tokens_details", bj::object{{"cached_tokens", cache_read}}}};
  }
  const std::string_view id = meta.id.empty() ? string_or(message, "id") : std::string_view(meta.id);
  bj::object chat{{"id", id},
                  {"object", "chat.completion"},
                  {"created", meta.created},
                  {"model", string_or(message, "model", meta.model)},
                  {"choices", std::move(choices)}};
  if (!usage.empty()) chat.emplace("usage", std::move(usage));
  return chat;
}

// ---------------------------------------------------------------------------------------------
// AnthropicToChatStream

bj::object AnthropicToChatStream::chunk(bj::object delta, bj::value finish_reason) const {
  bj::array choices;
  choices.emplace_back(bj::object{{"index", 0},
                                  {"delta", std::move(delta)},
                                  {"logprobs", nullptr},
                                  {"finish_reason", std::move(finish_reason)}});
  return bj::object{{"id", meta_.id},
                    {"object", "chat.completion.chunk"},
                    {"created", meta_.created},
                    {"model", meta_.model},
                    {"choices", std::move(choices)}};
}

Status AnthropicToChatStream::feed(const bj::object& event, std::vector<bj::object>& out) {
  if (done_) return {};
  const std::string_view type = string_or(event, "type");
  if (type == "message_start") {
    if (const bj::object* message = detail::object_member(event, "message")) {
      if (meta_.id.empty()) meta_.id = string_or(*message, "id");
      if (const std::string_view model = string_or(*message, "model"); !model.empty()) meta_.model = model;
      if (const bj::object* usage = detail::object_member(*message, "usage")) {
        input_ = integer_or(*usage, "input_tokens", input_);
        output_ = integer_or(*usage, "output_tokens", output_);
        cache_read_ = integer_or(*usage, "cache_read_input_tokens", cache_read_);
        cache_creation_ = integer_or(*usage, "cache_creation_input_tokens", cache_creation_);
      }
    }
    out.push_back(chunk(bj::object{{"role", "assistant"}, {"content", ""}}, nullptr));
  } else if (type == "content_block_start") {
    const bj::object* block = detail::object_member(event, "content_block");
    if (block == nullptr) return {};
    const std::string_view block_type = string_or(*block, "type");
    if (block_type == "text") {
      if (const std::string_view text = string_or(*block, "text"); !text.empty()) {
        out.push_back(chunk(bj::object{{"content", text}}, nullptr));
      }
    } else if (block_type == "tool_use") {
      const auto tool = static_cast<std::int64_t>(tools_.size());
      tools_.emplace_back(integer_or(event, "index", 0), tool);
      bj::array calls;
      calls.emplace_back(
          bj::object{{"index", tool},
                     {"id", string_or(*block, "id")},
                     {"type", "function"},
                     {"function", bj::object{{"name", string_or(*block, "name")}, {"arguments", ""}}}});
      out.push_back(chunk(bj::object{{"tool_calls", std::move(calls)}}, nullptr));
    }
  } else if (type == "content_block_delta") {
    const bj::object* delta = detail::object_member(event, "delta");
    if (delta == nullptr) return {};
    const std::string_view delta_type = string_or(*delta, "type");
    if (delta_type == "text_delta") {
      out.push_back(chunk(bj::object{{"content", string_or(*delta, "text")}}, nullptr));
    } else if (delta_type == "input_json_delta") {
      const std::int64_t block = integer_or(event, "index", 0);
      for (const auto& [anthropic_index, tool] : tools_) {
        if (anthropic_index != block) continue;
        bj::array calls;
        calls.emplace_back(bj::object{
            {"index", tool}, {"function", bj::object{{"arguments", string_or(*delta, "partial_json")}}}});
        out.push_back(chunk(bj::object{{"tool_calls", std::move(calls)}}, nullptr));
        break;
      }
    }
  } else if (type == "message_delta") {
    if (const bj::object* usage = detail::object_member(event, "usage")) {
      input_ = integer_or(*usage, "input_tokens", input_);
      output_ = integer_or(*usage, "output_tokens", output_);
      cache_read_ = integer_or(*usage, "cache_read_input_tokens", cache_read_);
      cache_creation_ = integer_or(*usage, "cache_creation_input_tokens", cache_creation_);
    }
    const bj::object* delta = detail::object_member(event, "delta");
    const std::string_view stop = delta != nullptr ? string_or(*delta, "stop_reason") : std::string_view{};
    if (!stop.empty()) out.push_back(chunk(bj::object(), bj::value(finish_reason_of(stop))));
  } else if (type == "message_stop") {
    done_ = true;
    if (meta_.include_usage) {
      const std::int64_t prompt = prompt_tokens();
      out.push_back(bj::object{
          {"id", meta_.id},
          {"object", "chat.completion.chunk"},
          {"created", meta_.created},
          {"model", meta_.model},
          {"choices", bj::array()},
          {"usage", bj::object{{"prompt_tokens", prompt},
                               {"completion_tokens", output_},
                               {"total_tokens", prompt + output_},
                               {"prompt_tokens_details", bj::object{{"cached_tokens", cache_read_}}}}}});
    }
  } else if (type == "error") {
    done_ = true;
    const bj::object* error = detail::object_member(event, "error");
    if (error == nullptr)
      return std::unexpected(error_from_anthropic_type("api_error", "the provider failed"));
    return std::unexpected(
        error_from_anthropic_type(string_or(*error, "type", "api_error"), string_or(*error, "message")));
  }
  // ping, and event types Anthropic adds later: nothing to relay
  return {};
}

// =============================================================================================
// Errors

std::string_view anthropic_error_type(int status) noexcept {
  switch (status) {
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

bj::object anthropic_error(int status, std::string_view message, std::string_view request_id) {
  bj::object body{{"type", "error"},
                  {"error", bj::object{{"type", anthropic_error_type(status)}, {"message", message}}}};
  if (!request_id.empty()) body.emplace("request_id", request_id);
  return body;
}

bj::object anthropic_error(const Error& error, std::string_view request_id) {
  if (!error.param || error.param->empty() || error.message.starts_with(*error.param)) {
    return anthropic_error(error.status(), error.message, request_id);
  }
  std::string message;
  message.reserve(error.param->size() + 2 + error.message.size());
  message.append(*error.param).append(": ").append(error.message);
  return anthropic_error(error.status(), message, request_id);
}

Error error_from_anthropic_type(std::string_view type, std::string_view message) {
  ErrorKind kind = ErrorKind::kOpenAiApiError;
  if (type == "invalid_request_error") {
    kind = ErrorKind::kBadRequest;
  } else if (type == "authentication_error" || type == "permission_error") {
    kind = ErrorKind::kInvalidApiKey;
  } else if (type == "not_found_error") {
    kind = ErrorKind::kModelNotFound;
  } else if (type == "request_too_large") {
    kind = ErrorKind::kPayloadTooLarge;
  } else if (type == "rate_limit_error") {
    kind = ErrorKind::kOpenAiRateLimit;
  } else if (type == "overloaded_error") {
    kind = ErrorKind::kOpenAiConnection;
  } else if (type == "timeout_error") {
    kind = ErrorKind::kOpenAiTimeout;
  }
  return Error{kind, message.empty() ? std::string("the provider answered ") + std::string(type)
                                     : std::string(message)};
}

Error error_from_anthropic(int status, const bj::object* body) {
  std::string_view message;
  std::string_view type;
  if (body != nullptr) {
    if (const bj::object* error = detail::object_member(*body, "error")) {
      message = string_or(*error, "message");
      type = string_or(*error, "type");
    }
  }
  std::string text =
      message.empty() ? "the provider answered " + std::to_string(status) : std::string(message);
  ErrorKind kind = ErrorKind::kOpenAiApiError;
  if (status == 401 || status == 403) {
    kind = ErrorKind::kInvalidApiKey;
  } else if (status == 404) {
    kind = ErrorKind::kModelNotFound;
  } else if (status == 413) {
    kind = ErrorKind::kPayloadTooLarge;
  } else if (status == 429) {
    kind = ErrorKind::kOpenAiRateLimit;
  } else if (status == 503 || status == 529) {
    kind = ErrorKind::kOpenAiConnection;
  } else if (status == 504) {
    kind = ErrorKind::kOpenAiTimeout;
  } else if (status >= 400 && status < 500) {
    kind = ErrorKind::kBadRequest;
  } else if (status < 400 && !type.empty()) {
    return error_from_anthropic_type(type, text);
  }
  return Error{kind, std::move(text)};
}

}  // namespace parley::translate
