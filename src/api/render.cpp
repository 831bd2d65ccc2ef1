#include "api/render.hpp"

#include <boost/json/parse.hpp>

#include "api/deps.hpp"

namespace parley::api {

namespace bj = boost::json;

bj::value opt(const std::optional<std::string>& v) {
  return v ? bj::value(*v) : bj::value(nullptr);
}
bj::value opt_time(const std::optional<std::int64_t>& v) {
  return v ? bj::value(iso8601(*v)) : bj::value(nullptr);
}

namespace {
bj::value opt_int(const std::optional<std::int64_t>& v) {
  return v ? bj::value(*v) : bj::value(nullptr);
}
}  // namespace

bj::value opt_usd(const std::optional<std::int64_t>& nanos) {
  return nanos ? bj::value(usd(*nanos)) : bj::value(nullptr);
}

double usd(std::int64_t nanos) {
  return static_cast<double>(nanos) / 1e9;
}

bj::object render_user(const store::UserRecord& u) {
  return bj::object{{"id", u.id},
                    {"username", u.username},
                    {"email", u.email},
                    {"phone_number", opt(u.phone_number)},
                    {"role", u.role},
                    {"is_active", u.is_active},
                    {"created_at", iso8601(u.created_at)},
                    {"updated_at", iso8601(u.updated_at)}};
}

bj::object render_api_key(const store::ApiKeyRecord& k, std::int64_t now_ms) {
  bool expired = k.expires_at && *k.expires_at <= now_ms;
  return bj::object{{"id", k.id},
                    {"user_id", k.user_id},
                    {"name", k.name},
                    {"key_prefix", k.key_prefix},
                    {"rate_limit_per_minute",
                     k.rate_limit_per_minute ? bj::value(*k.rate_limit_per_minute) : bj::value(nullptr)},
                    {"is_active", k.is_active && !k.revoked_at},
                    {"status", k.revoked_at  ? "revoked"
                               : expired     ? "expired"
                               : k.is_active ? "active"
                                             : "inactive"},
                    {"expires_at", opt_time(k.expires_at)},
                    {"last_used_at", opt_time(k.last_used_at)},
                    {"created_at", iso8601(k.created_at)},
                    {"revoked_at", opt_time(k.revoked_at)},
                    {"tokens_per_minute", opt_int(k.tokens_per_minute)},
                    {"token_budget", opt_int(k.token_budget)},
                    {"spend_budget_usd", opt_usd(k.spend_budget_nanos)},
                    {"budget_period", k.budget_period}};
}

bj::object render_limits(const LimitSettings& l) {
  return bj::object{{"rate_limit_per_minute", opt_int(l.rate_limit_per_minute)},
                    {"tokens_per_minute", opt_int(l.tokens_per_minute)},
                    {"token_budget", opt_int(l.token_budget)},
                    {"spend_budget_usd", opt_usd(l.spend_budget_nanos)},
                    {"budget_period", budget_period_name(l.budget_period)}};
}

bj::object render_preferences(const store::PreferencesRecord& p) {
  return bj::object{{"user_id", p.user_id},
                    {"language", p.language},
                    {"tts_voice", p.tts_voice},
                    {"auto_reply_enabled", p.auto_reply_enabled},
                    {"conversation_timeout", p.conversation_timeout},
                    {"notifications", p.notifications},
                    {"default_model", opt(p.default_model)},
                    {"system_prompt", opt(p.system_prompt)},
                    {"updated_at", p.updated_at > 0 ? bj::value(iso8601(p.updated_at)) : bj::value(nullptr)}};
}

bj::object render_audit_event(const store::AuditEvent& e) {
  bj::value detail = nullptr;
  if (e.detail) {
    boost::system::error_code ec;
    detail = bj::parse(*e.detail, ec);
    if (ec) detail = *e.detail;
  }
  return bj::object{{"id", e.id},
                    {"actor_user_id", opt(e.actor_user_id)},
                    {"action", e.action},
                    {"target_type", opt(e.target_type)},
                    {"target_id", opt(e.target_id)},
                    {"ip", opt(e.ip)},
                    {"request_id", opt(e.request_id)},
                    {"detail", detail},
                    {"created_at", iso8601(e.created_at)}};
}

bj::object render_conversation(const store::ConversationRecord& c) {
  boost::system::error_code ec;
  bj::value metadata = bj::parse(c.metadata, ec);
  if (ec || !metadata.is_object()) metadata = bj::object{};
  return bj::object{{"id", c.id},
                    {"user_id", c.user_id},
                    {"title", c.title},
                    {"system_message", opt(c.system_message)},
                    {"model", opt(c.model)},
                    {"metadata", std::move(metadata)},
                    {"status", c.status},
                    {"message_count", c.message_count},
                    {"last_message_at", opt_time(c.last_message_at)},
                    {"created_at", iso8601(c.created_at)},
                    {"updated_at", iso8601(c.updated_at)},
                    {"ended_at", opt_time(c.ended_at)}};
}

bj::object render_message(const store::MessageRecord& m) {
  const bool ai = m.role == "assistant";
  bj::object usage;
  if (ai) {
    usage = bj::object{{"prompt_tokens", m.prompt_tokens},
                       {"completion_tokens", m.completion_tokens},
                       {"total_tokens", m.prompt_tokens + m.completion_tokens}};
  }
  return bj::object{{"id", m.id},
                    {"conversation_id", m.conversation_id},
                    {"seq", m.seq},
                    {"role", m.role},
                    {"sender_id", opt(m.sender_id)},
                    {"content", m.content},
                    {"message_type", "text"},
                    {"is_ai_message", ai},
                    {"ai_model", ai ? opt(m.model) : bj::value(nullptr)},
                    {"status", m.status},
                    {"parent_id", opt(m.parent_id)},
                    {"active", m.active},
                    {"usage", ai ? bj::value(std::move(usage)) : bj::value(nullptr)},
                    {"latency_ms", m.latency_ms ? bj::value(*m.latency_ms) : bj::value(nullptr)},
                    {"error_code", opt(m.error_code)},
                    {"timestamp", iso8601(m.created_at)},
                    {"created_at", iso8601(m.created_at)},
                    {"updated_at", iso8601(m.updated_at)}};
}

bj::object render_conversation_stats(const store::ConversationStats& s) {
  return bj::object{
      {"messages",
       bj::object{
           {"user", s.user_messages}, {"assistant", s.assistant_messages}, {"system", s.system_messages}}},
      {"total_messages", s.user_messages + s.assistant_messages + s.system_messages},
      {"failed_answers", s.failed_messages},
      {"tokens", bj::object{{"prompt", s.prompt_tokens},
                            {"completion", s.completion_tokens},
                            {"total", s.prompt_tokens + s.completion_tokens}}},
      {"first_message_at", opt_time(s.first_message_at)},
      {"last_message_at", opt_time(s.last_message_at)},
      {"average_latency_ms", s.average_latency_ms ? bj::value(*s.average_latency_ms) : bj::value(nullptr)}};
}

// The terminal event, the same whether the answer is followed live or replayed from the store: it
// is made from the stored message alone.
bj::object render_answer_end(const store::MessageRecord& m) {
  bj::object usage{{"prompt_tokens", m.prompt_tokens},
                   {"completion_tokens", m.completion_tokens},
                   {"total_tokens", m.prompt_tokens + m.completion_tokens}};
  if (m.status == "complete" || m.status == "cancelled") {
    return bj::object{{"done", true},
                      {"status", m.status},
                      {"message_id", m.id},
                      {"full_text", m.content},
                      {"model", m.model ? bj::value(*m.model) : bj::value(nullptr)},
                      {"usage", std::move(usage)},
                      {"latency_ms", m.latency_ms ? bj::value(*m.latency_ms) : bj::value(nullptr)}};
  }
  const std::string code = m.error_code.value_or("OPENAI_API_ERROR");
  std::string message = code == "INTERRUPTED"
                            ? "The answer was interrupted: parley stopped while generating it"
                            : fmt::format("The answer could not be completed ({})", code);
  std::string type = "server_error";
  if (auto kind = error_kind_of_code(code)) type = std::string(error_info(*kind).type);
  return bj::object{{"error", bj::object{{"code", code}, {"message", message}, {"type", type}}},
                    {"status", m.status},
                    {"message_id", m.id},
                    {"partial_text", m.content}};
}

}  // namespace parley::api
