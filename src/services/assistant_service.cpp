#include "services/assistant_service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>

#include "auth/policy.hpp"
#include "core/text.hpp"
#include "crypto/encoding.hpp"
#include "crypto/random.hpp"
#include "services/validate.hpp"
#include "store/user_store.hpp"

namespace parley::services {

namespace asio = boost::asio;
namespace bj = boost::json;
using Steady = std::chrono::steady_clock;

namespace {

constexpr std::size_t kMaxReplyChars = 1600;  // ten SMS segments
constexpr std::int64_t kMaxCallSeconds = std::int64_t{7} * 86400;
constexpr std::int64_t kDayMs = 86'400'000;

std::string_view trim(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

Error invalid_output(std::string_view why) {
  return {ErrorKind::kModelOutputInvalid,
          fmt::format("The model did not give a valid SMS decision ({}); try again", why)};
}

double ms_between(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string audio_format(std::string_view content_type) {
  std::string_view type = trim(content_type.substr(0, content_type.find(';')));
  if (type == "audio/mpeg" || type == "audio/mp3") return "mp3";
  if (type == "audio/wav" || type == "audio/x-wav" || type == "audio/wave") return "wav";
  if (type == "audio/ogg" || type == "audio/opus") return "opus";
  if (type == "audio/aac") return "aac";
  if (type == "audio/flac") return "flac";
  if (type == "audio/pcm" || type == "audio/l16") return "pcm";
  return "bin";
}

std::string turn_prompt(const store::PreferencesRecord& prefs) {
  if (prefs.system_prompt && !prefs.system_prompt->empty()) return *prefs.system_prompt;
  return fmt::format(
      "You are a helpful voice assistant on the user's phone. Answer briefly, in plain sentences that "
      "read well aloud (no lists, no markdown). Answer in the language whose code is \"{}\".",
      prefs.language);
}

std::string sms_prompt(const store::PreferencesRecord& prefs) {
  return fmt::format(
      "You screen the SMS messages the user receives. Decide whether the user should answer yes or no "
      "to the message, and draft a short, polite reply in the language whose code is \"{}\" (at most "
      "320 characters). Answer with one JSON object and nothing else: {{\"decision\": \"yes\" or "
      "\"no\", \"reply_text\": \"the reply\"}}.",
      prefs.language);
}

}  // namespace

Result<SmsAnswer> parse_sms_answer(std::string_view text) {
  std::string_view body = trim(text);
  if (body.starts_with("```")) {
    std::size_t eol = body.find('\n');
    if (eol == std::string_view::npos || !body.ends_with("```") || body.size() < 6)
      return std::unexpected(invalid_output("an unclosed code fence"));
    body = trim(body.substr(eol + 1, body.size() - 3 - (eol + 1)));
  }
  if (body.empty()) return std::unexpected(invalid_output("an empty answer"));
  if (body.front() != '{' || body.back() != '}')
    return std::unexpected(invalid_output("text outside one JSON object"));
  boost::system::error_code ec;
  bj::value doc = bj::parse(body, ec);
  if (ec || !doc.is_object()) return std::unexpected(invalid_output("not JSON"));
  const bj::object& o = doc.as_object();
  auto decision = o.find("decision");
  if (decision == o.end() || !decision->value().is_string())
    return std::unexpected(invalid_output("no decision"));
  std::string value(trim(decision->value().as_string()));
  std::transform(value.begin(), value.end(), value.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (value != "yes" && value != "no")
    return std::unexpected(invalid_output("a decision other than yes or no"));
  auto reply = o.find("reply_text");
  if (reply == o.end() || !reply->value().is_string())
    return std::unexpected(invalid_output("no reply_text"));
  std::string reply_text(trim(reply->value().as_string()));
  if (utf8_chars(reply_text) > kMaxReplyChars)
    return std::unexpected(invalid_output("a reply over 1600 characters"));
  return SmsAnswer{std::move(value), std::move(reply_text)};
}

const std::string& sms_response_format() {
  static const std::string format = bj::serialize(bj::object{
      {"type", "json_schema"},
      {"json_schema",
       bj::object{
           {"name", "sms_decision"},
           {"strict", true},
           {"schema",
            bj::object{{"type", "object"},
                       {"properties", bj::object{{"decision", bj::object{{"type", "string"},
                                                                         {"enum", bj::array{"yes", "no"}}}},
                                                 {"reply_text", bj::object{{"type", "string"}}}}},
                       {"required", bj::array{"decision", "reply_text"}},
                       {"additionalProperties", false}}}}}});
  return format;
}

Status check_call(const CallInput& c, std::int64_t now_ms) {
  if (c.direction != "inbound" && c.direction != "outbound")
    return validation("direction", "direction must be inbound or outbound");
  for (const auto& [field, number] :
       {std::pair<std::string_view, const std::string*>{"from_number", &c.from_number},
        std::pair<std::string_view, const std::string*>{"to_number", &c.to_number}}) {
    if (auto s = check_phone(*number); !s)
      return validation(std::string(field),
                        fmt::format("{} must be in E.164 form, e.g. +14155550123", field));
  }
  static constexpr std::string_view kStatuses[] = {"completed", "missed",   "failed",
                                                   "busy",      "rejected", "no_answer"};
  if (std::find(std::begin(kStatuses), std::end(kStatuses), c.status) == std::end(kStatuses))
    return validation("status", "status must be completed, missed, failed, busy, rejected or no_answer");
  if (c.started_at <= 0) return validation("started_at", "started_at is required");
  if (c.started_at > now_ms + kDayMs) return validation("started_at", "started_at is more than a day ahead");
  if (c.ended_at && *c.ended_at < c.started_at)
    return validation("ended_at", "ended_at is before started_at");
  if (c.duration_seconds) {
    if (*c.duration_seconds < 0 || *c.duration_seconds > kMaxCallSeconds)
      return validation("duration_seconds", "duration_seconds must be between 0 and 604800");
    if (c.status != "completed" && *c.duration_seconds != 0)
      return validation("duration_seconds", "a call that did not connect has no duration");
    if (c.ended_at && *c.duration_seconds > (*c.ended_at - c.started_at) / 1000 + 1)
      return validation("duration_seconds", "duration_seconds is longer than ended_at - started_at");
  }
  if (c.ended_at && c.status == "completed" && (*c.ended_at - c.started_at) / 1000 > kMaxCallSeconds)
    return validation("ended_at", "a call lasts at most 604800 seconds");
  return {};
}

std::string encode_history_cursor(const store::HistoryCursor& cursor) {
  return crypto::base64url_encode(fmt::format("{}:{}", cursor.at, cursor.id));
}

Result<store::HistoryCursor> decode_history_cursor(std::string_view text) {
  auto bad = [] { return validation("cursor", "cursor is not one this API gave"); };
  if (text.empty() || text.size() > 256) return bad();
  auto raw = crypto::base64url_decode(text);
  if (!raw) return bad();
  std::size_t colon = raw->find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= raw->size()) return bad();
  store::HistoryCursor c;
  auto [ptr, ec] = std::from_chars(raw->data(), raw->data() + colon, c.at);
  if (ec != std::errc() || ptr != raw->data() + colon || c.at < 0) return bad();
  c.id = raw->substr(colon + 1);
  return c;
}

asio::awaitable<Result<store::PreferencesRecord>> AssistantService::acting_for(const auth::Principal& who,
                                                                               const std::string& user_id) {
  co_return co_await pool_.run([&]() -> Result<store::PreferencesRecord> {
    if (auto s = auth::authorize_owned(who, auth::Access::kWrite, user_id); !s)
      return std::unexpected(s.error());
    return preferences_.get(who, user_id);
  });
}

asio::awaitable<Result<TurnAudio>> AssistantService::speak(const auth::Principal& who,
                                                           const std::string& answered_model,
                                                           const std::string& text, const std::string& voice,
                                                           const std::string& request_id) {
  const auto t0 = Steady::now();
  auto route = co_await chat_.route(who, options_.speech_model, request_id);
  if (!route && route.error().kind == ErrorKind::kValidation && route.error().param == "model") {
    // No provider lists the speech model: ask the one that answered.
    route = co_await chat_.route(who, answered_model, request_id);
    if (route) route->model = options_.speech_model;
  }
  if (!route) co_return std::unexpected(route.error());
  const auto prompt = static_cast<std::int64_t>((text.size() + 3) / 4);
  std::optional<std::int64_t> no_answer_tokens = 0;
  Status admitted = co_await chat_.admit(who, *route, prompt, no_answer_tokens);
  if (!admitted) co_return std::unexpected(admitted.error());
  std::string body = bj::serialize(
      bj::object{{"model", route->model}, {"input", text}, {"voice", voice}, {"response_format", "mp3"}});
  auto res = co_await route->entry->provider->post_raw(route->call, "/audio/speech", std::move(body),
                                                       "application/json");
  const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - t0).count();
  if (!res) {
    chat_.account(who, *route, "audio.speech", res.error().status(), false, {}, latency);
    co_return std::unexpected(res.error());
  }
  if (!res->ok()) {
    chat_.account(who, *route, "audio.speech", static_cast<int>(res->status), false, {}, latency);
    co_return fail(ErrorKind::kOpenAiApiError,
                   fmt::format("The provider refused to make the speech (HTTP {})", res->status));
  }
  Usage usage = res->usage.value_or(Usage{prompt, 0, prompt});
  chat_.account(who, *route, "audio.speech", 200, false, usage, latency);
  TurnAudio audio;
  audio.content_type =
      res->content_type.empty() ? std::string("application/octet-stream") : res->content_type;
  audio.format = audio_format(audio.content_type);
  audio.data = std::move(res->body);
  co_return audio;
}

asio::awaitable<Result<TurnResult>> AssistantService::turn(const auth::Principal& who, TurnInput input,
                                                           std::string request_id,
                                                           asio::any_io_executor executor) {
  const auto t0 = Steady::now();
  if (const std::size_t chars = utf8_chars(input.text); chars < 1 || chars > options_.max_text_chars) {
    co_return validation("text", fmt::format("text must be 1 to {} characters", options_.max_text_chars));
  }
  auto prefs = co_await acting_for(who, input.user_id);
  if (!prefs) co_return std::unexpected(prefs.error());

  TurnResult out;
  store::TurnRecord& turn = out.turn;
  turn.id = "turn_" + crypto::new_public_id();
  turn.user_id = input.user_id;
  turn.input_text = input.text;
  turn.tts_voice = prefs->tts_voice;
  turn.language = prefs->language;
  turn.speech = input.speech;
  turn.request_id = request_id;
  double model_ms = 0;

  if (input.conversation_id) {
    const std::string& user_id = input.user_id;
    const std::string& conversation_id = *input.conversation_id;
    auto conversation = co_await pool_.run(
        [&] { return conversations_.get(who, user_id, conversation_id, auth::Access::kWrite); });
    if (!conversation) co_return std::unexpected(conversation.error());
    AnswerRequest request;
    request.who = who;
    request.conversation = std::move(*conversation);
    request.content = input.text;
    request.model = input.model;
    request.temperature = input.temperature;
    request.max_tokens = input.max_tokens;
    request.request_id = request_id;
    const auto m0 = Steady::now();
    auto started = co_await answers_.start(std::move(request), executor);
    if (!started) co_return std::unexpected(started.error());
    out.limits = started->limits;
    std::optional<AnswerEnd> end;
    for (;;) {
      Generation::Slice slice = started->generation->after(started->generation->pieces(), 0);
      if (slice.end) {
        end = std::move(slice.end);
        break;
      }
      co_await started->generation->wait(started->generation->pieces(), std::chrono::milliseconds(15'000));
    }
    model_ms = ms_between(m0, Steady::now());
    if (end->message.status != "complete") {
      co_return std::unexpected(
          end->error.value_or(Error(ErrorKind::kOpenAiApiError, "The answer could not be completed")));
    }
    turn.conversation_id = conversation_id;
    turn.message_id = end->message.id;
    turn.gpt_response = end->message.content;
    turn.input_tokens = end->message.prompt_tokens;
    turn.output_tokens = end->message.completion_tokens;
    turn.model_used = end->message.model.value_or(std::string());
  } else {
    ChatInput chat;
    chat.messages = {ChatMessage{"system", turn_prompt(*prefs)}, ChatMessage{"user", input.text}};
    chat.model = input.model ? input.model : prefs->default_model;
    chat.temperature = input.temperature;
    chat.max_tokens = input.max_tokens;
    chat.endpoint = "assistant.turn";
    const auto m0 = Steady::now();
    auto answered = co_await chat_.chat(who, chat, request_id);
    model_ms = ms_between(m0, Steady::now());
    if (!answered) co_return std::unexpected(answered.error());
    out.limits = answered->limits;
    turn.gpt_response = std::move(answered->content);
    turn.input_tokens = answered->usage.prompt_tokens;
    turn.output_tokens = answered->usage.completion_tokens;
    turn.model_used = std::move(answered->model);
  }

  double speech_ms = 0;
  if (input.speech) {
    const auto s0 = Steady::now();
    const std::string spoken = turn.gpt_response.empty() ? std::string(" ") : turn.gpt_response;
    auto audio = co_await speak(who, turn.model_used, spoken, turn.tts_voice, request_id);
    speech_ms = ms_between(s0, Steady::now());
    if (!audio) co_return std::unexpected(audio.error());
    out.audio = std::move(*audio);
  }

  turn.created_at = clock_.now_ms();
  turn.processing_time_ms = ms_between(t0, Steady::now());
  const store::TurnRecord& stored = turn;
  auto saved = co_await pool_.run([&] {
    store::AssistantStore store(db_);
    return store.add_turn(stored);
  });
  if (!saved) co_return std::unexpected(saved.error());
  const double total_ms = ms_between(t0, Steady::now());
  if (total_ms > static_cast<double>(options_.slow_turn.count())) {
    spdlog::warn(
        "slow assistant turn: request_id={} model={} total_ms={:.1f} provider_ms={:.1f} speech_ms={:.1f} "
        "parley_ms={:.1f}",
        request_id, turn.model_used, total_ms, model_ms, speech_ms, total_ms - model_ms - speech_ms);
  }
  co_return out;
}

asio::awaitable<Result<SmsResult>> AssistantService::sms_decision(const auth::Principal& who, SmsInput input,
                                                                  std::string request_id) {
  if (const std::size_t chars = utf8_chars(input.text); chars < 1 || chars > options_.max_text_chars) {
    co_return validation("text", fmt::format("text must be 1 to {} characters", options_.max_text_chars));
  }
  auto prefs = co_await acting_for(who, input.user_id);
  if (!prefs) co_return std::unexpected(prefs.error());
  ChatInput chat;
  chat.messages = {ChatMessage{"system", sms_prompt(*prefs)}, ChatMessage{"user", input.text}};
  chat.model = input.model ? input.model : prefs->default_model;
  chat.response_format = sms_response_format();
  chat.endpoint = "assistant.sms";
  SmsResult out;
  out.auto_reply_enabled = prefs->auto_reply_enabled;
  std::optional<SmsAnswer> decided;
  Error refused(ErrorKind::kModelOutputInvalid, "The model did not give a valid SMS decision");
  for (int attempt = 0; attempt < 2 && !decided; ++attempt) {
    auto answered = co_await chat_.chat(who, chat, request_id);
    if (!answered) co_return std::unexpected(answered.error());
    out.limits = answered->limits;
    out.sms.model_used = answered->model;
    out.sms.input_tokens += answered->usage.prompt_tokens;
    out.sms.output_tokens += answered->usage.completion_tokens;
    auto parsed = parse_sms_answer(answered->content);
    if (parsed) {
      decided = std::move(*parsed);
    } else {
      spdlog::warn("sms decision: the model's answer was refused ({}): attempt={} model={} request_id={}",
                   parsed.error().message, attempt + 1, answered->model, request_id);
      refused = parsed.error();
    }
  }
  if (!decided) {
    refused.rate =
        out.limits.requests || out.limits.tokens ? std::make_shared<RateLimitInfo>(out.limits) : nullptr;
    co_return std::unexpected(refused);
  }
  store::SmsRecord& sms = out.sms;
  sms.id = "sms_" + crypto::new_public_id();
  sms.user_id = input.user_id;
  sms.incoming_text = input.text;
  sms.decision = decided->decision;
  sms.reply_text = decided->reply_text;
  sms.send_reply = prefs->auto_reply_enabled && sms.decision == "yes";
  sms.request_id = request_id;
  sms.created_at = clock_.now_ms();
  const store::SmsRecord& stored = sms;
  auto saved = co_await pool_.run([&] {
    store::AssistantStore store(db_);
    return store.add_sms(stored);
  });
  if (!saved) co_return std::unexpected(saved.error());
  co_return out;
}

Result<store::CallRecord> AssistantService::add_call(const auth::Principal& who, const CallInput& input) {
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, input.user_id); !s)
    return std::unexpected(s.error());
  if (auto s = check_call(input, clock_.now_ms()); !s) return std::unexpected(s.error());
  if (input.conversation_id) {
    auto conversation = conversations_.get(who, input.user_id, *input.conversation_id, auth::Access::kRead);
    if (!conversation) return std::unexpected(conversation.error());
  }
  store::CallRecord call;
  call.id = "call_" + crypto::new_public_id();
  call.user_id = input.user_id;
  call.direction = input.direction;
  call.from_number = input.from_number;
  call.to_number = input.to_number;
  call.status = input.status;
  call.started_at = input.started_at;
  call.ended_at = input.ended_at;
  if (input.duration_seconds) {
    call.duration_seconds = *input.duration_seconds;
  } else if (input.ended_at && input.status == "completed") {
    call.duration_seconds = (*input.ended_at - input.started_at) / 1000;
  }
  call.conversation_id = input.conversation_id;
  call.created_at = clock_.now_ms();
  store::AssistantStore store(db_);
  if (auto s = store.add_call(call); !s) {
    if (s.error().kind == ErrorKind::kNotFound) return fail(ErrorKind::kNotFound, "User not found");
    return std::unexpected(s.error());
  }
  return call;
}

Result<store::CallRecord> AssistantService::get_call(const auth::Principal& who, std::string_view call_id) {
  auto not_found = [] { return fail(ErrorKind::kNotFound, "Call not found"); };
  store::AssistantStore store(db_);
  auto found = store.get_call(call_id);
  if (!found) return std::unexpected(found.error());
  if (!*found) return not_found();
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, (*found)->user_id); !s) return not_found();
  return std::move(**found);
}

Result<HistoryPage> AssistantService::history(const auth::Principal& who, const HistoryRequest& request) {
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, request.user_id); !s)
    return std::unexpected(s.error());
  store::UserStore users(db_);
  auto user = users.get_by_id(request.user_id);
  if (!user) return std::unexpected(user.error());
  if (!*user) return fail(ErrorKind::kNotFound, "User not found");
  store::HistoryQuery q;
  q.user_id = request.user_id;
  q.kinds = request.kinds;
  q.since = request.since;
  q.until = request.until;
  if (request.cursor) {
    auto c = decode_history_cursor(*request.cursor);
    if (!c) return std::unexpected(c.error());
    q.after = std::move(*c);
  }
  q.limit = request.limit + 1;
  store::AssistantStore store(db_);
  auto items = store.history(q);
  if (!items) return std::unexpected(items.error());
  HistoryPage page;
  page.items = std::move(*items);
  if (static_cast<std::int64_t>(page.items.size()) > request.limit) {
    page.items.resize(static_cast<std::size_t>(request.limit));
    const auto& last = page.items.back();
    page.next_cursor = encode_history_cursor({last.at, last.id});
  }
  return page;
}

}  // namespace parley::services
