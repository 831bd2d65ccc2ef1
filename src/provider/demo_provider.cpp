#include "provider/demo_provider.hpp"

#include <fmt/format.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>

#include "provider/demo_audio.hpp"
#include "upstream/multipart.hpp"

namespace parley::provider {

namespace bj = boost::json;
namespace asio = boost::asio;

namespace {

std::vector<std::string_view> words_of(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
    std::size_t start = i;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) == 0) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

std::string content_text(const bj::value& content) {
  if (content.is_string()) return std::string(content.as_string());
  std::string out;
  if (content.is_array()) {
    for (const auto& part : content.as_array()) {
      if (part.is_object() && part.as_object().contains("text") && part.as_object().at("text").is_string()) {
        if (!out.empty()) out += ' ';
        out += part.as_object().at("text").as_string();
      }
    }
  }
  return out;
}

std::atomic<std::uint64_t> g_counter{0};

// A value following a JSON schema: each property in order; a string enum picks its first member
// when the user's message asks a question ('?'), else its last; other strings are the demo reply;
// integers the reply's word count, numbers 0.5, booleans true, arrays empty.
bj::value structured_value(const bj::value& schema, std::string_view last_user, const std::string& reply,
                           int depth = 0) {
  if (!schema.is_object() || depth > 8) return nullptr;
  const auto& s = schema.as_object();
  if (auto e = s.find("enum"); e != s.end() && e->value().is_array() && !e->value().as_array().empty()) {
    const auto& members = e->value().as_array();
    return last_user.find('?') != std::string_view::npos ? members.front() : members.back();
  }
  std::string_view type;
  if (auto t = s.find("type"); t != s.end() && t->value().is_string()) type = t->value().as_string();
  if (type == "object") {
    bj::object out;
    if (auto props = s.find("properties"); props != s.end() && props->value().is_object()) {
      for (const auto& [name, sub] : props->value().as_object())
        out[name] = structured_value(sub, last_user, reply, depth + 1);
    }
    return out;
  }
  if (type == "string") return bj::string(reply);
  if (type == "integer") return static_cast<std::int64_t>(words_of(reply).size());
  if (type == "number") return 0.5;
  if (type == "boolean") return true;
  if (type == "array") return bj::array{};
  return nullptr;
}

std::int64_t unix_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::string> DemoProvider::reply_for(std::string_view body, std::string& model,
                                            std::size_t& prompt_words) {
  boost::system::error_code ec;
  bj::value v = bj::parse(body, ec);
  if (ec || !v.is_object()) return fail(ErrorKind::kInvalidJson, "Request body is not valid JSON");
  const bj::object& o = v.as_object();
  if (auto it = o.find("model"); it != o.end() && it->value().is_string())
    model = std::string(it->value().as_string());
  std::string last_user;
  prompt_words = 0;
  if (auto it = o.find("messages"); it != o.end() && it->value().is_array()) {
    for (const auto& m : it->value().as_array()) {
      if (!m.is_object()) continue;
      const auto& mo = m.as_object();
      std::string text = mo.contains("content") ? content_text(mo.at("content")) : std::string();
      prompt_words += words_of(text).size();
      if (mo.contains("role") && mo.at("role") == "user") last_user = text;
    }
  }
  std::string reply = "This is the parley demo model. You said:";
  for (auto w : words_of(last_user)) {
    reply += ' ';
    reply += w;
  }
  // Structured output: an object following the json_schema asked for.
  if (auto rf = o.find("response_format"); rf != o.end() && rf->value().is_object()) {
    const auto& format = rf->value().as_object();
    auto type = format.find("type");
    if (type != format.end() && type->value() == "json_schema") {
      const bj::value* schema = nullptr;
      if (auto js = format.find("json_schema"); js != format.end() && js->value().is_object()) {
        if (auto sc = js->value().as_object().find("schema"); sc != js->value().as_object().end())
          schema = &sc->value();
      }
      return bj::serialize(schema != nullptr ? structured_value(*schema, last_user, reply) : bj::object{});
    }
    if (type != format.end() && type->value() == "json_object")
      return bj::serialize(bj::object{{"reply", reply}});
  }
  return reply;
}

namespace {

ProviderResponse rejection(unsigned status, std::string_view message) {
  ProviderResponse res;
  res.status = status;
  res.body = bj::serialize(bj::object{
      {"error", bj::object{{"message", message}, {"type", "invalid_request_error"}, {"code", nullptr}}}});
  return res;
}

// Embeddings of the demo model: for each input string a unit vector of `dimensions` floats derived
// from its bytes (FNV-1a seeded per component), so equal texts get equal vectors.
ProviderResponse demo_embeddings(std::string_view body) {
  boost::system::error_code ec;
  bj::value v = bj::parse(body, ec);
  if (ec || !v.is_object()) return rejection(400, "The request body is not valid JSON");
  const bj::object& o = v.as_object();
  std::vector<std::string> inputs;
  auto in = o.find("input");
  if (in != o.end() && in->value().is_string()) {
    inputs.emplace_back(in->value().as_string());
  } else if (in != o.end() && in->value().is_array()) {
    for (const auto& item : in->value().as_array()) {
      if (!item.is_string()) return rejection(400, "input must be a string or an array of strings");
      inputs.emplace_back(item.as_string());
    }
  }
  if (inputs.empty() || inputs.size() > 2048) return rejection(400, "input must hold 1 to 2048 strings");
  std::int64_t dimensions = 256;
  if (auto d = o.find("dimensions"); d != o.end()) {
    if (!d->value().is_int64() || d->value().as_int64() < 1 || d->value().as_int64() > 4096)
      return rejection(400, "dimensions must be an integer from 1 to 4096");
    dimensions = d->value().as_int64();
  }
  std::string model = "demo";
  if (auto m = o.find("model"); m != o.end() && m->value().is_string()) model = m->value().as_string();
  bj::array data;
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    tokens += words_of(inputs[i]).size();
    std::vector<double> vec(static_cast<std::size_t>(dimensions));
    double norm = 0;
    for (std::size_t k = 0; k < vec.size(); ++k) {
      std::uint64_t h = 1469598103934665603ULL ^ (k * 0x9E3779B97F4A7C15ULL);
      for (unsigned char c : inputs[i]) h = (h ^ c) * 1099511628211ULL;
      vec[k] = static_cast<double>(h % 20001) / 10000.0 - 1.0;
      norm += vec[k] * vec[k];
    }
    norm = norm > 0 ? std::sqrt(norm) : 1.0;
    bj::array embedding;
    embedding.reserve(vec.size());
    for (double x : vec) embedding.push_back(x / norm);
    data.push_back(bj::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
  }
  ProviderResponse res;
  res.usage = TokenUsage{static_cast<std::int64_t>(tokens), 0, static_cast<std::int64_t>(tokens)};
  res.body =
      bj::serialize(bj::object{{"object", "list"},
                               {"data", std::move(data)},
                               {"model", model},
                               {"usage", bj::object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
  return res;
}

}  // namespace

asio::awaitable<Result<ProviderResponse>> DemoProvider::post(const CallContext&, std::string_view path,
                                                             std::string body) {
  if (path == "/embeddings") co_return demo_embeddings(body);
  if (path != "/chat/completions") co_return rejection(404, "The demo model does not offer this endpoint");
  std::string model = "demo";
  std::size_t prompt = 0;
  auto reply = reply_for(body, model, prompt);
  if (!reply) co_return rejection(400, reply.error().message);
  std::size_t completion = words_of(*reply).size();
  bj::object out{
      {"id", fmt::format("chatcmpl-demo{:012}", ++g_counter)},
      {"object", "chat.completion"},
      {"created", unix_now_s()},
      {"model", model},
      {"choices", bj::array{bj::object{{"index", 0},
                                       {"message", bj::object{{"role", "assistant"}, {"content", *reply}}},
                                       {"finish_reason", "stop"},
                                       {"logprobs", nullptr}}}},
      {"usage", bj::object{{"prompt_tokens", prompt},
                           {"completion_tokens", completion},
                           {"total_tokens", prompt + completion}}}};
  ProviderResponse res;
  res.body = bj::serialize(out);
  res.usage = TokenUsage{static_cast<std::int64_t>(prompt), static_cast<std::int64_t>(completion),
                         static_cast<std::int64_t>(prompt + completion)};
  co_return res;
}

asio::awaitable<Result<ProviderResponse>> DemoProvider::post_raw(const CallContext&, std::string_view path,
                                                                 std::string body, std::string content_type) {
  ProviderResponse res;
  if (path == "/audio/speech") {
    boost::system::error_code ec;
    bj::value v = bj::parse(body, ec);
    if (ec || !v.is_object()) co_return rejection(400, "The request body is not valid JSON");
    const auto& o = v.as_object();
    auto input = o.find("input");
    if (input == o.end() || !input->value().is_string() || input->value().as_string().empty())
      co_return rejection(400, "input must be a non-empty string");
    res.body = demo_wav(input->value().as_string());
    res.content_type = "audio/wav";
    const auto tokens = static_cast<std::int64_t>((input->value().as_string().size() + 3) / 4);
    res.usage = TokenUsage{tokens, 0, tokens};
    co_return res;
  }
  if (path == "/audio/transcriptions") {
    auto boundary = upstream::form_boundary(content_type);
    if (!boundary) co_return rejection(400, "The body must be multipart/form-data");
    auto parts = upstream::parse_form(body, *boundary);
    if (!parts) co_return rejection(400, parts.error().message);
    const upstream::FormPart* file = upstream::find_part(*parts, "file");
    if (file == nullptr) co_return rejection(400, "file is required");
    std::string text =
        wav_comment(file->data)
            .value_or(fmt::format("This is the parley demo transcription of {} bytes of audio.",
                                  file->data.size()));
    std::string format = "json";
    if (const auto* f = upstream::find_part(*parts, "response_format")) format = std::string(f->data);
    const auto input_tokens = static_cast<std::int64_t>((file->data.size() + 999) / 1000);
    const auto output_tokens = static_cast<std::int64_t>(words_of(text).size());
    if (format == "text") {
      res.body = text;
      res.content_type = "text/plain; charset=utf-8";
    } else {
      bj::object out{{"text", text},
                     {"usage", bj::object{{"type", "tokens"},
                                          {"input_tokens", input_tokens},
                                          {"output_tokens", output_tokens},
                                          {"total_tokens", input_tokens + output_tokens}}}};
      if (format == "verbose_json") {
        out["language"] = "english";
        out["duration"] = wav_seconds(file->data);
        out["segments"] = bj::array{};
      }
      res.body = bj::serialize(out);
      res.content_type = "application/json";
    }
    res.usage = TokenUsage{input_tokens, output_tokens, input_tokens + output_tokens};
    co_return res;
  }
  co_return rejection(404, "The demo model does not offer this endpoint");
}

asio::awaitable<Result<StreamOutcome>> DemoProvider::post_stream(const CallContext& ctx,
                                                                 std::string_view path, std::string body,
                                                                 EventSink sink) {
  StreamOutcome outcome;
  std::string model = "demo";
  std::size_t prompt = 0;
  auto reply = reply_for(body, model, prompt);
  if (path != "/chat/completions" || !reply) {
    ProviderResponse r = path != "/chat/completions"
                             ? rejection(404, "The demo model does not stream this endpoint")
                             : rejection(400, reply.error().message);
    outcome.status = r.status;
    outcome.error_body = std::move(r.body);
    co_return outcome;
  }
  std::string id = fmt::format("chatcmpl-demo{:012}", ++g_counter);
  std::int64_t created = unix_now_s();
  auto chunk = [&](bj::object delta, bj::value finish) {
    bj::object c{{"id", id},
                 {"object", "chat.completion.chunk"},
                 {"created", created},
                 {"model", model},
                 {"choices", bj::array{bj::object{
                                 {"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}}}};
    return bj::serialize(c);
  };
  auto words = words_of(*reply);
  std::string first = chunk(bj::object{{"role", "assistant"}, {"content", ""}}, nullptr);
  // Each event is its own batch: the demo model streams word by word.
  auto emit = [&](std::string_view data) -> asio::awaitable<bool> {
    if (!co_await sink(data)) co_return false;
    if (ctx.on_stream_batch_end && !co_await ctx.on_stream_batch_end()) co_return false;
    co_return true;
  };
  if (!co_await emit(first)) co_return outcome;
  ++outcome.events;
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string piece = (i == 0 ? "" : " ") + std::string(words[i]);
    std::string data = chunk(bj::object{{"content", piece}}, nullptr);
    if (!co_await emit(data)) co_return outcome;
    ++outcome.events;
  }
  std::string last = chunk(bj::object{}, "stop");
  if (!co_await emit(last)) co_return outcome;
  bj::object usage_chunk{{"id", id},
                         {"object", "chat.completion.chunk"},
                         {"created", created},
                         {"model", model},
                         {"choices", bj::array{}},
                         {"usage", bj::object{{"prompt_tokens", prompt},
                                              {"completion_tokens", words.size()},
                                              {"total_tokens", prompt + words.size()}}}};
  std::string usage = bj::serialize(usage_chunk);
  if (!co_await emit(usage)) co_return outcome;
  outcome.events += 2;
  co_return outcome;
}

}  // namespace parley::provider
