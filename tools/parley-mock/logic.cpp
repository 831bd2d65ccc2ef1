#include <algorithm>
#include <array>
#include <bit>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numbers>
#include <span>

#include "mock.hpp"

namespace parley::mock {

namespace json = boost::json;

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

std::string_view kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "an integer";
    case json::kind::double_:
      return "a decimal";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

Reply invalid_type(std::string_view param, std::string_view expected, const json::value& got) {
  std::string message = "Invalid type for '";
  message.append(param).append("': expected ").append(expected).append(", but got ");
  message.append(kind_name(got)).append(" instead.");
  return api_error(400, message, "invalid_request_error", param, "invalid_type");
}

Reply missing(std::string_view param) {
  std::string message = "Missing required parameter: '";
  message.append(param).append("'.");
  return api_error(400, message, "invalid_request_error", param, "missing_required_parameter");
}

Reply bad_json() {
  return api_error(400,
                   "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, "
                   "but what was sent was not valid JSON.",
                   "invalid_request_error");
}

// Parsed requests live only while a reply is built: a bump allocator over a stack buffer spares
// the many small allocations of a parse (larger documents spill to the heap).
class ParseArena {
 public:
  json::storage_ptr storage() { return json::storage_ptr(&resource_); }

 private:
  alignas(16) unsigned char buffer_[4096];
  json::monotonic_resource resource_{buffer_, sizeof(buffer_)};
};

// A present, non-null member, or nullptr.
const json::value* member(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v == nullptr || v->is_null() ? nullptr : v;
}

std::optional<std::int64_t> as_integer(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    return v.get_uint64() > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX
                                                                  : static_cast<std::int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    double d = v.get_double();
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9e15) return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

// Reads an optional integer parameter within [lo, hi]; 0 when absent.
std::expected<std::int64_t, Reply> integer_param(const json::object& o, std::string_view key, std::int64_t lo,
                                                 std::int64_t hi) {
  const json::value* v = member(o, key);
  if (v == nullptr) return 0;
  std::optional<std::int64_t> i = as_integer(*v);
  if (!i) return std::unexpected(invalid_type(key, "an integer", *v));
  if (*i < lo || *i > hi) {
    std::string message = "Invalid '";
    message.append(key).append("': integer ").append(*i < lo ? "below minimum" : "above maximum");
    message.append(" value. Expected a value ").append(*i < lo ? ">= " : "<= ");
    message.append(std::to_string(*i < lo ? lo : hi)).append(", but got ").append(std::to_string(*i));
    message.append(" instead.");
    return std::unexpected(api_error(400, message, "invalid_request_error", key,
                                     *i < lo ? "integer_below_min_value" : "integer_above_max_value"));
  }
  return *i;
}

std::expected<bool, Reply> bool_param(const json::object& o, std::string_view key) {
  const json::value* v = member(o, key);
  if (v == nullptr) return false;
  if (!v->is_bool()) return std::unexpected(invalid_type(key, "a boolean", *v));
  return v->get_bool();
}

// text(message) from the header comment; the error names the offending parameter.
std::expected<std::string, Reply> message_text(const json::value& content, std::size_t index) {
  if (content.is_null()) return std::string{};
  if (content.is_string()) return std::string(content.get_string());
  std::string param = "messages[" + std::to_string(index) + "].content";
  if (!content.is_array()) {
    return std::unexpected(invalid_type(param, "one of a string or array of objects", content));
  }
  std::string text;
  bool first = true;
  for (const json::value& part : content.get_array()) {
    const json::object* p = part.if_object();
    if (p == nullptr) return std::unexpected(invalid_type(param, "an array of objects", part));
    const json::value* type = p->if_contains("type");
    const json::value* t = p->if_contains("text");
    if (type == nullptr || !type->is_string() || type->get_string() != "text") continue;
    if (t == nullptr || !t->is_string()) return std::unexpected(missing(param + ".text"));
    if (!first) text.push_back(' ');
    text.append(t->get_string());
    first = false;
  }
  return text;
}

json::object usage_object(std::uint64_t prompt, std::uint64_t completion) {
  return json::object{
      {"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

constexpr std::string_view kFingerprint = "fp_parley_mock";

std::uint64_t fnv1a(std::string_view data) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::vector<float> embed(std::string_view key, std::uint32_t dimensions) {
  std::uint64_t h = fnv1a(key);
  std::vector<float> v(dimensions);
  double norm = 0;
  for (std::uint32_t d = 0; d < dimensions; ++d) {
    // 24 random bits mapped onto [-1, 1): exactly representable as float.
    auto bits = static_cast<std::int64_t>(splitmix64(h + d) >> 40);
    v[d] = static_cast<float>(bits - (1 << 23)) / static_cast<float>(1 << 23);
    norm += static_cast<double>(v[d]) * v[d];
  }
  norm = std::sqrt(norm);
  if (norm > 0) {
    for (float& x : v) x = static_cast<float>(x / norm);
  }
  return v;
}

std::string base64(const unsigned char* data, std::size_t size) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (std::size_t i = 0; i < size; i += 3) {
    std::uint32_t n = static_cast<std::uint32_t>(data[i]) << 16;
    if (i + 1 < size) n |= static_cast<std::uint32_t>(data[i + 1]) << 8;
    if (i + 2 < size) n |= data[i + 2];
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < size ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < size ? kAlphabet[n & 63] : '=');
  }
  return out;
}

std::string floats_base64(const std::vector<float>& v) {
  std::vector<unsigned char> bytes(v.size() * 4);
  for (std::size_t i = 0; i < v.size(); ++i) {
    auto u = std::bit_cast<std::uint32_t>(v[i]);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<unsigned char>(u >> (8 * b));
  }
  return base64(bytes.data(), bytes.size());
}

// JSON text like json::serialize, but doubles in their shortest form ("0.5", not "5E-1"), so that
// structured replies and transcriptions read like OpenAI's.
void append_json(const json::value& v, std::string& out) {
  switch (v.kind()) {
    case json::kind::null:
      out.append("null");
      return;
    case json::kind::bool_:
      out.append(v.get_bool() ? "true" : "false");
      return;
    case json::kind::int64:
      out.append(std::to_string(v.get_int64()));
      return;
    case json::kind::uint64:
      out.append(std::to_string(v.get_uint64()));
      return;
    case json::kind::double_: {
      std::array<char, 32> buffer{};
      auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v.get_double());
      out.append(buffer.data(), ec == std::errc{} ? end : buffer.data());
      return;
    }
    case json::kind::string:
      out.append(json::serialize(v.get_string()));
      return;
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const json::value& item : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        append_json(item, out);
      }
      out.push_back(']');
      return;
    }
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        out.append(json::serialize(key)).push_back(':');
        append_json(item, out);
      }
      out.push_back('}');
      return;
    }
  }
}

std::string to_json_text(const json::value& v) {
  std::string out;
  append_json(v, out);
  return out;
}

// What a structured reply is built from.
struct SchemaInput {
  const json::value& root;   // the whole schema, for local "$ref"s
  std::string_view reply;    // the untruncated reply text: every string property
  std::uint64_t user_words;  // every integer property
  bool question;             // the last user message contains '?': enums take their first member
};

// Deep enough for any real schema; stops recursive ones.
constexpr int kMaxSchemaDepth = 32;

json::value build_from_schema(const json::value& schema, const SchemaInput& in, int depth) {
  if (depth > kMaxSchemaDepth || !schema.is_object()) return nullptr;
  const json::object& s = schema.get_object();
  if (const json::value* ref = s.if_contains("$ref"); ref != nullptr && ref->is_string()) {
    std::string_view r = ref->get_string();
    if (!r.starts_with('#')) return nullptr;
    json::error_code ec;
    const json::value* target = r.size() == 1 ? &in.root : in.root.find_pointer(r.substr(1), ec);
    return target == nullptr ? json::value(nullptr) : build_from_schema(*target, in, depth + 1);
  }
  if (const json::value* c = s.if_contains("const")) return json::value(*c, json::storage_ptr());
  if (const json::value* e = s.if_contains("enum");
      e != nullptr && e->is_array() && !e->get_array().empty()) {
    const json::array& members = e->get_array();
    return json::value(in.question ? members.front() : members.back(), json::storage_ptr());
  }
  for (std::string_view key : {"anyOf", "oneOf", "allOf"}) {
    const json::value* options = s.if_contains(key);
    if (options == nullptr || !options->is_array() || options->get_array().empty()) continue;
    // The first alternative that is not just {"type":"null"}.
    const json::array& list = options->get_array();
    const json::value* pick = &list.front();
    for (const json::value& option : list) {
      const json::value* t = option.is_object() ? option.get_object().if_contains("type") : nullptr;
      if (t == nullptr || !t->is_string() || t->get_string() != "null") {
        pick = &option;
        break;
      }
    }
    return build_from_schema(*pick, in, depth + 1);
  }
  std::string_view type;
  if (const json::value* t = s.if_contains("type")) {
    if (t->is_string()) type = t->get_string();
    if (t->is_array()) {
      for (const json::value& x : t->get_array()) {
        if (!x.is_string()) continue;
        if (type.empty() || type == "null") type = x.get_string();
      }
    }
  }
  if (type.empty()) type = s.contains("properties") ? "object" : "string";
  if (type == "object") {
    json::object out;
    if (const json::value* props = s.if_contains("properties"); props != nullptr && props->is_object()) {
      for (const auto& [key, sub] : props->get_object()) out[key] = build_from_schema(sub, in, depth + 1);
    }
    return out;
  }
  if (type == "array") return json::array{};
  if (type == "string") return json::string(in.reply);
  if (type == "integer") return in.user_words;
  if (type == "number") return 0.5;
  if (type == "boolean") return true;
  return nullptr;
}

// Splits `content` into stream deltas of whole words, each with the whitespace before it (trailing
// whitespace goes with the last); `chunks` 0 means one per word. They concatenate to `content`.
std::vector<std::string> split_deltas(std::string_view content, std::uint32_t chunks) {
  std::vector<std::size_t> ends;  // one past each word
  for (std::size_t i = 0; i < content.size(); ++i) {
    if (!is_space(content[i]) && (i + 1 == content.size() || is_space(content[i + 1]))) ends.push_back(i + 1);
  }
  if (ends.empty()) {
    if (content.empty()) return {};
    return {std::string(content)};
  }
  ends.back() = content.size();
  std::size_t pieces = chunks == 0 ? ends.size() : std::min<std::size_t>(chunks, ends.size());
  std::size_t base = ends.size() / pieces;
  std::size_t extra = ends.size() % pieces;
  std::vector<std::string> deltas;
  deltas.reserve(pieces);
  std::size_t start = 0;
  std::size_t w = 0;
  for (std::size_t p = 0; p < pieces; ++p) {
    w += base + (p < extra ? 1 : 0);
    std::size_t end = ends[w - 1];
    deltas.emplace_back(content.substr(start, end - start));
    start = end;
  }
  return deltas;
}

enum class ReplyFormat { kText, kJsonObject, kJsonSchema };

Reply invalid_value(std::string_view param, std::string_view message) {
  return api_error(400, message, "invalid_request_error", param, "invalid_value");
}

// Chat completions' tool-call convention: "use tool NAME" in the last user message, with a function
// tool NAME in `tools` and tool_choice not "none", makes the reply that tool's call.
void plan_chat_tool_call(const json::object& o, std::string_view last_user, ChatPlan& plan) {
  const std::vector<std::string_view> words = split_words(last_user);
  std::string_view name;
  for (std::size_t i = 0; i + 2 < words.size(); ++i) {
    if (words[i] == "use" && words[i + 1] == "tool") {
      name = words[i + 2];
      break;
    }
  }
  if (name.empty()) return;
  if (const json::value* choice = o.if_contains("tool_choice");
      choice != nullptr && choice->is_string() && choice->get_string() == "none") {
    return;
  }
  const json::value* tools = o.if_contains("tools");
  if (tools == nullptr || !tools->is_array()) return;
  for (const json::value& tool : tools->get_array()) {
    const json::object* t = tool.if_object();
    const json::value* function = t == nullptr ? nullptr : t->if_contains("function");
    if (function == nullptr || !function->is_object()) continue;
    const json::value* fname = function->get_object().if_contains("name");
    if (fname == nullptr || !fname->is_string() || fname->get_string() != name) continue;
    std::vector<std::string_view> reply = {"mock", "reply:"};
    reply.insert(reply.end(), words.begin(), words.end());
    std::string full;
    for (std::size_t i = 0; i < reply.size(); ++i) {
      if (i > 0) full.push_back(' ');
      full.append(reply[i]);
    }
    const json::value* params = function->get_object().if_contains("parameters");
    json::value args = json::object{};
    if (params != nullptr && params->is_object()) {
      SchemaInput in{*params, full, words.size(), last_user.find('?') != std::string_view::npos};
      args = build_from_schema(*params, in, 0);
    }
    plan.tool_name = std::string(name);
    plan.tool_arguments = args.is_object() ? to_json_text(args) : "{}";
    plan.content.clear();
    plan.finish_reason = "tool_calls";
    return;
  }
}

}  // namespace

std::size_t count_words(std::string_view text) {
  std::size_t n = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = is_space(c);
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

Reply api_error(unsigned status, std::string_view message, std::string_view type, std::string_view param,
                std::string_view code) {
  json::object error{{"message", message},
                     {"type", type},
                     {"param", param.empty() ? json::value(nullptr) : json::value(param)},
                     {"code", code.empty() ? json::value(nullptr) : json::value(code)}};
  return Reply{status, json::serialize(json::object{{"error", std::move(error)}}), {}};
}

Reply default_error(unsigned status) {
  switch (status) {
    case 400:
      return api_error(status, "Bad request (injected by parley-mock).", "invalid_request_error");
    case 401:
      return api_error(status, "Incorrect API key provided.", "invalid_request_error", {}, "invalid_api_key");
    case 403:
      return api_error(status, "You are not allowed to access this resource.", "invalid_request_error", {},
                       "permission_denied");
    case 404:
      return api_error(status, "The model does not exist or you do not have access to it.",
                       "invalid_request_error", {}, "model_not_found");
    case 408:
      return api_error(status, "Request timed out.", "invalid_request_error", {}, "timeout");
    case 409:
      return api_error(status, "Conflict.", "invalid_request_error");
    case 422:
      return api_error(status, "Unprocessable request.", "invalid_request_error");
    case 429:
      return api_error(status, "Rate limit reached for requests. Please try again later.", "requests", {},
                       "rate_limit_exceeded");
    case 500:
      return api_error(status, "The server had an error while processing your request. Sorry about that!",
                       "server_error");
    case 502:
      return api_error(status, "Bad gateway.", "server_error");
    case 503:
      return api_error(status, "The engine is currently overloaded, please try again later.", "server_error");
    case 504:
      return api_error(status, "Gateway timeout.", "server_error");
    default:
      break;
  }
  if (status >= 500) return api_error(status, "Server error (injected by parley-mock).", "server_error");
  if (status >= 400)
    return api_error(status, "Request error (injected by parley-mock).", "invalid_request_error");
  return Reply{status, "{}", {}};
}

std::expected<ChatPlan, Reply> plan_chat(std::string_view body, std::uint32_t chunks) {
  json::error_code ec;
  ParseArena arena;
  json::value root = json::parse(body, ec, arena.storage());
  if (ec || !root.is_object()) return std::unexpected(bad_json());
  const json::object& o = root.get_object();

  ChatPlan plan;
  const json::value* model = member(o, "model");
  if (model == nullptr) return std::unexpected(missing("model"));
  if (!model->is_string()) return std::unexpected(invalid_type("model", "a string", *model));
  plan.model = model->get_string();

  const json::value* messages = member(o, "messages");
  if (messages == nullptr) return std::unexpected(missing("messages"));
  if (!messages->is_array()) return std::unexpected(invalid_type("messages", "an array", *messages));
  const json::array& list = messages->get_array();
  if (list.empty()) {
    return std::unexpected(
        api_error(400,
                  "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                  "but got an empty array instead.",
                  "invalid_request_error", "messages", "empty_array"));
  }
  static constexpr std::array<std::string_view, 6> kRoles = {"system",    "developer", "user",
                                                             "assistant", "tool",      "function"};
  std::string last_user;
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::string param = "messages[" + std::to_string(i) + "]";
    const json::object* m = list[i].if_object();
    if (m == nullptr) return std::unexpected(invalid_type(param, "an object", list[i]));
    const json::value* role = member(*m, "role");
    if (role == nullptr) return std::unexpected(missing(param + ".role"));
    if (!role->is_string()) return std::unexpected(invalid_type(param + ".role", "a string", *role));
    std::string_view r = role->get_string();
    if (std::find(kRoles.begin(), kRoles.end(), r) == kRoles.end()) {
      std::string message = "Invalid value: '";
      message.append(r).append(
          "'. Supported values are: 'system', 'developer', 'user', 'assistant', 'tool', and 'function'.");
      return std::unexpected(
          api_error(400, message, "invalid_request_error", param + ".role", "invalid_value"));
    }
    const json::value* content = m->if_contains("content");
    auto text = message_text(content == nullptr ? json::value(nullptr) : *content, i);
    if (!text) return std::unexpected(std::move(text.error()));
    plan.prompt_tokens += count_words(*text);
    if (r == "user") last_user = std::move(*text);
  }

  auto n = integer_param(o, "n", 1, 128);
  if (!n) return std::unexpected(std::move(n.error()));
  plan.n = *n == 0 ? 1 : static_cast<std::uint32_t>(*n);
  auto max_tokens = integer_param(o, "max_tokens", 1, INT64_MAX);
  if (!max_tokens) return std::unexpected(std::move(max_tokens.error()));
  auto max_completion = integer_param(o, "max_completion_tokens", 1, INT64_MAX);
  if (!max_completion) return std::unexpected(std::move(max_completion.error()));
  std::int64_t limit = *max_completion != 0 ? *max_completion : *max_tokens;

  auto stream = bool_param(o, "stream");
  if (!stream) return std::unexpected(std::move(stream.error()));
  plan.stream = *stream;
  if (const json::value* so = member(o, "stream_options")) {
    if (!plan.stream) {
      return std::unexpected(
          api_error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    "invalid_request_error", "stream_options", "invalid_value"));
    }
    if (!so->is_object()) return std::unexpected(invalid_type("stream_options", "an object", *so));
    auto usage = bool_param(so->get_object(), "include_usage");
    if (!usage) return std::unexpected(std::move(usage.error()));
    plan.include_usage = *usage;
  }

  // response_format: text (the default), json_object or json_schema.
  ReplyFormat format = ReplyFormat::kText;
  const json::value* schema = nullptr;
  if (const json::value* rf = member(o, "response_format")) {
    if (!rf->is_object()) return std::unexpected(invalid_type("response_format", "an object", *rf));
    const json::value* type = member(rf->get_object(), "type");
    if (type == nullptr) return std::unexpected(missing("response_format.type"));
    if (!type->is_string()) return std::unexpected(invalid_type("response_format.type", "a string", *type));
    std::string_view t = type->get_string();
    if (t == "json_object") {
      format = ReplyFormat::kJsonObject;
    } else if (t == "json_schema") {
      format = ReplyFormat::kJsonSchema;
      const json::value* js = member(rf->get_object(), "json_schema");
      if (js == nullptr) return std::unexpected(missing("response_format.json_schema"));
      if (!js->is_object())
        return std::unexpected(invalid_type("response_format.json_schema", "an object", *js));
      const json::value* name = member(js->get_object(), "name");
      if (name == nullptr) return std::unexpected(missing("response_format.json_schema.name"));
      if (!name->is_string())
        return std::unexpected(invalid_type("response_format.json_schema.name", "a string", *name));
      schema = member(js->get_object(), "schema");
      if (schema != nullptr && !schema->is_object())
        return std::unexpected(invalid_type("response_format.json_schema.schema", "an object", *schema));
    } else if (t != "text") {
      std::string message = "Invalid value: '";
      message.append(t).append("'. Supported values are: 'json_object', 'json_schema', and 'text'.");
      return std::unexpected(invalid_value("response_format.type", message));
    }
  }

  std::vector<std::string_view> words = {"mock", "reply:"};
  for (std::string_view w : split_words(last_user)) words.push_back(w);
  plan.finish_reason = "stop";
  if (format == ReplyFormat::kText) {
    if (limit > 0 && static_cast<std::uint64_t>(limit) < words.size()) {
      words.resize(static_cast<std::size_t>(limit));
      plan.finish_reason = "length";
    }
    for (std::size_t i = 0; i < words.size(); ++i) {
      if (i > 0) plan.content.push_back(' ');
      plan.content.append(words[i]);
    }
  } else {
    std::string reply;
    for (std::size_t i = 0; i < words.size(); ++i) {
      if (i > 0) reply.push_back(' ');
      reply.append(words[i]);
    }
    if (format == ReplyFormat::kJsonObject) {
      plan.content = to_json_text(json::object{{"reply", reply}});
    } else if (schema == nullptr) {
      plan.content = "{}";
    } else {
      SchemaInput in{*schema, reply, words.size() - 2, last_user.find('?') != std::string::npos};
      plan.content = to_json_text(build_from_schema(*schema, in, 0));
    }
  }
  plan_chat_tool_call(o, last_user, plan);
  plan.completion_tokens =
      static_cast<std::uint64_t>(plan.n) * (count_words(plan.content) + count_words(plan.tool_arguments));
  plan.deltas = split_deltas(plan.content, chunks);
  plan.tool_argument_deltas = split_deltas(plan.tool_arguments, chunks);
  return plan;
}

namespace {

// The id of choice i's tool call: "call_" and the completion id's tail.
std::string tool_call_id(std::string_view completion_id, std::uint32_t i) {
  std::string out = "call_";
  const std::size_t dash = completion_id.rfind('-');
  out.append(dash == std::string_view::npos ? completion_id : completion_id.substr(dash + 1));
  if (i > 0) out.append("_").append(std::to_string(i));
  return out;
}

}  // namespace

std::string render_chat(const ChatPlan& plan, std::string_view id, std::int64_t created) {
  json::array choices;
  choices.reserve(plan.n);
  for (std::uint32_t i = 0; i < plan.n; ++i) {
    json::object message{{"role", "assistant"}, {"content", plan.content}, {"refusal", nullptr}};
    if (!plan.tool_name.empty()) {
      message["content"] = nullptr;
      message["tool_calls"] = json::array{json::object{
          {"id", tool_call_id(id, i)},
          {"type", "function"},
          {"function", json::object{{"name", plan.tool_name}, {"arguments", plan.tool_arguments}}}}};
    }
    choices.push_back(json::object{{"index", i},
                                   {"message", std::move(message)},
                                   {"logprobs", nullptr},
                                   {"finish_reason", plan.finish_reason}});
  }
  json::object root{{"id", id},
                    {"object", "chat.completion"},
                    {"created", created},
                    {"model", plan.model},
                    {"choices", std::move(choices)},
                    {"usage", usage_object(plan.prompt_tokens, plan.completion_tokens)},
                    {"system_fingerprint", kFingerprint}};
  return json::serialize(root);
}

std::vector<std::string> render_chat_events(const ChatPlan& plan, std::string_view id, std::int64_t created) {
  std::vector<std::string> events;
  events.reserve((plan.deltas.size() + 2) * plan.n + 2);
  auto emit = [&](json::array choices, json::value usage) {
    json::object chunk{{"id", id},
                       {"object", "chat.completion.chunk"},
                       {"created", created},
                       {"model", plan.model},
                       {"system_fingerprint", kFingerprint},
                       {"choices", std::move(choices)}};
    // OpenAI adds "usage": null to every chunk but the last when usage was asked for.
    if (plan.include_usage) chunk["usage"] = std::move(usage);
    std::string event = "data: ";
    event.append(json::serialize(chunk)).append("\n\n");
    events.push_back(std::move(event));
  };
  auto choice = [](std::uint32_t index, json::object delta, json::value finish) {
    return json::array{json::object{{"index", index},
                                    {"delta", std::move(delta)},
                                    {"logprobs", nullptr},
                                    {"finish_reason", std::move(finish)}}};
  };
  if (!plan.tool_name.empty()) {
    // OpenAI streams a tool call as its id and name first, then the arguments in pieces.
    for (std::uint32_t i = 0; i < plan.n; ++i) {
      json::object call{{"index", 0},
                        {"id", tool_call_id(id, i)},
                        {"type", "function"},
                        {"function", json::object{{"name", plan.tool_name}, {"arguments", ""}}}};
      emit(
          choice(i,
                 json::object{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array{call}}},
                 nullptr),
          nullptr);
    }
    for (const std::string& piece : plan.tool_argument_deltas) {
      for (std::uint32_t i = 0; i < plan.n; ++i) {
        json::object call{{"index", 0}, {"function", json::object{{"arguments", piece}}}};
        emit(choice(i, json::object{{"tool_calls", json::array{call}}}, nullptr), nullptr);
      }
    }
  } else {
    for (std::uint32_t i = 0; i < plan.n; ++i) {
      emit(choice(i, json::object{{"role", "assistant"}, {"content", ""}}, nullptr), nullptr);
    }
  }
  for (const std::string& delta : plan.deltas) {
    for (std::uint32_t i = 0; i < plan.n; ++i)
      emit(choice(i, json::object{{"content", delta}}, nullptr), nullptr);
  }
  for (std::uint32_t i = 0; i < plan.n; ++i)
    emit(choice(i, json::object{}, json::string(plan.finish_reason)), nullptr);
  if (plan.include_usage) emit(json::array{}, usage_object(plan.prompt_tokens, plan.completion_tokens));
  events.emplace_back("data: [DONE]\n\n");
  return events;
}

std::expected<std::string, Reply> render_embeddings(std::string_view body, std::uint32_t default_dimensions) {
  json::error_code ec;
  ParseArena arena;
  json::value root = json::parse(body, ec, arena.storage());
  if (ec || !root.is_object()) return std::unexpected(bad_json());
  const json::object& o = root.get_object();
  const json::value* model = member(o, "model");
  if (model == nullptr) return std::unexpected(missing("model"));
  if (!model->is_string()) return std::unexpected(invalid_type("model", "a string", *model));
  const json::value* input = member(o, "input");
  if (input == nullptr) return std::unexpected(missing("input"));
  auto dimensions = integer_param(o, "dimensions", 1, 4096);
  if (!dimensions) return std::unexpected(std::move(dimensions.error()));
  auto dim = *dimensions == 0 ? default_dimensions : static_cast<std::uint32_t>(*dimensions);
  bool as_base64 = false;
  if (const json::value* format = member(o, "encoding_format")) {
    if (!format->is_string() || (format->get_string() != "float" && format->get_string() != "base64")) {
      return std::unexpected(api_error(400,
                                       "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                                       "invalid_request_error", "encoding_format", "invalid_value"));
    }
    as_base64 = format->get_string() == "base64";
  }

  // Each input reduced to (hash key, token count). Token arrays hash their JSON text.
  std::vector<std::pair<std::string, std::uint64_t>> items;
  auto token_array = [](const json::value& v) {
    const json::array* a = v.if_array();
    return a != nullptr && !a->empty() && std::all_of(a->begin(), a->end(), [](const json::value& x) {
             return x.is_int64() || x.is_uint64();
           });
  };
  Reply bad_input =
      api_error(400, "'input' must be a string, an array of strings, or an array of token arrays.",
                "invalid_request_error", "input", "invalid_type");
  if (input->is_string()) {
    items.emplace_back(std::string(input->get_string()), count_words(input->get_string()));
  } else if (token_array(*input)) {
    items.emplace_back(json::serialize(*input), input->get_array().size());
  } else if (input->is_array() && !input->get_array().empty()) {
    if (input->get_array().size() > 2048) {
      return std::unexpected(api_error(400, "'input' may hold at most 2048 items.", "invalid_request_error",
                                       "input", "array_above_max_length"));
    }
    for (const json::value& item : input->get_array()) {
      if (item.is_string()) {
        items.emplace_back(std::string(item.get_string()), count_words(item.get_string()));
      } else if (token_array(item)) {
        items.emplace_back(json::serialize(item), item.get_array().size());
      } else {
        return std::unexpected(std::move(bad_input));
      }
    }
  } else {
    return std::unexpected(std::move(bad_input));
  }

  json::array data;
  data.reserve(items.size());
  std::uint64_t tokens = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::vector<float> v = embed(items[i].first, dim);
    tokens += items[i].second;
    json::value embedding;
    if (as_base64) {
      embedding = json::string(floats_base64(v));
    } else {
      json::array a;
      a.reserve(v.size());
      for (float x : v) a.push_back(static_cast<double>(x));
      embedding = std::move(a);
    }
    data.push_back(json::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
  }
  json::object response{{"object", "list"},
                        {"data", std::move(data)},
                        {"model", model->get_string()},
                        {"usage", json::object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
  return json::serialize(response);
}

namespace {

constexpr std::uint32_t kSampleRate = 8000;
constexpr std::size_t kMaxSpeechChars = 4096;

void put_u16(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}

void put_u32(std::string& out, std::uint32_t v) {
  put_u16(out, v & 0xffff);
  put_u16(out, v >> 16);
}

std::uint32_t get_u32(std::string_view bytes, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i)
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  return v;
}

// UTF-8 characters (bytes that do not continue a sequence).
std::size_t count_chars(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(
      text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

// The tone: 50 ms plus 5 ms per character, at most one second, 440 Hz at 30 % of full scale.
std::string tone_samples(std::size_t chars) {
  std::size_t count = std::min<std::size_t>(kSampleRate, 400 + 40 * std::min(chars, kMaxSpeechChars));
  std::string out;
  out.reserve(count * 2);
  for (std::size_t i = 0; i < count; ++i) {
    double phase = 2 * std::numbers::pi * 440.0 * static_cast<double>(i) / kSampleRate;
    auto sample = static_cast<std::int16_t>(std::lround(0.3 * 32767 * std::sin(phase)));
    put_u16(out, static_cast<std::uint16_t>(sample));
  }
  return out;
}

std::string wav_file(std::string_view text, std::string_view samples) {
  // LIST payload: "INFO", then the ICMT sub-chunk (text + NUL, padded to an even size).
  std::string info = "INFO";
  info.append("ICMT");
  put_u32(info, static_cast<std::uint32_t>(text.size() + 1));
  info.append(text);
  info.push_back('\0');
  if (info.size() % 2 != 0) info.push_back('\0');

  std::string out = "RIFF";
  put_u32(out, static_cast<std::uint32_t>(4 + (8 + 16) + (8 + info.size()) + (8 + samples.size())));
  out.append("WAVE");
  out.append("fmt ");
  put_u32(out, 16);
  put_u16(out, 1);                // PCM
  put_u16(out, 1);                // mono
  put_u32(out, kSampleRate);      // sample rate
  put_u32(out, kSampleRate * 2);  // byte rate
  put_u16(out, 2);                // block align
  put_u16(out, 16);               // bits per sample
  out.append("LIST");
  put_u32(out, static_cast<std::uint32_t>(info.size()));
  out.append(info);
  out.append("data");
  put_u32(out, static_cast<std::uint32_t>(samples.size()));
  out.append(samples);
  return out;
}

}  // namespace

std::string speech_wav(std::string_view text) {
  return wav_file(text, tone_samples(count_chars(text)));
}

std::optional<WavInfo> read_wav(std::string_view bytes) {
  if (bytes.size() < 12 || bytes.substr(0, 4) != "RIFF" || bytes.substr(8, 4) != "WAVE") return std::nullopt;
  WavInfo info;
  const std::uint64_t end = std::min<std::uint64_t>(bytes.size(), 8ULL + get_u32(bytes, 4));
  std::uint64_t byte_rate = 0;
  std::uint64_t data_bytes = 0;
  std::uint64_t pos = 12;
  while (pos + 8 <= end) {
    std::string_view id = bytes.substr(pos, 4);
    const std::uint64_t declared = get_u32(bytes, pos + 4);
    const std::uint64_t start = pos + 8;
    std::string_view chunk = bytes.substr(start, std::min(declared, end - start));
    if (id == "fmt " && chunk.size() >= 16) byte_rate = get_u32(chunk, 8);
    if (id == "data") data_bytes = chunk.size();
    if (id == "LIST" && chunk.size() >= 4 && chunk.substr(0, 4) == "INFO") {
      std::size_t sub = 4;
      while (sub + 8 <= chunk.size()) {
        const std::size_t size = std::min<std::size_t>(get_u32(chunk, sub + 4), chunk.size() - sub - 8);
        if (chunk.substr(sub, 4) == "ICMT") {
          std::string_view comment = chunk.substr(sub + 8, size);
          while (!comment.empty() && comment.back() == '\0') comment.remove_suffix(1);
          info.comment = std::string(comment);
        }
        sub += 8 + size + (size % 2);
      }
    }
    pos = start + declared + (declared % 2);
  }
  if (byte_rate > 0) info.duration_seconds = static_cast<double>(data_bytes) / static_cast<double>(byte_rate);
  return info;
}

std::expected<Reply, Reply> render_speech(std::string_view body) {
  json::error_code ec;
  ParseArena arena;
  json::value root = json::parse(body, ec, arena.storage());
  if (ec || !root.is_object()) return std::unexpected(bad_json());
  const json::object& o = root.get_object();
  const json::value* model = member(o, "model");
  if (model == nullptr) return std::unexpected(missing("model"));
  if (!model->is_string()) return std::unexpected(invalid_type("model", "a string", *model));
  const json::value* input = member(o, "input");
  if (input == nullptr) return std::unexpected(missing("input"));
  if (!input->is_string()) return std::unexpected(invalid_type("input", "a string", *input));
  const std::size_t chars = count_chars(input->get_string());
  if (chars == 0) {
    return std::unexpected(
        api_error(400,
                  "Invalid 'input': string too short. Expected a string with minimum length "
                  "1, but got an empty string instead.",
                  "invalid_request_error", "input", "string_below_min_length"));
  }
  if (chars > kMaxSpeechChars) {
    std::string message =
        "Invalid 'input': string too long. Expected a string with maximum length 4096, but got a string with "
        "length ";
    message.append(std::to_string(chars)).append(" instead.");
    return std::unexpected(
        api_error(400, message, "invalid_request_error", "input", "string_above_max_length"));
  }
  const json::value* voice = member(o, "voice");
  if (voice == nullptr) return std::unexpected(missing("voice"));
  if (!voice->is_string()) return std::unexpected(invalid_type("voice", "a string", *voice));
  if (const json::value* instructions = member(o, "instructions");
      instructions && !instructions->is_string()) {
    return std::unexpected(invalid_type("instructions", "a string", *instructions));
  }
  if (const json::value* speed = member(o, "speed")) {
    if (!speed->is_number()) return std::unexpected(invalid_type("speed", "a number", *speed));
    double v = speed->to_number<double>();
    if (v < 0.25 || v > 4) {
      std::string message = "Invalid 'speed': expected a value between 0.25 and 4, but got ";
      message.append(to_json_text(*speed)).append(" instead.");
      return std::unexpected(api_error(400, message, "invalid_request_error", "speed",
                                       v < 0.25 ? "decimal_below_min_value" : "decimal_above_max_value"));
    }
  }
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kFormats = {{
      {"mp3", "audio/mpeg"},
      {"opus", "audio/ogg"},
      {"aac", "audio/aac"},
      {"flac", "audio/flac"},
      {"wav", "audio/wav"},
      {"pcm", "audio/pcm"},
  }};
  std::string_view format = "mp3";
  if (const json::value* f = member(o, "response_format")) {
    if (!f->is_string()) return std::unexpected(invalid_type("response_format", "a string", *f));
    format = f->get_string();
  }
  auto it = std::find_if(kFormats.begin(), kFormats.end(), [&](const auto& f) { return f.first == format; });
  if (it == kFormats.end()) {
    std::string message = "Invalid value: '";
    message.append(format).append("'. Supported values are: 'mp3', 'opus', 'aac', 'flac', 'wav', and 'pcm'.");
    return std::unexpected(invalid_value("response_format", message));
  }
  std::string samples = tone_samples(chars);
  Reply reply;
  reply.content_type = it->second;
  reply.body = format == "pcm" ? std::move(samples) : wav_file(input->get_string(), samples);
  return reply;
}

namespace {

constexpr std::string_view kHeaderSpace = " \t";

std::string_view trim(std::string_view s) {
  std::size_t first = s.find_first_not_of(kHeaderSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kHeaderSpace) - first + 1);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// `type; name=value; name="quoted; value"` → the lower-cased type and its parameters (lower-cased
// names). Quoted values end at the next '"' (no backslash escapes: browsers and undici send
// Windows paths as they are and percent-encode '"').
struct HeaderValue {
  std::string value;
  std::vector<std::pair<std::string, std::string>> params;

  const std::string* param(std::string_view name) const {
    for (const auto& [k, v] : params) {
      if (k == name) return &v;
    }
    return nullptr;
  }
};

HeaderValue parse_header_value(std::string_view text) {
  HeaderValue out;
  std::size_t i = std::min(text.find(';'), text.size());
  out.value = lower(trim(text.substr(0, i)));
  while (i < text.size()) {
    ++i;  // the ';'
    std::size_t start = i;
    while (i < text.size() && text[i] != '=' && text[i] != ';') ++i;
    std::string name = lower(trim(text.substr(start, i - start)));
    std::string value;
    if (i < text.size() && text[i] == '=') {
      ++i;
      while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
      if (i < text.size() && text[i] == '"') {
        std::size_t close = text.find('"', i + 1);
        if (close == std::string_view::npos) close = text.size();
        value = text.substr(i + 1, close - i - 1);
        i = std::min(text.find(';', close), text.size());
      } else {
        start = i;
        i = std::min(text.find(';', i), text.size());
        value = trim(text.substr(start, i - start));
      }
    }
    if (!name.empty()) out.params.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

const FormPart* find_part(const std::vector<FormPart>& parts, std::string_view name) {
  auto it = std::find_if(parts.begin(), parts.end(), [&](const FormPart& p) { return p.name == name; });
  return it == parts.end() ? nullptr : &*it;
}

// "HH:MM:SS<sep>mmm"
std::string timestamp(double seconds, char separator) {
  auto ms = static_cast<std::uint64_t>(std::llround(seconds * 1000));
  std::array<char, 32> buffer{};
  std::snprintf(
      buffer.data(), buffer.size(), "%02llu:%02llu:%02llu%c%03llu",
      static_cast<unsigned long long>(ms / 3'600'000), static_cast<unsigned long long>(ms / 60'000 % 60),
      static_cast<unsigned long long>(ms / 1000 % 60), separator, static_cast<unsigned long long>(ms % 1000));
  return buffer.data();
}

}  // namespace

std::expected<std::vector<FormPart>, std::string> parse_multipart(std::string_view content_type,
                                                                  std::string_view body) {
  HeaderValue type = parse_header_value(content_type);
  if (type.value != "multipart/form-data") {
    std::string message = "Invalid Content-Type header (";
    message.append(content_type.empty() ? "none" : content_type).append("), expected multipart/form-data.");
    return std::unexpected(message);
  }
  const std::string* boundary = type.param("boundary");
  if (boundary == nullptr || boundary->empty() || boundary->size() > 200) {
    return std::unexpected("multipart/form-data without a boundary parameter.");
  }
  const std::string delimiter = "--" + *boundary;
  const std::string next_delimiter = "\r\n" + delimiter;
  std::size_t pos = 0;
  if (!body.starts_with(delimiter)) {
    pos = body.find(next_delimiter);
    if (pos == std::string_view::npos) return std::unexpected("Malformed multipart body: no boundary found.");
    pos += 2;
  }
  std::vector<FormPart> parts;
  for (;;) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") break;  // the closing delimiter
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (body.substr(pos, 2) != "\r\n") return std::unexpected("Malformed multipart body: bad boundary line.");
    pos += 2;
    std::size_t headers_end = body.substr(pos, 2) == "\r\n" ? pos : body.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos) {
      return std::unexpected("Malformed multipart body: part headers never end.");
    }
    FormPart part;
    bool named = false;
    std::string_view headers = body.substr(pos, headers_end - pos);
    while (!headers.empty()) {
      std::size_t eol = std::min(headers.find("\r\n"), headers.size());
      std::string_view line = headers.substr(0, eol);
      headers.remove_prefix(std::min(eol + 2, headers.size()));
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        return std::unexpected("Malformed multipart body: a part header line has no ':'.");
      }
      std::string name = lower(trim(line.substr(0, colon)));
      std::string_view value = trim(line.substr(colon + 1));
      if (name == "content-disposition") {
        HeaderValue disposition = parse_header_value(value);
        const std::string* field = disposition.param("name");
        if (disposition.value != "form-data" || field == nullptr) {
          return std::unexpected(
              "Malformed multipart body: Content-Disposition is not form-data with a name.");
        }
        part.name = *field;
        if (const std::string* filename = disposition.param("filename")) part.filename = *filename;
        named = true;
      } else if (name == "content-type") {
        part.content_type = value;
      }
    }
    if (!named) return std::unexpected("Malformed multipart body: a part has no Content-Disposition name.");
    const std::size_t data_start = headers_end + (headers_end == pos ? 2 : 4);
    const std::size_t data_end = body.find(next_delimiter, data_start);
    if (data_end == std::string_view::npos) {
      return std::unexpected("Malformed multipart body: the closing boundary is missing.");
    }
    part.data = body.substr(data_start, data_end - data_start);
    parts.push_back(std::move(part));
    pos = data_end + 2;
  }
  if (parts.empty()) return std::unexpected("Malformed multipart body: no parts.");
  return parts;
}

std::expected<Reply, Reply> render_transcription(std::string_view content_type, std::string_view body) {
  auto parts = parse_multipart(content_type, body);
  if (!parts) return std::unexpected(api_error(400, parts.error(), "invalid_request_error"));
  const FormPart* file = find_part(*parts, "file");
  if (file == nullptr) return std::unexpected(missing("file"));
  const FormPart* model = find_part(*parts, "model");
  if (model == nullptr || trim(model->data).empty()) return std::unexpected(missing("model"));
  std::string_view format = "json";
  if (const FormPart* f = find_part(*parts, "response_format")) format = trim(f->data);
  static constexpr std::array<std::string_view, 5> kFormats = {"json", "text", "srt", "verbose_json", "vtt"};
  if (std::find(kFormats.begin(), kFormats.end(), format) == kFormats.end()) {
    std::string message = "Invalid value: '";
    message.append(format).append(
        "'. Supported values are: 'json', 'text', 'srt', 'verbose_json', and 'vtt'.");
    return std::unexpected(invalid_value("response_format", message));
  }
  if (const FormPart* t = find_part(*parts, "temperature")) {
    std::string_view text = trim(t->data);
    double v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) {
      return std::unexpected(api_error(400, "Invalid 'temperature': expected a number.",
                                       "invalid_request_error", "temperature", "invalid_type"));
    }
    if (!(v >= 0 && v <= 1)) {  // NaN too
      return std::unexpected(api_error(400, "Invalid 'temperature': expected a value between 0 and 1.",
                                       "invalid_request_error", "temperature",
                                       v < 0 ? "decimal_below_min_value" : "decimal_above_max_value"));
    }
  }
  std::string language = "english";
  if (const FormPart* l = find_part(*parts, "language"); l != nullptr && !trim(l->data).empty()) {
    language = trim(l->data);
  }

  std::optional<WavInfo> wav = read_wav(file->data);
  std::string text;
  if (wav && wav->comment) {
    text = *wav->comment;
  } else {
    text = "mock transcription of " + std::to_string(file->data.size()) + " bytes";
  }
  const double duration = wav ? wav->duration_seconds : 0;

  Reply reply;
  if (format == "text") {
    reply.content_type = "text/plain; charset=utf-8";
    reply.body = text;
    return reply;
  }
  if (format == "srt" || format == "vtt") {
    // One cue over the whole audio (one second when the length is unknown).
    const double end = duration > 0 ? duration : 1;
    const char separator = format == "srt" ? ',' : '.';
    reply.content_type = "text/plain; charset=utf-8";
    reply.body = format == "srt" ? "1\n" : "WEBVTT\n\n";
    reply.body.append(timestamp(0, separator)).append(" --> ").append(timestamp(end, separator)).append("\n");
    reply.body.append(text).append("\n\n");
    return reply;
  }
  const std::uint64_t input_tokens = (file->data.size() + 999) / 1000;
  const std::uint64_t output_tokens = count_words(text);
  json::object usage{{"type", "tokens"},
                     {"input_tokens", input_tokens},
                     {"output_tokens", output_tokens},
                     {"total_tokens", input_tokens + output_tokens}};
  json::object out;
  if (format == "verbose_json") {
    out["task"] = "transcribe";
    out["language"] = language;
    out["duration"] = duration;
  }
  out["text"] = text;
  if (format == "verbose_json") out["segments"] = json::array{};
  out["usage"] = std::move(usage);
  reply.body = to_json_text(out);
  return reply;
}

std::string summarize_transcription(std::string_view content_type, std::string_view body) {
  auto parts = parse_multipart(content_type, body);
  if (!parts) return to_json_text(json::object{{"error", parts.error()}, {"body_bytes", body.size()}});
  auto text = [&](std::string_view name) -> json::value {
    const FormPart* p = find_part(*parts, name);
    return p == nullptr ? json::value(nullptr) : json::value(json::string(p->data));
  };
  const FormPart* file = find_part(*parts, "file");
  json::object summary{
      {"model", text("model")},
      {"file_bytes", file == nullptr ? json::value(nullptr) : json::value(file->data.size())},
      {"filename", file == nullptr || !file->filename ? json::value(nullptr) : json::value(*file->filename)},
      {"response_format", text("response_format")}};
  return to_json_text(summary);
}

namespace {
// Fixed so that listings are byte-for-byte reproducible.
constexpr std::int64_t kModelCreated = 1700000000;

json::object model_object(std::string_view id) {
  return json::object{
      {"id", id}, {"object", "model"}, {"created", kModelCreated}, {"owned_by", "parley-mock"}};
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Responses API (minimal): the request becomes a chat request, answered by the chat rules.

std::expected<ChatPlan, Reply> plan_responses(std::string_view body, std::uint32_t chunks) {
  json::error_code ec;
  json::value root = json::parse(body, ec);
  if (ec || !root.is_object()) return std::unexpected(bad_json());
  const json::object& o = root.get_object();
  json::object chat;
  if (const json::value* model = o.if_contains("model")) chat["model"] = *model;
  json::array messages;
  if (const json::value* instructions = o.if_contains("instructions");
      instructions != nullptr && instructions->is_string())
    messages.push_back(json::object{{"role", "system"}, {"content", *instructions}});
  const json::value* input = o.if_contains("input");
  if (input == nullptr) return std::unexpected(missing("input"));
  if (input->is_string()) {
    messages.push_back(json::object{{"role", "user"}, {"content", *input}});
  } else if (input->is_array()) {
    for (const json::value& item : input->get_array()) {
      const json::object* m = item.if_object();
      if (m == nullptr || !m->contains("role")) continue;  // function calls and outputs: no text
      json::object message{{"role", m->at("role")}};
      const json::value* content = m->if_contains("content");
      if (content != nullptr && content->is_array()) {
        std::string text;
        for (const json::value& part : content->get_array()) {
          const json::object* p = part.if_object();
          if (p == nullptr || !p->contains("text") || !p->at("text").is_string()) continue;
          if (!text.empty()) text.push_back(' ');
          text.append(p->at("text").get_string());
        }
        message["content"] = text;
      } else if (content != nullptr) {
        message["content"] = *content;
      }
      messages.push_back(std::move(message));
    }
  } else {
    return std::unexpected(invalid_type("input", "a string or an array", *input));
  }
  if (messages.empty()) return std::unexpected(missing("input"));
  chat["messages"] = std::move(messages);
  if (const json::value* m = o.if_contains("max_output_tokens"); m != nullptr && !m->is_null())
    chat["max_tokens"] = *m;
  if (const json::value* st = o.if_contains("stream"); st != nullptr && !st->is_null()) chat["stream"] = *st;
  return plan_chat(json::serialize(chat), chunks);
}

namespace {

json::object response_object(const ChatPlan& plan, std::string_view id, std::int64_t created, bool done) {
  const std::string suffix(id.substr(std::min<std::size_t>(id.size(), 5)));
  json::array output;
  if (done) {
    output.push_back(json::object{
        {"id", "msg_" + suffix},
        {"type", "message"},
        {"status", "completed"},
        {"role", "assistant"},
        {"content", json::array{json::object{
                        {"type", "output_text"}, {"text", plan.content}, {"annotations", json::array{}}}}}});
  }
  json::value usage = nullptr;
  if (done) {
    usage = json::object{{"input_tokens", plan.prompt_tokens},
                         {"input_tokens_details", json::object{{"cached_tokens", 0}}},
                         {"output_tokens", plan.completion_tokens},
                         {"output_tokens_details", json::object{{"reasoning_tokens", 0}}},
                         {"total_tokens", plan.prompt_tokens + plan.completion_tokens}};
  }
  const bool cut = plan.finish_reason == "length";
  return json::object{
      {"id", id},
      {"object", "response"},
      {"created_at", created},
      {"status", !done ? "in_progress"
                 : cut ? "incomplete"
                       : "completed"},
      {"error", nullptr},
      {"incomplete_details",
       cut && done ? json::value(json::object{{"reason", "max_output_tokens"}}) : json::value(nullptr)},
      {"model", plan.model},
      {"output", std::move(output)},
      {"store", false},
      {"usage", std::move(usage)}};
}

}  // namespace

std::string render_response(const ChatPlan& plan, std::string_view id, std::int64_t created) {
  return json::serialize(response_object(plan, id, created, true));
}

std::vector<std::string> render_response_events(const ChatPlan& plan, std::string_view id,
                                                std::int64_t created) {
  std::vector<std::string> events;
  std::int64_t sequence = 0;
  auto emit = [&](std::string_view type, json::object data) {
    data["type"] = type;
    data["sequence_number"] = sequence++;
    std::string event = "event: ";
    event.append(type).append("\ndata: ").append(json::serialize(data)).append("\n\n");
    events.push_back(std::move(event));
  };
  const std::string item_id = "msg_" + std::string(id.substr(std::min<std::size_t>(id.size(), 5)));
  emit("response.created", json::object{{"response", response_object(plan, id, created, false)}});
  emit("response.in_progress", json::object{{"response", response_object(plan, id, created, false)}});
  emit("response.output_item.added", json::object{{"output_index", 0},
                                                  {"item", json::object{{"id", item_id},
                                                                        {"type", "message"},
                                                                        {"status", "in_progress"},
                                                                        {"role", "assistant"},
                                                                        {"content", json::array{}}}}});
  json::object empty_part{{"type", "output_text"}, {"text", ""}, {"annotations", json::array{}}};
  emit("response.content_part.added",
       json::object{{"item_id", item_id}, {"output_index", 0}, {"content_index", 0}, {"part", empty_part}});
  for (const std::string& delta : plan.deltas) {
    emit("response.output_text.delta", json::object{{"item_id", item_id},
                                                    {"output_index", 0},
                                                    {"content_index", 0},
                                                    {"delta", delta},
                                                    {"logprobs", json::array{}}});
  }
  emit("response.output_text.done", json::object{{"item_id", item_id},
                                                 {"output_index", 0},
                                                 {"content_index", 0},
                                                 {"text", plan.content},
                                                 {"logprobs", json::array{}}});
  json::object part{{"type", "output_text"}, {"text", plan.content}, {"annotations", json::array{}}};
  emit("response.content_part.done",
       json::object{{"item_id", item_id}, {"output_index", 0}, {"content_index", 0}, {"part", part}});
  json::object final_response = response_object(plan, id, created, true);
  emit("response.output_item.done",
       json::object{{"output_index", 0}, {"item", final_response.at("output").get_array().at(0)}});
  const std::string_view last = plan.finish_reason == "length" ? "response.incomplete" : "response.completed";
  emit(last, json::object{{"response", std::move(final_response)}});
  return events;
}

std::string render_models(const std::vector<std::string>& models) {
  json::array data;
  for (const std::string& m : models) data.push_back(model_object(m));
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

std::optional<std::string> render_model(const std::vector<std::string>& models, std::string_view id) {
  if (std::find(models.begin(), models.end(), id) == models.end()) return std::nullopt;
  return json::serialize(model_object(id));
}

// Anthropic's Messages API. Its validation messages name the field as a dotted path
// ("messages.0.content: Field required"); every one is a 400 invalid_request_error, so the readers
// below return just the message and plan_messages / count_message_tokens dress it.

Reply anthropic_error(unsigned status, std::string_view type, std::string_view message,
                      std::string_view request_id) {
  json::object root{{"type", "error"}, {"error", json::object{{"type", type}, {"message", message}}}};
  if (!request_id.empty()) root["request_id"] = request_id;
  return Reply{status, json::serialize(root), {}};
}

Reply default_anthropic_error(unsigned status, std::string_view request_id) {
  auto error = [&](std::string_view type, std::string_view message) {
    return anthropic_error(status, type, message, request_id);
  };
  switch (status) {
    case 400:
      return error("invalid_request_error", "Bad request (injected by parley-mock).");
    case 401:
      return error("authentication_error", "invalid x-api-key");
    case 402:
      return error("billing_error", "Your credit balance is too low to access the Anthropic API.");
    case 403:
      return error("permission_error",
                   "Your API key does not have permission to use the specified resource.");
    case 404:
      return error("not_found_error", "Not Found");
    case 409:
      return error("conflict_error", "Conflict.");
    case 413:
      return error("request_too_large", "Request exceeds the maximum allowed number of bytes.");
    case 429:
      return error("rate_limit_error",
                   "Number of requests has exceeded your rate limit. Please try again later.");
    case 500:
      return error("api_error", "Internal server error");
    case 504:
      return error("timeout_error", "Request timed out");
    case 529:
      return error("overloaded_error", "Overloaded");
    default:
      break;
  }
  if (status >= 500) return error("api_error", "Server error (injected by parley-mock).");
  if (status >= 400) return error("invalid_request_error", "Request error (injected by parley-mock).");
  return Reply{status, "{}", {}};
}

namespace {

using Problem = std::string;  // the message of a 400 invalid_request_error

constexpr std::string_view kFieldRequired = "Field required";

Problem at(std::string_view path, std::string_view what) {
  std::string out(path);
  out.append(": ").append(what);
  return out;
}

Problem wrong_type(std::string_view path, std::string_view type) {
  return at(path, "Input should be a valid " + std::string(type));
}

std::string child(std::string_view path, std::string_view key) {
  std::string out(path);
  if (!out.empty()) out.push_back('.');
  out.append(key);
  return out;
}

std::string child(std::string_view path, std::size_t index) {
  return child(path, std::to_string(index));
}

template <std::size_t N>
bool one_of(std::string_view value, const std::array<std::string_view, N>& list) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// The API refuses fields it does not know ("Extra inputs are not permitted").
std::optional<Problem> extra_inputs(const json::object& o, std::string_view path,
                                    std::span<const std::string_view> known) {
  for (const auto& [key, value] : o) {
    if (std::find(known.begin(), known.end(), std::string_view(key)) == known.end()) {
      return at(child(path, key), "Extra inputs are not permitted");
    }
  }
  return std::nullopt;
}

// A required string member; `out` (when given) receives it.
std::optional<Problem> string_member(const json::object& o, std::string_view key, std::string_view path,
                                     std::string_view* out = nullptr) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return at(child(path, key), kFieldRequired);
  if (!v->is_string()) return wrong_type(child(path, key), "string");
  if (out != nullptr) *out = v->get_string();
  return std::nullopt;
}

void append_text(std::string& text, std::string_view piece) {
  if (!text.empty()) text.push_back(' ');
  text.append(piece);
}

std::optional<Problem> check_text(std::string_view text) {
  if (text.empty()) return Problem("messages: text content blocks must be non-empty");
  if (count_words(text) == 0)
    return Problem("messages: text content blocks must contain non-whitespace text");
  return std::nullopt;
}

// What one message holds, as far as the reply and the validation care.
struct MessageContent {
  std::string text;  // its text blocks and tool_result contents, joined by one space
  bool empty = true;
  std::vector<std::string> tool_uses;                        // ids of its tool_use blocks
  std::vector<std::pair<std::string, std::string>> results;  // tool_use_id and path of its tool_results
};

// Anthropic's block types (its SDK's ContentBlockParam). Those the mock does not read are accepted
// unseen; an unknown one is refused, so that OpenAI's parts ("image_url", …) are caught.
constexpr std::array<std::string_view, 16> kBlockTypes = {"text",
                                                          "image",
                                                          "document",
                                                          "search_result",
                                                          "thinking",
                                                          "redacted_thinking",
                                                          "tool_use",
                                                          "tool_result",
                                                          "server_tool_use",
                                                          "web_search_tool_result",
                                                          "web_fetch_tool_result",
                                                          "code_execution_tool_result",
                                                          "bash_code_execution_tool_result",
                                                          "text_editor_code_execution_tool_result",
                                                          "tool_search_tool_result",
                                                          "container_upload"};
// What a tool_result's content may hold.
constexpr std::array<std::string_view, 6> kResultBlockTypes = {"text",     "image",          "search_result",
                                                               "document", "tool_reference", "browser_state"};

std::optional<Problem> read_block(const json::value& v, const std::string& path, bool in_result,
                                  MessageContent& out);

std::optional<Problem> read_tool_result(const json::object& b, const std::string& path, MessageContent& out) {
  std::string_view id;
  if (auto p = string_member(b, "tool_use_id", path, &id)) return p;
  out.results.emplace_back(std::string(id), path);
  if (const json::value* flag = member(b, "is_error"); flag != nullptr && !flag->is_bool()) {
    return wrong_type(child(path, "is_error"), "boolean");
  }
  const json::value* content = member(b, "content");
  if (content == nullptr) return std::nullopt;
  if (content->is_string()) {
    append_text(out.text, content->get_string());
    return std::nullopt;
  }
  if (!content->is_array()) return wrong_type(child(path, "content"), "string or list of content blocks");
  const json::array& blocks = content->get_array();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (auto p = read_block(blocks[i], child(child(path, "content"), i), true, out)) return p;
  }
  return std::nullopt;
}

// Checks what the API requires of a block of each type; image and document sources are not looked
// into. Text blocks and tool_result contents are appended to out.text.
std::optional<Problem> read_block(const json::value& v, const std::string& path, bool in_result,
                                  MessageContent& out) {
  const json::object* b = v.if_object();
  if (b == nullptr) return wrong_type(path, "dictionary");
  std::string_view type;
  if (auto p = string_member(*b, "type", path, &type)) return p;
  if (in_result ? !one_of(type, kResultBlockTypes) : !one_of(type, kBlockTypes)) {
    std::string expected;
    for (std::string_view t : in_result ? std::span<const std::string_view>(kResultBlockTypes)
                                        : std::span<const std::string_view>(kBlockTypes)) {
      expected.append(expected.empty() ? "'" : ", '").append(t).append("'");
    }
    return at(path, "Input tag '" + std::string(type) +
                        "' found using 'type' does not match any of the expected tags: " + expected);
  }
  if (type == "text") {
    std::string_view text;
    if (auto p = string_member(*b, "text", path, &text)) return p;
    if (auto p = check_text(text)) return p;
    append_text(out.text, text);
  } else if (type == "image" || type == "document") {
    const json::value* source = b->if_contains("source");
    if (source == nullptr) return at(child(path, "source"), kFieldRequired);
    if (!source->is_object()) return wrong_type(child(path, "source"), "dictionary");
  } else if (type == "tool_use") {
    std::string_view id;
    if (auto p = string_member(*b, "id", path, &id)) return p;
    if (auto p = string_member(*b, "name", path)) return p;
    const json::value* input = b->if_contains("input");
    if (input == nullptr) return at(child(path, "input"), kFieldRequired);
    if (!input->is_object()) return wrong_type(child(path, "input"), "dictionary");
    out.tool_uses.emplace_back(id);
  } else if (type == "tool_result") {
    return read_tool_result(*b, path, out);
  } else if (type == "thinking") {
    if (auto p = string_member(*b, "thinking", path)) return p;
    if (auto p = string_member(*b, "signature", path)) return p;
  } else if (type == "redacted_thinking") {
    if (auto p = string_member(*b, "data", path)) return p;
  }
  return std::nullopt;
}

std::expected<MessageContent, Problem> read_content(const json::value& content, const std::string& path) {
  MessageContent out;
  if (content.is_string()) {
    out.text = content.get_string();
    out.empty = out.text.empty();
    return out;
  }
  if (!content.is_array()) return std::unexpected(wrong_type(path, "string or list of content blocks"));
  const json::array& blocks = content.get_array();
  out.empty = blocks.empty();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (auto p = read_block(blocks[i], child(path, i), false, out)) return std::unexpected(std::move(*p));
  }
  return out;
}

std::string join_ids(const std::vector<std::string>& ids) {
  std::string out;
  for (const std::string& id : ids) out.append(out.empty() ? "" : ", ").append(id);
  return out;
}

// Each tool_use of an assistant message needs its tool_result in the very next message, and each
// tool_result answers a tool_use of the message before it.
std::optional<Problem> check_tool_pairing(const std::vector<std::string>& pending, std::size_t previous,
                                          const MessageContent* next) {
  std::vector<std::string> unanswered;
  for (const std::string& id : pending) {
    bool answered = next != nullptr && std::any_of(next->results.begin(), next->results.end(),
                                                   [&](const auto& r) { return r.first == id; });
    if (!answered) unanswered.push_back(id);
  }
  if (!unanswered.empty()) {
    return at(
        child("messages", previous),
        "`tool_use` ids were found without `tool_result` blocks immediately after: " + join_ids(unanswered) +
            ". Each `tool_use` block must have a corresponding `tool_result` block in the next message.");
  }
  if (next == nullptr) return std::nullopt;
  for (const auto& [id, path] : next->results) {
    if (std::find(pending.begin(), pending.end(), id) == pending.end()) {
      return at(path,
                "unexpected `tool_use_id` found in `tool_result` blocks: " + id +
                    ". Each `tool_result` block must have a corresponding `tool_use` block in the previous "
                    "message.");
    }
  }
  return std::nullopt;
}

struct Conversation {
  std::string last_user;    // text of the last user message
  std::uint64_t words = 0;  // over every message
};

std::expected<Conversation, Problem> read_messages(const json::object& o) {
  const json::value* messages = member(o, "messages");
  if (messages == nullptr) return std::unexpected(at("messages", kFieldRequired));
  if (!messages->is_array()) return std::unexpected(wrong_type("messages", "list"));
  const json::array& list = messages->get_array();
  if (list.empty()) return std::unexpected(Problem("messages: at least one message is required"));
  static constexpr std::array<std::string_view, 2> kKnown = {"role", "content"};
  Conversation out;
  std::vector<std::string> pending;  // tool_use ids of the message before
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string path = child("messages", i);
    const json::object* m = list[i].if_object();
    if (m == nullptr) return std::unexpected(wrong_type(path, "dictionary"));
    if (auto p = extra_inputs(*m, path, kKnown)) return std::unexpected(std::move(*p));
    std::string_view role;
    if (auto p = string_member(*m, "role", path, &role)) return std::unexpected(std::move(*p));
    // Newer API versions take system messages among the others.
    if (role != "user" && role != "assistant" && role != "system") {
      return std::unexpected(at(child(path, "role"), "Input should be 'user', 'assistant' or 'system'"));
    }
    const json::value* content = m->if_contains("content");
    if (content == nullptr) return std::unexpected(at(child(path, "content"), kFieldRequired));
    auto read = read_content(*content, child(path, "content"));
    if (!read) return std::unexpected(std::move(read.error()));
    if (read->empty && !(role == "assistant" && i + 1 == list.size())) {
      return std::unexpected(at(
          path, "all messages must have non-empty content except for the optional final assistant message"));
    }
    if (auto p = check_tool_pairing(pending, i == 0 ? 0 : i - 1, &*read))
      return std::unexpected(std::move(*p));
    pending = role == "assistant" ? std::move(read->tool_uses) : std::vector<std::string>{};
    out.words += count_words(read->text);
    if (role == "user") out.last_user = std::move(read->text);
  }
  if (auto p = check_tool_pairing(pending, list.size() - 1, nullptr)) return std::unexpected(std::move(*p));
  return out;
}

// `system`: a string or a list of text blocks.
std::expected<std::string, Problem> read_system(const json::object& o) {
  const json::value* system = member(o, "system");
  if (system == nullptr) return std::string{};
  if (system->is_string()) return std::string(system->get_string());
  if (!system->is_array()) return std::unexpected(wrong_type("system", "string or list of text blocks"));
  std::string text;
  const json::array& blocks = system->get_array();
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const std::string path = child("system", i);
    const json::object* b = blocks[i].if_object();
    if (b == nullptr) return std::unexpected(wrong_type(path, "dictionary"));
    std::string_view type;
    std::string_view t;
    if (auto p = string_member(*b, "type", path, &type)) return std::unexpected(std::move(*p));
    if (type != "text") return std::unexpected(at(child(path, "type"), "Input should be 'text'"));
    if (auto p = string_member(*b, "text", path, &t)) return std::unexpected(std::move(*p));
    if (t.empty()) return std::unexpected(Problem("system: text content blocks must be non-empty"));
    append_text(text, t);
  }
  return text;
}

struct Tool {
  std::string_view name;
  const json::value* input_schema = nullptr;  // custom tools only (server tools have none)
};

bool valid_tool_name(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
  });
}

// `tools`: custom tools ({"name", "input_schema", "description"}, type absent or "custom") are
// checked; server tools (any other type) only need a name.
std::expected<std::vector<Tool>, Problem> read_tools(const json::object& o) {
  std::vector<Tool> tools;
  const json::value* list = member(o, "tools");
  if (list == nullptr) return tools;
  if (!list->is_array()) return std::unexpected(wrong_type("tools", "list"));
  for (std::size_t i = 0; i < list->get_array().size(); ++i) {
    const std::string path = child("tools", i);
    const json::object* t = list->get_array()[i].if_object();
    if (t == nullptr) return std::unexpected(wrong_type(path, "dictionary"));
    Tool tool;
    if (auto p = string_member(*t, "name", path, &tool.name)) return std::unexpected(std::move(*p));
    const json::value* type = member(*t, "type");
    if (type != nullptr && !type->is_string())
      return std::unexpected(wrong_type(child(path, "type"), "string"));
    if (type == nullptr || type->get_string() == "custom") {
      if (!valid_tool_name(tool.name)) {
        return std::unexpected(
            at(child(path, "name"), "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"));
      }
      tool.input_schema = t->if_contains("input_schema");
      if (tool.input_schema == nullptr)
        return std::unexpected(at(child(path, "input_schema"), kFieldRequired));
      if (!tool.input_schema->is_object()) {
        return std::unexpected(wrong_type(child(path, "input_schema"), "dictionary"));
      }
    }
    if (std::any_of(tools.begin(), tools.end(), [&](const Tool& other) { return other.name == tool.name; })) {
      return std::unexpected(Problem("tools: Tool names must be unique."));
    }
    tools.push_back(tool);
  }
  return tools;
}

struct ToolChoice {
  std::string_view type = "auto";  // auto, any, tool or none
  std::string_view name;           // for "tool"
};

std::expected<ToolChoice, Problem> read_tool_choice(const json::object& o, const std::vector<Tool>& tools) {
  ToolChoice choice;
  const json::value* v = member(o, "tool_choice");
  if (v == nullptr) return choice;
  const json::object* c = v->if_object();
  if (c == nullptr) return std::unexpected(wrong_type("tool_choice", "dictionary"));
  static constexpr std::array<std::string_view, 3> kKnown = {"type", "name", "disable_parallel_tool_use"};
  if (auto p = extra_inputs(*c, "tool_choice", kKnown)) return std::unexpected(std::move(*p));
  if (auto p = string_member(*c, "type", "tool_choice", &choice.type)) return std::unexpected(std::move(*p));
  static constexpr std::array<std::string_view, 4> kTypes = {"auto", "any", "tool", "none"};
  if (!one_of(choice.type, kTypes)) {
    return std::unexpected(at("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'"));
  }
  if (const json::value* d = member(*c, "disable_parallel_tool_use"); d != nullptr && !d->is_bool()) {
    return std::unexpected(wrong_type("tool_choice.disable_parallel_tool_use", "boolean"));
  }
  if (choice.type != "tool") return choice;
  if (auto p = string_member(*c, "name", "tool_choice", &choice.name)) return std::unexpected(std::move(*p));
  if (std::none_of(tools.begin(), tools.end(), [&](const Tool& t) { return t.name == choice.name; })) {
    return std::unexpected(
        at("tool_choice.name", "no tool named '" + std::string(choice.name) + "' in tools"));
  }
  return choice;
}

// What /v1/messages and /v1/messages/count_tokens both read.
struct MessagesRequest {
  std::string model;
  Conversation conversation;
  std::uint64_t input_tokens = 0;  // words of system + every message
  std::vector<Tool> tools;
  ToolChoice tool_choice;
};

std::expected<MessagesRequest, Problem> read_request(const json::object& o) {
  MessagesRequest r;
  std::string_view model;
  if (auto p = string_member(o, "model", "", &model)) return std::unexpected(std::move(*p));
  r.model = model;
  auto conversation = read_messages(o);
  if (!conversation) return std::unexpected(std::move(conversation.error()));
  r.conversation = std::move(*conversation);
  auto system = read_system(o);
  if (!system) return std::unexpected(std::move(system.error()));
  r.input_tokens = count_words(*system) + r.conversation.words;
  auto tools = read_tools(o);
  if (!tools) return std::unexpected(std::move(tools.error()));
  r.tools = std::move(*tools);
  auto choice = read_tool_choice(o, r.tools);
  if (!choice) return std::unexpected(std::move(choice.error()));
  r.tool_choice = *choice;
  if (const json::value* thinking = member(o, "thinking"); thinking != nullptr && !thinking->is_object()) {
    return std::unexpected(wrong_type("thinking", "dictionary"));
  }
  return r;
}

std::optional<Problem> check_number(const json::object& o, std::string_view key, double lo, double hi) {
  const json::value* v = member(o, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return wrong_type(key, "number");
  const double d = v->to_number<double>();
  if (d < lo) return at(key, "Input should be greater than or equal to " + to_json_text(json::value(lo)));
  if (d > hi) return at(key, "Input should be less than or equal to " + to_json_text(json::value(hi)));
  return std::nullopt;
}

// The sampling and output parameters of /v1/messages; max_tokens is returned.
std::expected<std::int64_t, Problem> read_generation(const json::object& o) {
  const json::value* max_tokens = member(o, "max_tokens");
  if (max_tokens == nullptr) return std::unexpected(at("max_tokens", kFieldRequired));
  std::optional<std::int64_t> limit = as_integer(*max_tokens);
  if (!limit) return std::unexpected(wrong_type("max_tokens", "integer"));
  // 0 is allowed: it only warms the prompt cache.
  if (*limit < 0) return std::unexpected(at("max_tokens", "Input should be greater than or equal to 0"));
  if (auto p = check_number(o, "temperature", 0, 1)) return std::unexpected(std::move(*p));
  if (auto p = check_number(o, "top_p", 0, 1)) return std::unexpected(std::move(*p));
  if (const json::value* top_k = member(o, "top_k")) {
    std::optional<std::int64_t> k = as_integer(*top_k);
    if (!k) return std::unexpected(wrong_type("top_k", "integer"));
    if (*k < 0) return std::unexpected(at("top_k", "Input should be greater than or equal to 0"));
  }
  if (const json::value* stream = member(o, "stream"); stream != nullptr && !stream->is_bool()) {
    return std::unexpected(wrong_type("stream", "boolean"));
  }
  if (const json::value* metadata = member(o, "metadata")) {
    if (!metadata->is_object()) return std::unexpected(wrong_type("metadata", "dictionary"));
    static constexpr std::array<std::string_view, 1> kKnown = {"user_id"};
    if (auto p = extra_inputs(metadata->get_object(), "metadata", kKnown))
      return std::unexpected(std::move(*p));
    const json::value* user = member(metadata->get_object(), "user_id");
    if (user != nullptr && !user->is_string())
      return std::unexpected(wrong_type("metadata.user_id", "string"));
  }
  return *limit;
}

std::expected<std::vector<std::string_view>, Problem> read_stop_sequences(const json::object& o) {
  std::vector<std::string_view> out;
  const json::value* list = member(o, "stop_sequences");
  if (list == nullptr) return out;
  if (!list->is_array()) return std::unexpected(wrong_type("stop_sequences", "list"));
  for (std::size_t i = 0; i < list->get_array().size(); ++i) {
    const json::value& s = list->get_array()[i];
    if (!s.is_string()) return std::unexpected(wrong_type(child("stop_sequences", i), "string"));
    if (count_words(s.get_string()) == 0) {
      return std::unexpected(Problem("stop_sequences: each stop sequence must contain non-whitespace"));
    }
    out.push_back(s.get_string());
  }
  return out;
}

// The body fields of API version 2023-06-01 and of the newer ones together (temperature, top_p and
// top_k are gone from the newer; cache_control, diagnostics, inference_geo, output_config and speed
// are new); anything else is refused as Anthropic refuses it.
constexpr std::array<std::string_view, 22> kMessagesFields = {"model",
                                                              "messages",
                                                              "max_tokens",
                                                              "system",
                                                              "metadata",
                                                              "stop_sequences",
                                                              "stream",
                                                              "temperature",
                                                              "top_p",
                                                              "top_k",
                                                              "tools",
                                                              "tool_choice",
                                                              "thinking",
                                                              "service_tier",
                                                              "container",
                                                              "mcp_servers",
                                                              "context_management",
                                                              "cache_control",
                                                              "diagnostics",
                                                              "inference_geo",
                                                              "output_config",
                                                              "speed"};
constexpr std::array<std::string_view, 11> kCountTokensFields = {
    "model",       "messages",           "system",        "tools",         "tool_choice", "thinking",
    "mcp_servers", "context_management", "cache_control", "output_config", "speed"};

std::expected<json::value, Problem> parse_object(std::string_view body, const json::storage_ptr& storage) {
  json::error_code ec;
  json::value root = json::parse(body, ec, storage);
  if (ec) return std::unexpected(Problem("The request body is not valid JSON."));
  if (!root.is_object()) return std::unexpected(Problem("The request body must be a JSON object."));
  return root;
}

// "use tool NAME" in the last user message names the tool the reply calls.
std::string_view named_tool(std::string_view text) {
  const std::vector<std::string_view> words = split_words(text);
  for (std::size_t i = 0; i + 2 < words.size(); ++i) {
    if (words[i] == "use" && words[i + 1] == "tool") return words[i + 2];
  }
  return {};
}

// The custom tool the reply calls, if any: tool_choice "none" never calls one, "tool" calls the
// one it names, "any" the one the user names or else the first, "auto" only the one the user names.
const Tool* chosen_tool(const MessagesRequest& r) {
  if (r.tool_choice.type == "none") return nullptr;
  auto custom = [&](std::string_view name) -> const Tool* {
    auto it = std::find_if(r.tools.begin(), r.tools.end(),
                           [&](const Tool& t) { return t.input_schema != nullptr && t.name == name; });
    return it == r.tools.end() ? nullptr : &*it;
  };
  if (r.tool_choice.type == "tool") return custom(r.tool_choice.name);
  if (const Tool* named = custom(named_tool(r.conversation.last_user))) return named;
  if (r.tool_choice.type != "any") return nullptr;
  auto first =
      std::find_if(r.tools.begin(), r.tools.end(), [](const Tool& t) { return t.input_schema != nullptr; });
  return first == r.tools.end() ? nullptr : &*first;
}

std::string join_words(const std::vector<std::string_view>& words, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count && i < words.size(); ++i) {
    if (i > 0) out.push_back(' ');
    out.append(words[i]);
  }
  return out;
}

// A plain text reply: the first of the stop sequences to appear in it ends it there, unless
// max_tokens words end it sooner.
void plan_text(MessagesPlan& plan, const std::vector<std::string_view>& words, std::int64_t max_tokens,
               const std::vector<std::string_view>& stops) {
  const std::string full = join_words(words, words.size());
  const bool cut = static_cast<std::uint64_t>(max_tokens) < words.size();
  const std::string kept = cut ? join_words(words, static_cast<std::size_t>(max_tokens)) : full;
  std::size_t stop_at = std::string::npos;
  std::string_view stop;
  for (std::string_view s : stops) {
    std::size_t found = full.find(s);
    if (found < stop_at) {
      stop_at = found;
      stop = s;
    }
  }
  if (stop_at != std::string::npos && stop_at + stop.size() <= kept.size()) {
    plan.text = full.substr(0, stop_at);
    plan.stop_reason = "stop_sequence";
    plan.stop_sequence = std::string(stop);
  } else {
    plan.text = kept;
    plan.stop_reason = cut ? "max_tokens" : "end_turn";
  }
}

std::expected<MessagesPlan, Problem> plan_messages_request(std::string_view body, std::uint32_t chunks) {
  ParseArena arena;
  auto root = parse_object(body, arena.storage());
  if (!root) return std::unexpected(std::move(root.error()));
  const json::object& o = root->get_object();
  if (auto p = extra_inputs(o, "", kMessagesFields)) return std::unexpected(std::move(*p));
  auto max_tokens = read_generation(o);
  if (!max_tokens) return std::unexpected(std::move(max_tokens.error()));
  auto request = read_request(o);
  if (!request) return std::unexpected(std::move(request.error()));
  auto stops = read_stop_sequences(o);
  if (!stops) return std::unexpected(std::move(stops.error()));

  MessagesPlan plan;
  plan.model = request->model;
  plan.stream = o.contains("stream") && o.at("stream").is_bool() && o.at("stream").get_bool();
  plan.input_tokens = request->input_tokens;
  const std::string& user = request->conversation.last_user;
  std::vector<std::string_view> words = {"mock", "reply:"};
  for (std::string_view w : split_words(user)) words.push_back(w);
  if (const Tool* tool = chosen_tool(*request)) {
    // Claude writes a sentence before a tool call it chose itself, none before a forced one.
    const std::string full = join_words(words, words.size());
    if (request->tool_choice.type == "auto") plan.text = full;
    SchemaInput in{*tool->input_schema, full, words.size() - 2, user.find('?') != std::string::npos};
    json::value input = build_from_schema(*tool->input_schema, in, 0);
    plan.tool_name = tool->name;
    plan.tool_input = input.is_object() ? to_json_text(input) : "{}";
    plan.stop_reason = "tool_use";
  } else {
    plan_text(plan, words, *max_tokens, *stops);
  }
  plan.output_tokens = count_words(plan.text) + count_words(plan.tool_input);
  plan.text_deltas = split_deltas(plan.text, chunks);
  plan.tool_input_deltas = split_deltas(plan.tool_input, chunks);
  return plan;
}

json::object message_usage(std::uint64_t input_tokens, std::uint64_t output_tokens) {
  return json::object{{"input_tokens", input_tokens},
                      {"cache_creation_input_tokens", 0},
                      {"cache_read_input_tokens", 0},
                      {"output_tokens", output_tokens}};
}

json::value stop_sequence_of(const MessagesPlan& plan) {
  return plan.stop_sequence ? json::value(*plan.stop_sequence) : json::value(nullptr);
}

json::object message_object(const MessagesPlan& plan, std::string_view id, json::array content, bool done) {
  return json::object{{"id", id},
                      {"type", "message"},
                      {"role", "assistant"},
                      {"model", plan.model},
                      {"content", std::move(content)},
                      {"stop_reason", done ? json::value(plan.stop_reason) : json::value(nullptr)},
                      {"stop_sequence", done ? stop_sequence_of(plan) : json::value(nullptr)},
                      {"stop_details", nullptr},
                      {"container", nullptr},
                      // message_start carries output_tokens 1, as Anthropic's streams do.
                      {"usage", message_usage(plan.input_tokens, done ? plan.output_tokens : 1)}};
}

}  // namespace

std::expected<MessagesPlan, Reply> plan_messages(std::string_view body, std::uint32_t chunks,
                                                 std::string_view request_id) {
  auto plan = plan_messages_request(body, chunks);
  if (!plan) return std::unexpected(anthropic_error(400, "invalid_request_error", plan.error(), request_id));
  return std::move(*plan);
}

std::expected<std::string, Reply> count_message_tokens(std::string_view body, std::string_view request_id) {
  auto count = [&]() -> std::expected<std::uint64_t, Problem> {
    ParseArena arena;
    auto root = parse_object(body, arena.storage());
    if (!root) return std::unexpected(std::move(root.error()));
    if (auto p = extra_inputs(root->get_object(), "", kCountTokensFields))
      return std::unexpected(std::move(*p));
    auto request = read_request(root->get_object());
    if (!request) return std::unexpected(std::move(request.error()));
    return request->input_tokens;
  }();
  if (!count)
    return std::unexpected(anthropic_error(400, "invalid_request_error", count.error(), request_id));
  return json::serialize(json::object{{"input_tokens", *count}});
}

std::string render_message(const MessagesPlan& plan, std::string_view id, std::string_view tool_id) {
  json::array content;
  if (!plan.text.empty()) content.push_back(json::object{{"type", "text"}, {"text", plan.text}});
  if (!plan.tool_name.empty()) {
    content.push_back(json::object{{"type", "tool_use"},
                                   {"id", tool_id},
                                   {"name", plan.tool_name},
                                   {"input", json::parse(plan.tool_input)}});
  }
  return json::serialize(message_object(plan, id, std::move(content), true));
}

std::vector<std::string> render_message_events(const MessagesPlan& plan, std::string_view id,
                                               std::string_view tool_id) {
  std::vector<std::string> events;
  events.reserve(plan.text_deltas.size() + plan.tool_input_deltas.size() + 10);
  auto emit = [&](std::string_view type, const json::object& data) {
    std::string event = "event: ";
    event.append(type).append("\ndata: ").append(json::serialize(data)).append("\n\n");
    events.push_back(std::move(event));
  };
  // One ping, after the first content_block_start (as Anthropic sends it) or before message_delta.
  bool pinged = false;
  auto ping = [&] {
    if (!pinged) emit("ping", json::object{{"type", "ping"}});
    pinged = true;
  };
  std::size_t index = 0;
  auto block = [&](json::object start, const std::vector<std::string>& deltas, std::string_view delta_type,
                   std::string_view field) {
    emit(
        "content_block_start",
        json::object{{"type", "content_block_start"}, {"index", index}, {"content_block", std::move(start)}});
    ping();
    for (const std::string& d : deltas) {
      emit("content_block_delta", json::object{{"type", "content_block_delta"},
                                               {"index", index},
                                               {"delta", json::object{{"type", delta_type}, {field, d}}}});
    }
    emit("content_block_stop", json::object{{"type", "content_block_stop"}, {"index", index}});
    ++index;
  };

  emit("message_start",
       json::object{{"type", "message_start"}, {"message", message_object(plan, id, json::array{}, false)}});
  if (!plan.text.empty()) {
    block(json::object{{"type", "text"}, {"text", ""}}, plan.text_deltas, "text_delta", "text");
  }
  if (!plan.tool_name.empty()) {
    block(
        json::object{
            {"type", "tool_use"}, {"id", tool_id}, {"name", plan.tool_name}, {"input", json::object{}}},
        plan.tool_input_deltas, "input_json_delta", "partial_json");
  }
  ping();
  // The usage of message_delta is the whole message's, as Anthropic now sends it.
  json::object delta{{"stop_reason", plan.stop_reason},
                     {"stop_sequence", stop_sequence_of(plan)},
                     {"stop_details", nullptr}};
  emit("message_delta", json::object{{"type", "message_delta"},
                                     {"delta", std::move(delta)},
                                     {"usage", message_usage(plan.input_tokens, plan.output_tokens)}});
  emit("message_stop", json::object{{"type", "message_stop"}});
  return events;
}

std::expected<std::vector<Fault>, std::string> parse_faults(std::string_view body) {
  json::error_code ec;
  ParseArena arena;
  json::value root = json::parse(body, ec, arena.storage());
  if (ec || !root.is_object()) return std::unexpected("body must be a JSON object {\"faults\": [...]}");
  const json::value* list = root.get_object().if_contains("faults");
  if (list == nullptr || !list->is_array()) return std::unexpected("\"faults\" must be an array");

  std::vector<Fault> faults;
  for (std::size_t i = 0; i < list->get_array().size(); ++i) {
    const json::value& item = list->get_array()[i];
    std::string where = "faults[" + std::to_string(i) + "]";
    const json::object* f = item.if_object();
    if (f == nullptr) return std::unexpected(where + " must be an object");
    Fault fault;
    int actions = 0;
    auto non_negative = [&](const json::value& v, std::string_view key,
                            std::uint64_t max) -> std::expected<std::uint64_t, std::string> {
      std::optional<std::int64_t> n = as_integer(v);
      if (!n || *n < 0 || static_cast<std::uint64_t>(*n) > max) {
        return std::unexpected(where + "." + std::string(key) + " must be an integer in 0.." +
                               std::to_string(max));
      }
      return static_cast<std::uint64_t>(*n);
    };
    auto flag = [&](const json::value& v, std::string_view key) -> std::expected<bool, std::string> {
      if (!v.is_bool()) return std::unexpected(where + "." + std::string(key) + " must be a boolean");
      return v.get_bool();
    };
    for (const auto& [key, value] : *f) {
      if (key == "status") {
        auto s = non_negative(value, key, 599);
        if (!s) return std::unexpected(s.error());
        if (*s < 200) return std::unexpected(where + ".status must be in 200..599");
        fault.status = static_cast<unsigned>(*s);
        ++actions;
      } else if (key == "retry_after") {
        if (value.is_string()) {
          fault.retry_after = value.get_string();
        } else if (auto n = as_integer(value); n && *n >= 0) {
          fault.retry_after = std::to_string(*n);
        } else if (value.is_double() && value.get_double() >= 0) {
          fault.retry_after = json::serialize(value);
        } else {
          return std::unexpected(where + ".retry_after must be a non-negative number or a string");
        }
        if (fault.retry_after.find_first_of("\r\n") != std::string::npos) {
          return std::unexpected(where + ".retry_after must be one line");
        }
      } else if (key == "body") {
        if (!value.is_null())
          fault.body = value.is_string() ? std::string(value.get_string()) : json::serialize(value);
      } else if (key == "reset" || key == "hang" || key == "malformed") {
        auto b = flag(value, key);
        if (!b) return std::unexpected(b.error());
        (key == "reset" ? fault.reset : key == "hang" ? fault.hang : fault.malformed) = *b;
        actions += *b ? 1 : 0;
      } else if (key == "drop_after_chunks") {
        auto n = non_negative(value, key, 1'000'000);
        if (!n) return std::unexpected(n.error());
        fault.drop_after_chunks = *n;
        ++actions;
      } else if (key == "delay_ms") {
        auto n = non_negative(value, key, 600'000);
        if (!n) return std::unexpected(n.error());
        fault.delay_ms = *n;
      } else {
        return std::unexpected(where + " has an unknown key \"" + std::string(key) +
                               "\" (known: status, retry_after, body, reset, hang, drop_after_chunks, "
                               "malformed, delay_ms)");
      }
    }
    if (actions > 1) {
      return std::unexpected(where +
                             " combines several of status, reset, hang, malformed, drop_after_chunks");
    }
    if (actions == 0 && !f->contains("delay_ms")) return std::unexpected(where + " does nothing");
    if (!fault.status && (fault.body || !fault.retry_after.empty())) {
      return std::unexpected(where + ": body and retry_after need a status");
    }
    faults.push_back(std::move(fault));
  }
  return faults;
}

std::size_t State::add_faults(std::vector<Fault> faults) {
  std::lock_guard lock(mutex_);
  for (Fault& f : faults) faults_.push_back(std::move(f));
  return faults_.size();
}

std::optional<Fault> State::on_request(RecordedRequest request) {
  std::lock_guard lock(mutex_);
  if (record_limit_ > 0) {
    if (requests_.size() >= record_limit_) requests_.pop_front();
    requests_.push_back(std::move(request));
  }
  if (faults_.empty()) return std::nullopt;
  Fault f = std::move(faults_.front());
  faults_.pop_front();
  return f;
}

std::string State::render_requests() const {
  json::array out;
  {
    std::lock_guard lock(mutex_);
    out.reserve(requests_.size());
    for (const RecordedRequest& r : requests_) {
      out.push_back(json::object{
          {"method", r.method},
          {"path", r.path},
          {"authorization", r.authorization ? json::value(*r.authorization) : json::value(nullptr)},
          {"x_api_key", r.x_api_key ? json::value(*r.x_api_key) : json::value(nullptr)},
          {"anthropic_version",
           r.anthropic_version ? json::value(*r.anthropic_version) : json::value(nullptr)},
          {"body", r.body},
          {"received_at_ms", r.received_at_ms}});
    }
  }
  return json::serialize(out);
}

void State::reset() {
  std::lock_guard lock(mutex_);
  faults_.clear();
  requests_.clear();
}

}  // namespace parley::mock
