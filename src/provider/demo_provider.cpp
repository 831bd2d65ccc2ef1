#include "provider/demo_provider.hpp"

#include <fmt/format.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>

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

std::int64_t unix_now() {
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
  return reply;
}

asio::awaitable<Result<ProviderResponse>> DemoProvider::chat(const CallContext&, std::string body) {
  std::string model = "demo";
  std::size_t prompt = 0;
  auto reply = reply_for(body, model, prompt);
  if (!reply) co_return std::unexpected(reply.error());
  std::size_t completion = words_of(*reply).size();
  bj::object out{
      {"id", fmt::format("chatcmpl-demo{:012}", ++g_counter)},
      {"object", "chat.completion"},
      {"created", unix_now()},
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
  co_return res;
}

asio::awaitable<Result<StreamOutcome>> DemoProvider::chat_stream(const CallContext&, std::string body,
                                                                 EventSink sink) {
  std::string model = "demo";
  std::size_t prompt = 0;
  auto reply = reply_for(body, model, prompt);
  if (!reply) co_return std::unexpected(reply.error());
  std::string id = fmt::format("chatcmpl-demo{:012}", ++g_counter);
  std::int64_t created = unix_now();
  auto chunk = [&](bj::object delta, bj::value finish) {
    bj::object c{{"id", id},
                 {"object", "chat.completion.chunk"},
                 {"created", created},
                 {"model", model},
                 {"choices", bj::array{bj::object{
                                 {"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}}}};
    return bj::serialize(c);
  };
  StreamOutcome outcome;
  auto words = words_of(*reply);
  std::string first = chunk(bj::object{{"role", "assistant"}, {"content", ""}}, nullptr);
  if (!co_await sink(first)) co_return outcome;
  ++outcome.events;
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string piece = (i == 0 ? "" : " ") + std::string(words[i]);
    std::string data = chunk(bj::object{{"content", piece}}, nullptr);
    if (!co_await sink(data)) co_return outcome;
    ++outcome.events;
  }
  std::string last = chunk(bj::object{}, "stop");
  if (!co_await sink(last)) co_return outcome;
  bj::object usage_chunk{{"id", id},
                         {"object", "chat.completion.chunk"},
                         {"created", created},
                         {"model", model},
                         {"choices", bj::array{}},
                         {"usage", bj::object{{"prompt_tokens", prompt},
                                              {"completion_tokens", words.size()},
                                              {"total_tokens", prompt + words.size()}}}};
  std::string usage = bj::serialize(usage_chunk);
  if (!co_await sink(usage)) co_return outcome;
  outcome.events += 2;
  co_return outcome;
}

}  // namespace parley::provider
