#include <algorithm>
#include <array>
#include <bit>
#include <boost/json.hpp>
#include <cmath>
#include <cstring>

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

  std::vector<std::string_view> words = {"mock", "reply:"};
  for (std::string_view w : split_words(last_user)) words.push_back(w);
  plan.finish_reason = "stop";
  if (limit > 0 && static_cast<std::uint64_t>(limit) < words.size()) {
    words.resize(static_cast<std::size_t>(limit));
    plan.finish_reason = "length";
  }
  plan.completion_tokens = static_cast<std::uint64_t>(plan.n) * words.size();

  std::size_t pieces = chunks == 0 ? words.size() : std::min<std::size_t>(chunks, words.size());
  std::size_t base = words.size() / pieces;
  std::size_t extra = words.size() % pieces;
  std::size_t w = 0;
  for (std::size_t p = 0; p < pieces; ++p) {
    std::string delta;
    std::size_t take = base + (p < extra ? 1 : 0);
    for (std::size_t k = 0; k < take; ++k, ++w) {
      if (w > 0) delta.push_back(' ');
      delta.append(words[w]);
    }
    plan.content.append(delta);
    plan.deltas.push_back(std::move(delta));
  }
  return plan;
}

std::string render_chat(const ChatPlan& plan, std::string_view id, std::int64_t created) {
  json::array choices;
  choices.reserve(plan.n);
  for (std::uint32_t i = 0; i < plan.n; ++i) {
    choices.push_back(json::object{
        {"index", i},
        {"message", json::object{{"role", "assistant"}, {"content", plan.content}, {"refusal", nullptr}}},
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
  for (std::uint32_t i = 0; i < plan.n; ++i) {
    emit(choice(i, json::object{{"role", "assistant"}, {"content", ""}}, nullptr), nullptr);
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
// Fixed so that listings are byte-for-byte reproducible.
constexpr std::int64_t kModelCreated = 1700000000;

json::object model_object(std::string_view id) {
  return json::object{
      {"id", id}, {"object", "model"}, {"created", kModelCreated}, {"owned_by", "parley-mock"}};
}
}  // namespace

std::string render_models(const std::vector<std::string>& models) {
  json::array data;
  for (const std::string& m : models) data.push_back(model_object(m));
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

std::optional<std::string> render_model(const std::vector<std::string>& models, std::string_view id) {
  if (std::find(models.begin(), models.end(), id) == models.end()) return std::nullopt;
  return json::serialize(model_object(id));
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
