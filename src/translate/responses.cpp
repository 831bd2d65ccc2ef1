#include "translate/responses.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <string_view>
#include <utility>
#include <vector>

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

// ---------------------------------------------------------------------------------------------
// Request

struct ItemState {
  bj::array& messages;
  std::vector<std::string_view> call_ids;  // call ids of the function_call items so far
};

std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('\'');
  out.append(text);
  out.push_back('\'');
  return out;
}

// A message item's content parts. User parts keep their structure (text and image parts); system
// and assistant messages, which chat completions servers take as a string, have their text joined.
Status add_message(const bj::object& item, const std::string& path, ItemState& st) {
  const std::string_view role = string_or(item, "role");
  std::string_view chat_role;
  if (role == "user" || role == "assistant" || role == "system") {
    chat_role = role;
  } else if (role == "developer") {
    chat_role = "system";  // self-hosted servers know no developer role
  } else {
    return invalid(dot(path, "role"), "role must be one of user, assistant, system, developer");
  }
  const bool user = chat_role == "user";
  const bj::value* content = given(item, "content");
  bj::object message;
  message.reserve(3);
  message.emplace("role", chat_role);
  if (content == nullptr) return invalid(dot(path, "content"), "a message item needs content");
  if (const bj::string* text = content->if_string()) {
    message.emplace("content", *text);
    st.messages.emplace_back(std::move(message));
    return {};
  }
  const bj::array* parts = content->if_array();
  if (parts == nullptr) return invalid(dot(path, "content"), "content must be a string or an array of parts");

  bj::array chat_parts;  // user
  std::string joined;    // system, assistant
  std::string refusal;   // assistant
  if (user) chat_parts.reserve(parts->size());
  const std::string_view separator = chat_role == "system" ? "\n" : "";
  for (std::size_t j = 0; j < parts->size(); ++j) {
    const bj::object* part = (*parts)[j].if_object();
    if (part == nullptr) return invalid(at(dot(path, "content"), j), "a content part must be an object");
    const std::string_view type = string_or(*part, "type");
    if (type == "input_text" || type == "output_text") {
      const bj::value* text = part->if_contains("text");
      if (text == nullptr || !text->is_string()) {
        return invalid(dot(at(dot(path, "content"), j), "text"), "a text part needs a string text");
      }
      if (user) {
        chat_parts.emplace_back(bj::object{{"type", "text"}, {"text", text->get_string()}});
      } else {
        detail::join(joined, text->get_string(), separator);
      }
    } else if (type == "refusal" && chat_role == "assistant") {
      refusal.append(string_or(*part, "refusal"));
    } else if (type == "input_image") {
      const std::string ppath = at(dot(path, "content"), j);
      if (!user) return refuse(ppath, "an image is translated in a user message only");
      const std::string_view url = string_or(*part, "image_url");
      if (url.empty()) {
        if (given(*part, "file_id") != nullptr) {
          return refuse(dot(ppath, "file_id"),
                        "file_id refers to OpenAI's file storage, which chat completions cannot read; send "
                        "image_url (an https: or data: URL)");
        }
        return invalid(dot(ppath, "image_url"), "an input_image part needs image_url");
      }
      bj::object image;
      image.reserve(2);
      image.emplace("url", url);
      if (const bj::value* detail = given(*part, "detail"); detail != nullptr && detail->is_string()) {
        image.emplace("detail", *detail);
      }
      chat_parts.emplace_back(bj::object{{"type", "image_url"}, {"image_url", std::move(image)}});
    } else if (type == "input_file") {
      return refuse(at(dot(path, "content"), j),
                    "input_file cannot be translated to chat completions: the provider reads no files");
    } else {
      return refuse(dot(at(dot(path, "content"), j), "type"),
                    "content part type " + quoted(type) + " cannot be translated to chat completions");
    }
  }
  if (user) {
    if (chat_parts.size() == 1 && string_or(chat_parts[0].get_object(), "type") == "text") {
      message.emplace("content", std::move(chat_parts[0].get_object()["text"]));
    } else if (chat_parts.empty()) {
      message.emplace("content", "");
    } else {
      message.emplace("content", std::move(chat_parts));
    }
  } else {
    message.emplace("content", std::move(joined));
    if (!refusal.empty()) message.emplace("refusal", std::move(refusal));
  }
  st.messages.emplace_back(std::move(message));
  return {};
}

Status add_function_call(const bj::object& item, const std::string& path, ItemState& st) {
  const bj::value* call_id = item.if_contains("call_id");
  if (call_id == nullptr || !call_id->is_string() || call_id->get_string().empty()) {
    return invalid(dot(path, "call_id"), "a function_call item needs a call_id");
  }
  const bj::value* name = item.if_contains("name");
  if (name == nullptr || !name->is_string())
    return invalid(dot(path, "name"), "a function_call item needs a name");
  const bj::value* arguments = item.if_contains("arguments");
  if (arguments == nullptr || !arguments->is_string()) {
    return invalid(dot(path, "arguments"), "a function_call item needs arguments (a JSON string)");
  }
  bj::object call{{"id", *call_id},
                  {"type", "function"},
                  {"function", bj::object{{"name", *name}, {"arguments", *arguments}}}};
  st.call_ids.push_back(call_id->get_string());
  // A call right after an assistant message belongs to it (a response's message and calls).
  if (!st.messages.empty()) {
    bj::object& last = st.messages.back().get_object();
    if (string_or(last, "role") == "assistant") {
      bj::value& calls = last["tool_calls"];
      if (!calls.is_array()) calls.emplace_array();
      calls.get_array().emplace_back(std::move(call));
      return {};
    }
  }
  bj::array calls;
  calls.emplace_back(std::move(call));
  st.messages.emplace_back(
      bj::object{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", std::move(calls)}});
  return {};
}

Status add_function_call_output(const bj::object& item, const std::string& path, ItemState& st) {
  const std::string_view call_id = string_or(item, "call_id");
  if (call_id.empty()) return invalid(dot(path, "call_id"), "a function_call_output item needs a call_id");
  bool known = false;
  for (const std::string_view id : st.call_ids) known = known || id == call_id;
  if (!known) {
    return invalid(dot(path, "call_id"),
                   "no function_call item with call_id " + quoted(call_id) + " comes before this output");
  }
  const bj::value* output = item.if_contains("output");
  bj::object message;
  message.reserve(3);
  message.emplace("role", "tool");
  message.emplace("tool_call_id", call_id);
  if (output != nullptr && output->is_string()) {
    message.emplace("content", *output);
  } else if (output != nullptr && output->is_array()) {
    std::string joined;
    const bj::array& parts = output->get_array();
    for (std::size_t j = 0; j < parts.size(); ++j) {
      const bj::object* part = parts[j].if_object();
      if (part == nullptr || string_or(*part, "type") != "input_text") {
        return refuse(at(dot(path, "output"), j),
                      "a function output is translated as text (input_text parts) only");
      }
      detail::join(joined, string_or(*part, "text"), "\n");
    }
    message.emplace("content", std::move(joined));
  } else {
    return invalid(dot(path, "output"), "a function_call_output item needs output (a string)");
  }
  st.messages.emplace_back(std::move(message));
  return {};
}

Status add_items(const bj::array& items, std::string_view base, ItemState& st) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const bj::object* item = items[i].if_object();
    const std::string path = at(base, i);
    if (item == nullptr) return invalid(path, "an input item must be an object");
    std::string_view type = string_or(*item, "type");
    if (type.empty() && item->contains("role")) type = "message";
    Status done;
    if (type == "message") {
      done = add_message(*item, path, st);
    } else if (type == "function_call") {
      done = add_function_call(*item, path, st);
    } else if (type == "function_call_output") {
      done = add_function_call_output(*item, path, st);
    } else if (type == "reasoning") {
      // An earlier response's reasoning: chat completions take none back; dropped.
    } else if (type == "item_reference") {
      return refuse(path, "item_reference points at an item stored by OpenAI; send the item itself");
    } else if (type.empty()) {
      return invalid(dot(path, "type"), "an input item needs a type");
    } else {
      return refuse(dot(path, "type"),
                    "input item type " + quoted(type) + " cannot be translated to chat completions");
    }
    if (!done) return done;
  }
  return {};
}

Status add_tools(const bj::value& value, bj::object& chat) {
  const bj::array* tools = value.if_array();
  if (tools == nullptr) return invalid("tools", "tools must be an array");
  if (tools->empty()) return {};
  bj::array out;
  out.reserve(tools->size());
  for (std::size_t i = 0; i < tools->size(); ++i) {
    const bj::object* tool = (*tools)[i].if_object();
    const std::string path = at("tools", i);
    if (tool == nullptr) return invalid(path, "a tool must be an object");
    const std::string_view type = string_or(*tool, "type");
    if (type != "function") {
      return refuse(
          dot(path, "type"),
          "tool type " + quoted(type) + " is built into OpenAI; chat completions take function tools only");
    }
    const bj::value* name = tool->if_contains("name");
    if (name == nullptr || !name->is_string() || name->get_string().empty()) {
      return invalid(dot(path, "name"), "a function tool needs a name");
    }
    bj::object function;
    function.reserve(4);
    function.emplace("name", *name);
    if (const bj::value* v = given(*tool, "description")) function.emplace("description", *v);
    if (const bj::value* v = given(*tool, "parameters")) {
      if (!v->is_object()) return invalid(dot(path, "parameters"), "parameters must be a JSON Schema object");
      function.emplace("parameters", *v);
    }
    if (const bj::value* v = given(*tool, "strict")) {
      if (!v->is_bool()) return invalid(dot(path, "strict"), "strict must be a boolean");
      function.emplace("strict", *v);
    }
    out.emplace_back(bj::object{{"type", "function"}, {"function", std::move(function)}});
  }
  chat.emplace("tools", std::move(out));
  return {};
}

Status add_tool_choice(const bj::value& value, bj::object& chat) {
  if (const bj::string* s = value.if_string()) {
    if (*s != "none" && *s != "auto" && *s != "required") {
      return invalid("tool_choice", "tool_choice must be none, auto, required or an object");
    }
    chat.emplace("tool_choice", *s);
    return {};
  }
  const bj::object* choice = value.if_object();
  if (choice == nullptr) return invalid("tool_choice", "tool_choice must be a string or an object");
  const std::string_view type = string_or(*choice, "type");
  if (type == "function") {
    const std::string_view name = string_or(*choice, "name");
    if (name.empty()) return invalid("tool_choice.name", "a function tool_choice needs a name");
    chat.emplace("tool_choice", bj::object{{"type", "function"}, {"function", bj::object{{"name", name}}}});
    return {};
  }
  if (type == "allowed_tools") {
    return refuse("tool_choice.type", "allowed_tools cannot be translated; list the allowed tools in tools");
  }
  return refuse("tool_choice.type", "tool_choice type " + quoted(type) + " names a tool built into OpenAI");
}

Status add_text(const bj::value& value, bj::object& chat) {
  const bj::object* text = value.if_object();
  if (text == nullptr) return invalid("text", "text must be an object");
  if (const bj::value* verbosity = given(*text, "verbosity")) {
    if (!verbosity->is_string()) return invalid("text.verbosity", "verbosity must be a string");
    chat.emplace("verbosity", *verbosity);
  }
  const bj::value* format_value = given(*text, "format");
  if (format_value == nullptr) return {};
  const bj::object* format = format_value->if_object();
  if (format == nullptr) return invalid("text.format", "text.format must be an object");
  const std::string_view type = string_or(*format, "type");
  if (type == "text") return {};
  if (type == "json_object") {
    chat.emplace("response_format", bj::object{{"type", "json_object"}});
    return {};
  }
  if (type != "json_schema") {
    return invalid("text.format.type", "text.format.type must be text, json_object or json_schema");
  }
  const bj::value* name = format->if_contains("name");
  if (name == nullptr || !name->is_string() || name->get_string().empty()) {
    return invalid("text.format.name", "a json_schema format needs a name");
  }
  const bj::value* schema = format->if_contains("schema");
  if (schema == nullptr || !schema->is_object()) {
    return invalid("text.format.schema", "a json_schema format needs a schema object");
  }
  bj::object json_schema;
  json_schema.reserve(4);
  json_schema.emplace("name", *name);
  if (const bj::value* v = given(*format, "description")) json_schema.emplace("description", *v);
  json_schema.emplace("schema", *schema);
  if (const bj::value* v = given(*format, "strict")) json_schema.emplace("strict", *v);
  chat.emplace("response_format",
               bj::object{{"type", "json_schema"}, {"json_schema", std::move(json_schema)}});
  return {};
}

Status copy_number(const bj::value& value, std::string_view from, std::string_view to, bj::object& chat) {
  if (value.is_null()) return {};
  if (!is_number(value)) return invalid(std::string(from), std::string(from) + " must be a number");
  chat.emplace(to, value);
  return {};
}

Status copy_integer(const bj::value& value, std::string_view from, std::string_view to, bj::object& chat) {
  if (value.is_null()) return {};
  if (!value.is_int64() && !value.is_uint64())
    return invalid(std::string(from), std::string(from) + " must be an integer");
  chat.emplace(to, value);
  return {};
}

Status copy_string(const bj::value& value, std::string_view key, bj::object& chat) {
  if (value.is_null()) return {};
  if (!value.is_string()) return invalid(std::string(key), std::string(key) + " must be a string");
  chat.emplace(key, value);
  return {};
}

// ---------------------------------------------------------------------------------------------
// Response

// A response's members with OpenAI's defaults for what a request leaves out, built once.
const bj::object& default_skeleton() {
  static const bj::object skeleton = [] {
    bj::object r(32);
    r.emplace("id", "");
    r.emplace("object", "response");
    r.emplace("created_at", 0);
    r.emplace("status", "in_progress");
    r.emplace("background", false);
    r.emplace("error", nullptr);
    r.emplace("incomplete_details", nullptr);
    r.emplace("instructions", nullptr);
    r.emplace("max_output_tokens", nullptr);
    r.emplace("max_tool_calls", nullptr);
    r.emplace("model", "");
    r.emplace("output", bj::array());
    r.emplace("parallel_tool_calls", true);
    r.emplace("previous_response_id", nullptr);
    r.emplace("reasoning", bj::object{{"effort", nullptr}, {"summary", nullptr}});
    r.emplace("service_tier", "default");
    r.emplace("store", true);
    r.emplace("temperature", 1.0);
    r.emplace("text", bj::object{{"format", bj::object{{"type", "text"}}}});
    r.emplace("tool_choice", "auto");
    r.emplace("tools", bj::array());
    r.emplace("top_logprobs", 0);
    r.emplace("top_p", 1.0);
    r.emplace("truncation", "disabled");
    r.emplace("usage", nullptr);
    r.emplace("user", nullptr);
    r.emplace("metadata", bj::object());
    return r;
  }();
  return skeleton;
}

// The request members a response echoes as they were sent (not null): those of the default
// skeleton, and three that appear only when sent.
constexpr std::string_view kEchoedDefaults[] = {"background",
                                                "instructions",
                                                "max_output_tokens",
                                                "max_tool_calls",
                                                "parallel_tool_calls",
                                                "previous_response_id",
                                                "service_tier",
                                                "store",
                                                "temperature",
                                                "text",
                                                "tool_choice",
                                                "tools",
                                                "top_logprobs",
                                                "top_p",
                                                "truncation",
                                                "user",
                                                "metadata"};
constexpr std::string_view kEchoedWhenSent[] = {"conversation", "prompt_cache_key", "safety_identifier"};

bool echoed(std::string_view key) {
  return std::find(std::begin(kEchoedDefaults), std::end(kEchoedDefaults), key) !=
             std::end(kEchoedDefaults) ||
         std::find(std::begin(kEchoedWhenSent), std::end(kEchoedWhenSent), key) != std::end(kEchoedWhenSent);
}

// What fills each member of the default skeleton when a whole response is written as text.
enum class Slot {
  kFixed,   // the default as it is
  kEchoed,  // the request's member if sent (not null), else the default
  kId,
  kCreatedAt,
  kStatus,
  kIncompleteDetails,
  kModel,
  kOutput,
  kReasoning,
  kUsage,
};

struct SkeletonMember {
  std::string key;
  std::string text;  // the default, serialized
  Slot slot = Slot::kFixed;
};

// The default skeleton's members in order, each with its default as JSON text: the one list both
// the object (skeleton) and the text (chat_response_to_responses_text) follow.
const std::vector<SkeletonMember>& skeleton_members() {
  static const std::vector<SkeletonMember> members = [] {
    static constexpr std::pair<std::string_view, Slot> kComputed[] = {
        {"id", Slot::kId},         {"created_at", Slot::kCreatedAt},
        {"status", Slot::kStatus}, {"model", Slot::kModel},
        {"output", Slot::kOutput}, {"reasoning", Slot::kReasoning},
        {"usage", Slot::kUsage},   {"incomplete_details", Slot::kIncompleteDetails}};
    std::vector<SkeletonMember> out;
    for (const auto& m : default_skeleton()) {
      SkeletonMember member{std::string(m.key()), bj::serialize(m.value())};
      if (echoed(m.key())) member.slot = Slot::kEchoed;
      for (const auto& [key, slot] : kComputed) {
        if (key == m.key()) member.slot = slot;
      }
      out.push_back(std::move(member));
    }
    return out;
  }();
  return members;
}

// Appends JSON text to a string: objects and arrays opened and closed by the caller, commas put
// between members and elements, strings escaped as Boost.JSON's serializer does.
struct JsonWriter {
  std::string& out;
  bool first = true;  // nothing yet in the object or array just opened

  void separate() {
    if (!first) out.push_back(',');
    first = false;
  }
  void open(char c) {
    separate();
    out.push_back(c);
    first = true;
  }
  void close(char c) {
    out.push_back(c);
    first = false;
  }
  void key(std::string_view k) {
    separate();
    quote(k);
    out.push_back(':');
    first = true;  // the value that follows takes no comma
  }
  void string(std::string_view s) {
    separate();
    quote(s);
  }
  void integer(std::int64_t n) {
    separate();
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, end);
  }
  void raw(std::string_view json) {
    separate();
    out.append(json);
  }
  void value(const bj::value& v) {
    separate();
    out.append(bj::serialize(v));
  }
  void quote(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t run = 0;  // start of the characters not yet copied
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out.append(s.substr(run, i - run));
      run = i + 1;
      switch (c) {
        case '"':
          out.append("\\\"");
          break;
        case '\\':
          out.append("\\\\");
          break;
        case '\n':
          out.append("\\n");
          break;
        case '\r':
          out.append("\\r");
          break;
        case '\t':
          out.append("\\t");
          break;
        case '\b':
          out.append("\\b");
          break;
        case '\f':
          out.append("\\f");
          break;
        default:
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
      }
    }
    out.append(s.substr(run));
    out.push_back('"');
  }
};

// The response object before any output: the default skeleton (copied without a key check per
// member), with the request's echoed members and `reasoning` laid over it, built in `sp`.
bj::object skeleton(const bj::object& request, std::string_view id, std::int64_t created_at,
                    std::string_view model, const bj::storage_ptr& sp = {}) {
  bj::object r(default_skeleton(), sp);
  r["id"] = id;
  r["created_at"] = created_at;
  r["model"] = model;
  for (const auto& member : request) {
    const std::string_view key = member.key();
    const bj::value& v = member.value();
    if (v.is_null()) continue;
    if (key == "reasoning") {
      if (const bj::object* asked = v.if_object()) {
        bj::object& reasoning = r["reasoning"].get_object();
        if (const bj::value* e = given(*asked, "effort")) reasoning["effort"] = *e;
        if (const bj::value* e = given(*asked, "summary")) reasoning["summary"] = *e;
      }
    } else if (echoed(key)) {
      r[key] = v;
    }
  }
  return r;
}

bj::object responses_usage(const detail::ChatUsage& u, const bj::storage_ptr& sp = {}) {
  return bj::object({{"input_tokens", u.prompt},
                     {"input_tokens_details", {{"cached_tokens", u.cached}}},
                     {"output_tokens", u.completion},
                     {"output_tokens_details", {{"reasoning_tokens", u.reasoning}}},
                     {"total_tokens", u.total}},
                    sp);
}

// "length" → max_output_tokens, "content_filter" → content_filter; else not incomplete.
std::string_view incomplete_reason(std::string_view finish_reason) noexcept {
  if (finish_reason == "length") return "max_output_tokens";
  if (finish_reason == "content_filter") return "content_filter";
  return {};
}

void set_outcome(bj::object& r, std::string_view finish_reason) {
  const std::string_view reason = incomplete_reason(finish_reason);
  if (reason.empty()) {
    r["status"] = "completed";
  } else {
    r["status"] = "incomplete";
    r["incomplete_details"] = bj::object{{"reason", reason}};
  }
}

std::string item_id(std::string_view prefix, std::string_view suffix) {
  std::string out;
  out.reserve(prefix.size() + suffix.size());
  out.append(prefix);
  out.append(suffix);
  return out;
}

std::string message_id(std::string_view suffix, std::size_t n) {
  std::string id = item_id("msg_", suffix);
  if (n > 0) {
    id.push_back('_');
    id.append(std::to_string(n));
  }
  return id;
}

std::string call_item_id(std::string_view suffix, std::int64_t index) {
  std::string id = item_id("fc_", suffix);
  id.push_back('_');
  id.append(std::to_string(index));
  return id;
}

bj::object text_part(bj::string_view text, bj::value logprobs, const bj::storage_ptr& sp = {}) {
  bj::object part(4, sp);
  part.emplace("type", "output_text");
  part.emplace("annotations", bj::array(sp));
  if (logprobs.is_array()) {
    part.emplace("logprobs", std::move(logprobs));
  } else {
    part.emplace("logprobs", bj::array(sp));
  }
  part.emplace("text", text);
  return part;
}

bj::object function_call_item(std::string_view id, std::string_view status, std::string_view arguments,
                              std::string_view call_id, std::string_view name,
                              const bj::storage_ptr& sp = {}) {
  return bj::object({{"id", id},
                     {"type", "function_call"},
                     {"status", status},
                     {"arguments", arguments},
                     {"call_id", call_id},
                     {"name", name}},
                    sp);
}

std::string_view response_error_code(const Error& error) noexcept {
  return error.status() == 429 ? "rate_limit_exceeded" : "server_error";
}

}  // namespace

Result<bj::object> responses_request_to_chat(const bj::object& request,
                                             const ResponsesRequestOptions& options,
                                             const bj::array* prior_items) {
  const bj::value* model = nullptr;
  const bj::value* input = nullptr;
  const bj::value* instructions = nullptr;
  const bj::value* tools = nullptr;
  const bj::value* tool_choice = nullptr;
  const bj::value* text = nullptr;
  const bj::value* reasoning = nullptr;
  const bj::value* include = nullptr;
  const bj::value* parallel = nullptr;
  bj::object rest;  // the members copied as they are, in the request's order
  rest.reserve(8);
  bool stream = false;
  bool logprobs = false;
  for (const auto& member : request) {
    const std::string_view key = member.key();
    const bj::value& v = member.value();
    Status done;
    if (key == "model") {
      model = &v;
    } else if (key == "input") {
      input = &v;
    } else if (key == "instructions") {
      instructions = &v;
    } else if (key == "tools") {
      tools = &v;
    } else if (key == "tool_choice") {
      tool_choice = &v;
    } else if (key == "text") {
      text = &v;
    } else if (key == "reasoning") {
      reasoning = &v;
    } else if (key == "include") {
      include = &v;
    } else if (key == "parallel_tool_calls") {
      if (!v.is_null() && !v.is_bool())
        return invalid("parallel_tool_calls", "parallel_tool_calls must be a boolean");
      parallel = v.is_null() ? nullptr : &v;
    } else if (key == "temperature" || key == "top_p") {
      done = copy_number(v, key, key, rest);
    } else if (key == "max_output_tokens") {
      done = copy_integer(v, key, "max_tokens", rest);
    } else if (key == "top_logprobs") {
      done = copy_integer(v, key, key, rest);
      logprobs = logprobs || (v.is_int64() && v.get_int64() > 0);
    } else if (key == "user" || key == "safety_identifier" || key == "prompt_cache_key" ||
               key == "service_tier") {
      done = copy_string(v, key, rest);
    } else if (key == "stream") {
      if (!v.is_null() && !v.is_bool()) return invalid("stream", "stream must be a boolean");
      stream = v.is_bool() && v.get_bool();
    } else if (key == "truncation") {
      if (v.is_string() && v.get_string() == "auto") {
        return refuse("truncation",
                      "truncation auto needs the model's context window; only disabled is translated");
      }
      if (!v.is_null() && !(v.is_string() && v.get_string() == "disabled")) {
        return invalid("truncation", "truncation must be auto or disabled");
      }
    } else if (key == "max_tool_calls") {
      if (!v.is_null()) return refuse("max_tool_calls", "max_tool_calls has no chat-completions equivalent");
    } else if (key == "prompt") {
      if (!v.is_null()) return refuse("prompt", "prompt templates are stored by OpenAI; send input instead");
    } else if (key == "store" || key == "previous_response_id" || key == "conversation" ||
               key == "background" || key == "metadata" || key == "stream_options" ||
               key == "prompt_cache_retention") {
      // parley's own business (the stored response, the stream), not the provider's
    } else {
      return refuse(std::string(key), "Unknown parameter: " + quoted(key) + ".");
    }
    if (!done) return std::unexpected(std::move(done.error()));
  }

  if (model == nullptr || !model->is_string() || model->get_string().empty()) {
    return invalid("model", "model must be a non-empty string");
  }
  bj::object chat;
  chat.reserve(rest.size() + 12);
  chat.emplace("model", *model);
  chat.emplace("messages", nullptr);  // filled below: model and messages come first
  bj::array messages;
  std::size_t expected = 1;
  if (prior_items != nullptr) expected += prior_items->size();
  if (input != nullptr && input->is_array()) expected += input->get_array().size();
  messages.reserve(expected);
  ItemState st{messages, {}};

  if (instructions != nullptr && !instructions->is_null()) {
    const bj::string* s = instructions->if_string();
    if (s == nullptr) return invalid("instructions", "instructions must be a string");
    if (!s->empty()) messages.emplace_back(bj::object{{"role", "system"}, {"content", *s}});
  }
  const std::size_t system_messages = messages.size();
  if (prior_items != nullptr) {
    if (Status done = add_items(*prior_items, "items", st); !done) {
      Error e = std::move(done.error());
      e.message = "an item of the earlier response cannot be translated (" + e.param.value_or("items") +
                  "): " + e.message;
      e.param = "previous_response_id";
      return std::unexpected(std::move(e));
    }
  }
  if (input != nullptr && !input->is_null()) {
    if (const bj::string* s = input->if_string()) {
      messages.emplace_back(bj::object{{"role", "user"}, {"content", *s}});
    } else if (const bj::array* items = input->if_array()) {
      if (Status done = add_items(*items, "input", st); !done)
        return std::unexpected(std::move(done.error()));
    } else {
      return invalid("input", "input must be a string or an array of items");
    }
  }
  if (messages.size() == system_messages) return invalid("input", "input is required");
  chat["messages"] = std::move(messages);

  bool has_tools = false;
  if (tools != nullptr && !tools->is_null()) {
    if (Status done = add_tools(*tools, chat); !done) return std::unexpected(std::move(done.error()));
    has_tools = chat.contains("tools");
  }
  if (tool_choice != nullptr && !tool_choice->is_null()) {
    bj::object choice;
    if (Status done = add_tool_choice(*tool_choice, choice); !done)
      return std::unexpected(std::move(done.error()));
    // Chat completions refuse tool_choice without tools; with none there is nothing to choose.
    if (has_tools) chat.emplace("tool_choice", std::move(choice["tool_choice"]));
  }
  if (parallel != nullptr && has_tools) chat.emplace("parallel_tool_calls", *parallel);
  if (text != nullptr && !text->is_null()) {
    if (Status done = add_text(*text, chat); !done) return std::unexpected(std::move(done.error()));
  }
  if (reasoning != nullptr && !reasoning->is_null()) {
    const bj::object* r = reasoning->if_object();
    if (r == nullptr) return invalid("reasoning", "reasoning must be an object");
    if (const bj::value* effort = given(*r, "effort")) {
      if (!effort->is_string()) return invalid("reasoning.effort", "reasoning.effort must be a string");
      if (!options.reasoning_effort) {
        return refuse("reasoning",
                      "this model is served through chat completions without a reasoning effort; "
                      "remove reasoning.effort");
      }
      chat.emplace("reasoning_effort", *effort);
    }
  }
  if (include != nullptr && !include->is_null()) {
    const bj::array* entries = include->if_array();
    if (entries == nullptr) return invalid("include", "include must be an array of strings");
    for (std::size_t i = 0; i < entries->size(); ++i) {
      const bj::string* entry = (*entries)[i].if_string();
      if (entry == nullptr) return invalid(at("include", i), "include entries must be strings");
      if (*entry == "message.output_text.logprobs") {
        logprobs = true;
      } else {
        return refuse(at("include", i), "include " + quoted(*entry) +
                                            " needs a built-in tool or state kept by OpenAI; it cannot be "
                                            "translated to chat completions");
      }
    }
  }
  for (auto& member : rest) chat.emplace(member.key(), std::move(member.value()));
  if (logprobs) chat.emplace("logprobs", true);
  if (stream || options.stream) {
    chat.emplace("stream", true);
    chat.emplace("stream_options", bj::object{{"include_usage", true}});
  }
  return chat;
}

Result<bj::array> responses_input_items(const bj::object& request) {
  bj::array items;
  const bj::value* input = given(request, "input");
  if (input == nullptr) return items;
  if (const bj::string* s = input->if_string()) {
    bj::array content;
    content.emplace_back(bj::object{{"type", "input_text"}, {"text", *s}});
    items.emplace_back(bj::object{{"type", "message"}, {"role", "user"}, {"content", std::move(content)}});
    return items;
  }
  const bj::array* list = input->if_array();
  if (list == nullptr) return invalid("input", "input must be a string or an array of items");
  items.reserve(list->size());
  for (std::size_t i = 0; i < list->size(); ++i) {
    const bj::object* item = (*list)[i].if_object();
    if (item == nullptr) return invalid(at("input", i), "an input item must be an object");
    if (item->contains("type") || !item->contains("role")) {
      items.emplace_back(*item);
      continue;
    }
    bj::object message;
    message.reserve(item->size() + 1);
    message.emplace("type", "message");
    for (const auto& member : *item) {
      if (member.key() == "content" && member.value().is_string()) {
        const bool assistant = string_or(*item, "role") == "assistant";
        bj::array content;
        content.emplace_back(
            bj::object{{"type", assistant ? "output_text" : "input_text"}, {"text", member.value()}});
        message.emplace("content", std::move(content));
      } else {
        message.emplace(member.key(), member.value());
      }
    }
    items.emplace_back(std::move(message));
  }
  return items;
}

Result<std::string> chat_response_to_responses_text(const bj::object& chat, const bj::object& request,
                                                    const ResponseMeta& meta) {
  const bj::array* choices = detail::array_member(chat, "choices");
  if (choices == nullptr || choices->empty() || !(*choices)[0].is_object()) {
    return fail(ErrorKind::kOpenAiApiError, "the provider's answer has no choices");
  }
  const bj::object& choice = (*choices)[0].get_object();
  static const bj::object no_message;
  const bj::object* found = detail::object_member(choice, "message");
  const bj::object& message = found != nullptr ? *found : no_message;
  const std::string_view finish_reason = string_or(choice, "finish_reason");
  const std::string_view model = string_or(chat, "model", string_or(request, "model"));
  const std::int64_t created = meta.created_at != 0 ? meta.created_at : integer_or(chat, "created", 0);
  const std::string_view reason = incomplete_reason(finish_reason);
  const std::string_view item_status = reason.empty() ? "completed" : "incomplete";
  const std::string_view suffix = detail::id_suffix(meta.id, "resp_");

  std::string joined;
  std::string_view text;
  if (const bj::value* content = given(message, "content")) {
    if (content->is_string()) {
      text = content->get_string();
    } else if (const bj::array* parts = content->if_array()) {
      for (const bj::value& part : *parts) {
        if (const bj::object* p = part.if_object()) joined.append(string_or(*p, "text"));
      }
      text = joined;
    }
  }
  const std::string_view refusal = string_or(message, "refusal");
  const bj::array* tool_calls = detail::array_member(message, "tool_calls");

  std::string out;
  out.reserve(1200 + text.size() + refusal.size());
  JsonWriter w{out};
  w.open('{');
  for (const SkeletonMember& m : skeleton_members()) {
    w.key(m.key);
    switch (m.slot) {
      case Slot::kId:
        w.string(meta.id);
        break;
      case Slot::kCreatedAt:
        w.integer(created);
        break;
      case Slot::kStatus:
        w.string(reason.empty() ? "completed" : "incomplete");
        break;
      case Slot::kIncompleteDetails:
        if (reason.empty()) {
          w.raw("null");
        } else {
          w.open('{');
          w.key("reason");
          w.string(reason);
          w.close('}');
        }
        break;
      case Slot::kModel:
        w.string(model);
        break;
      case Slot::kReasoning: {
        const bj::object* asked = detail::object_member(request, "reasoning");
        w.open('{');
        for (const std::string_view k : {"effort", "summary"}) {
          w.key(k);
          const bj::value* v = asked != nullptr ? given(*asked, k) : nullptr;
          if (v != nullptr) {
            w.value(*v);
          } else {
            w.raw("null");
          }
        }
        w.close('}');
        break;
      }
      case Slot::kOutput:
        w.open('[');
        if (!text.empty() || !refusal.empty()) {
          w.open('{');
          w.key("id");
          w.string(message_id(suffix, 0));
          w.key("type");
          w.string("message");
          w.key("status");
          w.string(item_status);
          w.key("content");
          w.open('[');
          if (!text.empty()) {
            w.open('{');
            w.key("type");
            w.string("output_text");
            w.key("annotations");
            w.raw("[]");
            w.key("logprobs");
            const bj::object* lp = detail::object_member(choice, "logprobs");
            const bj::array* lp_content = lp != nullptr ? detail::array_member(*lp, "content") : nullptr;
            if (lp_content != nullptr) {
              w.value(*lp_content);
            } else {
              w.raw("[]");
            }
            w.key("text");
            w.string(text);
            w.close('}');
          }
          if (!refusal.empty()) {
            w.open('{');
            w.key("type");
            w.string("refusal");
            w.key("refusal");
            w.string(refusal);
            w.close('}');
          }
          w.close(']');
          w.key("role");
          w.string("assistant");
          w.close('}');
        }
        if (tool_calls != nullptr) {
          for (std::size_t k = 0; k < tool_calls->size(); ++k) {
            const bj::object* call = (*tool_calls)[k].if_object();
            if (call == nullptr) continue;
            const bj::object* function = detail::object_member(*call, "function");
            w.open('{');
            w.key("id");
            w.string(call_item_id(suffix, static_cast<std::int64_t>(k)));
            w.key("type");
            w.string("function_call");
            w.key("status");
            w.string(item_status);
            w.key("arguments");
            w.string(function != nullptr ? string_or(*function, "arguments") : std::string_view{});
            w.key("call_id");
            w.string(string_or(*call, "id"));
            w.key("name");
            w.string(function != nullptr ? string_or(*function, "name") : std::string_view{});
            w.close('}');
          }
        }
        w.close(']');
        break;
      case Slot::kUsage: {
        const detail::ChatUsage usage = detail::read_chat_usage(detail::object_member(chat, "usage"));
        if (!usage.present) {
          w.raw("null");
          break;
        }
        w.open('{');
        w.key("input_tokens");
        w.integer(usage.prompt);
        w.key("input_tokens_details");
        w.open('{');
        w.key("cached_tokens");
        w.integer(usage.cached);
        w.close('}');
        w.key("output_tokens");
        w.integer(usage.completion);
        w.key("output_tokens_details");
        w.open('{');
        w.key("reasoning_tokens");
        w.integer(usage.reasoning);
        w.close('}');
        w.key("total_tokens");
        w.integer(usage.total);
        w.close('}');
        break;
      }
      case Slot::kEchoed:
        if (const bj::value* v = given(request, m.key)) {
          w.value(*v);
        } else {
          w.raw(m.text);
        }
        break;
      case Slot::kFixed:
        w.raw(m.text);
        break;
    }
  }
  for (const std::string_view k : kEchoedWhenSent) {
    if (const bj::value* v = given(request, k)) {
      w.key(k);
      w.value(*v);
    }
  }
  w.close('}');
  return out;
}

Result<bj::object> chat_response_to_responses(const bj::object& chat, const bj::object& request,
                                              const ResponseMeta& meta, const bj::storage_ptr& sp) {
  auto text = chat_response_to_responses_text(chat, request, meta);
  if (!text) return std::unexpected(std::move(text.error()));
  boost::system::error_code ec;
  bj::value parsed = bj::parse(*text, ec, sp);
  // Only a string that is not UTF-8 (built in memory, never parsed) can make the text unreadable.
  if (ec || !parsed.is_object())
    return fail(ErrorKind::kOpenAiApiError, "the provider's answer is not UTF-8");
  return std::move(parsed.get_object());
}

// ---------------------------------------------------------------------------------------------
// Stream

ResponsesStream::ResponsesStream(const bj::object& request, ResponseMeta meta)
    : meta_(std::move(meta)),
      response_(skeleton(request, meta_.id, meta_.created_at, string_or(request, "model"))),
      model_(string_or(request, "model")) {}

void ResponsesStream::emit(std::string_view name, bj::object data, std::vector<StreamEvent>& out) {
  data.emplace("sequence_number", sequence_++);
  out.push_back(StreamEvent{name, std::move(data)});
}

void ResponsesStream::start(std::vector<StreamEvent>& out) {
  if (started_) return;
  started_ = true;
  emit("response.created", bj::object{{"type", "response.created"}, {"response", response_}}, out);
  emit("response.in_progress", bj::object{{"type", "response.in_progress"}, {"response", response_}}, out);
}

void ResponsesStream::open_message(std::vector<StreamEvent>& out) {
  open_ = Open::kMessage;
  open_index_ = output_.size();
  item_id_ = message_id(detail::id_suffix(meta_.id, "resp_"), messages_++);
  parts_.clear();
  emit("response.output_item.added",
       bj::object{{"type", "response.output_item.added"},
                  {"output_index", detail::index(open_index_)},
                  {"item", bj::object{{"id", item_id_},
                                      {"type", "message"},
                                      {"status", "in_progress"},
                                      {"content", bj::array()},
                                      {"role", "assistant"}}}},
       out);
}

void ResponsesStream::open_part(bool refusal, std::vector<StreamEvent>& out) {
  part_open_ = true;
  part_refusal_ = refusal;
  part_text_.clear();
  part_logprobs_.clear();
  bj::object part = refusal ? bj::object{{"type", "refusal"}, {"refusal", ""}} : text_part("", bj::array());
  emit("response.content_part.added",
       bj::object{{"type", "response.content_part.added"},
                  {"item_id", item_id_},
                  {"output_index", detail::index(open_index_)},
                  {"content_index", detail::index(parts_.size())},
                  {"part", std::move(part)}},
       out);
}

void ResponsesStream::close_part(std::vector<StreamEvent>& out) {
  if (!part_open_) return;
  part_open_ = false;
  const std::size_t content_index = parts_.size();
  bj::object part;
  if (part_refusal_) {
    part = bj::object{{"type", "refusal"}, {"refusal", part_text_}};
    emit("response.refusal.done",
         bj::object{{"type", "response.refusal.done"},
                    {"item_id", item_id_},
                    {"output_index", detail::index(open_index_)},
                    {"content_index", detail::index(content_index)},
                    {"refusal", part_text_}},
         out);
  } else {
    part = text_part(part_text_, part_logprobs_);
    emit("response.output_text.done",
         bj::object{{"type", "response.output_text.done"},
                    {"item_id", item_id_},
                    {"output_index", detail::index(open_index_)},
                    {"content_index", detail::index(content_index)},
                    {"text", part_text_},
                    {"logprobs", part_logprobs_}},
         out);
  }
  emit("response.content_part.done",
       bj::object{{"type", "response.content_part.done"},
                  {"item_id", item_id_},
                  {"output_index", detail::index(open_index_)},
                  {"content_index", detail::index(content_index)},
                  {"part", part}},
       out);
  parts_.emplace_back(std::move(part));
}

void ResponsesStream::close_item(std::vector<StreamEvent>& out) {
  const std::string_view status = incomplete_reason(finish_reason_).empty() ? "completed" : "incomplete";
  if (open_ == Open::kMessage) {
    close_part(out);
    bj::object item{{"id", item_id_},
                    {"type", "message"},
                    {"status", status},
                    {"content", std::move(parts_)},
                    {"role", "assistant"}};
    parts_ = bj::array();
    emit("response.output_item.done",
         bj::object{{"type", "response.output_item.done"},
                    {"output_index", detail::index(open_index_)},
                    {"item", item}},
         out);
    output_.emplace_back(std::move(item));
  } else if (open_ == Open::kFunctionCall) {
    emit("response.function_call_arguments.done",
         bj::object{{"type", "response.function_call_arguments.done"},
                    {"item_id", item_id_},
                    {"output_index", detail::index(open_index_)},
                    {"name", call_name_},
                    {"arguments", call_arguments_}},
         out);
    bj::object item = function_call_item(item_id_, status, call_arguments_, call_id_, call_name_);
    emit("response.output_item.done",
         bj::object{{"type", "response.output_item.done"},
                    {"output_index", detail::index(open_index_)},
                    {"item", item}},
         out);
    output_.emplace_back(std::move(item));
  }
  open_ = Open::kNone;
}

void ResponsesStream::text_delta(std::string_view text, bool refusal, const bj::value* logprobs,
                                 std::vector<StreamEvent>& out) {
  if (open_ != Open::kMessage) {
    close_item(out);
    open_message(out);
  }
  if (!part_open_ || part_refusal_ != refusal) {
    close_part(out);
    open_part(refusal, out);
  }
  part_text_.append(text);
  bj::object event;
  event.reserve(7);
  event.emplace("type", refusal ? "response.refusal.delta" : "response.output_text.delta");
  event.emplace("item_id", item_id_);
  event.emplace("output_index", detail::index(open_index_));
  event.emplace("content_index", detail::index(parts_.size()));
  event.emplace("delta", text);
  if (!refusal) {
    if (logprobs != nullptr && logprobs->is_array()) {
      for (const bj::value& lp : logprobs->get_array()) part_logprobs_.push_back(lp);
      event.emplace("logprobs", *logprobs);
    } else {
      event.emplace("logprobs", bj::array());
    }
  }
  emit(refusal ? "response.refusal.delta" : "response.output_text.delta", std::move(event), out);
}

void ResponsesStream::tool_call_delta(const bj::object& call, std::size_t position,
                                      std::vector<StreamEvent>& out) {
  const std::int64_t index = integer_or(call, "index", static_cast<std::int64_t>(position));
  const bj::object* function = detail::object_member(call, "function");
  const std::string_view name = function != nullptr ? string_or(*function, "name") : std::string_view{};
  const std::string_view arguments =
      function != nullptr ? string_or(*function, "arguments") : std::string_view{};
  const bool open = open_ == Open::kFunctionCall && call_index_ == index;
  if (!open) {
    for (const auto& [chat_index, output_index] : calls_) {
      if (chat_index != index) continue;
      // A piece of a call already closed: kept in the final response, no event.
      bj::value& args = output_[output_index].get_object()["arguments"];
      if (args.is_string()) args.get_string().append(arguments);
      return;
    }
    close_item(out);
    open_ = Open::kFunctionCall;
    open_index_ = output_.size();
    calls_.emplace_back(index, open_index_);
    const std::string_view suffix = detail::id_suffix(meta_.id, "resp_");
    call_index_ = index;
    item_id_ = call_item_id(suffix, index);
    call_id_ = string_or(call, "id");
    if (call_id_.empty()) call_id_ = "call_" + std::string(suffix) + "_" + std::to_string(index);
    call_name_ = name;
    call_arguments_.clear();
    emit("response.output_item.added",
         bj::object{{"type", "response.output_item.added"},
                    {"output_index", detail::index(open_index_)},
                    {"item", function_call_item(item_id_, "in_progress", "", call_id_, call_name_)}},
         out);
  } else if (call_name_.empty() && !name.empty()) {
    call_name_ = name;
  }
  if (arguments.empty()) return;
  call_arguments_.append(arguments);
  emit("response.function_call_arguments.delta",
       bj::object{{"type", "response.function_call_arguments.delta"},
                  {"item_id", item_id_},
                  {"output_index", detail::index(open_index_)},
                  {"delta", arguments}},
       out);
}

void ResponsesStream::feed(const bj::object& chunk, std::vector<StreamEvent>& out) {
  if (finished_) return;
  start(out);
  if (const bj::object* error = detail::object_member(chunk, "error")) {
    const std::string_view code = string_or(*error, "code", "server_error");
    fail_with(code.empty() ? "server_error" : code, string_or(*error, "message", "the provider failed"), out);
    return;
  }
  if (const std::string_view model = string_or(chunk, "model"); !model.empty() && model != model_)
    model_ = model;
  if (const bj::value* usage = given(chunk, "usage"); usage != nullptr && usage->is_object()) usage_ = *usage;
  detail::for_each_choice_piece(chunk, [&](const detail::ChoicePiece& piece) {
    if (!piece.text.empty()) text_delta(piece.text, false, piece.logprobs, out);
    if (!piece.refusal.empty()) text_delta(piece.refusal, true, nullptr, out);
    if (piece.tool_calls != nullptr) {
      for (std::size_t n = 0; n < piece.tool_calls->size(); ++n) {
        if (const bj::object* call = (*piece.tool_calls)[n].if_object()) tool_call_delta(*call, n, out);
      }
    }
    if (!piece.finish_reason.empty()) finish_reason_ = piece.finish_reason;
  });
}

void ResponsesStream::finish(std::vector<StreamEvent>& out) {
  if (finished_) return;
  start(out);
  close_item(out);
  finished_ = true;
  set_outcome(response_, finish_reason_);
  response_["model"] = model_;
  response_["output"] = std::move(output_);
  output_ = bj::array();
  if (const bj::object* usage = usage_.if_object())
    response_["usage"] = responses_usage(detail::read_chat_usage(usage));
  const bool incomplete = string_or(response_, "status") == "incomplete";
  const std::string_view name = incomplete ? "response.incomplete" : "response.completed";
  emit(name, bj::object{{"type", name}, {"response", response_}}, out);
}

void ResponsesStream::fail(const Error& error, std::vector<StreamEvent>& out) {
  fail_with(response_error_code(error), error.message, out);
}

void ResponsesStream::fail_with(std::string_view code, std::string_view message,
                                std::vector<StreamEvent>& out) {
  if (finished_) return;
  start(out);
  finished_ = true;
  response_["status"] = "failed";
  response_["error"] = bj::object{{"code", code}, {"message", message}};
  response_["model"] = model_;
  response_["output"] = std::move(output_);
  output_ = bj::array();
  if (const bj::object* usage = usage_.if_object())
    response_["usage"] = responses_usage(detail::read_chat_usage(usage));
  emit("response.failed", bj::object{{"type", "response.failed"}, {"response", response_}}, out);
}

}  // namespace parley::translate
