// JSON renderings of records shared by several handlers.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "core/limits.hpp"
#include "store/api_key_store.hpp"
#include "store/audit_store.hpp"
#include "store/conversation_store.hpp"
#include "store/page.hpp"
#include "store/preference_store.hpp"
#include "store/user_store.hpp"

namespace parley::api {

boost::json::object render_user(const store::UserRecord& user);
boost::json::object render_api_key(const store::ApiKeyRecord& key, std::int64_t now_ms);
// A key's or a user's limits (docs/LIMITS.md): rate_limit_per_minute, tokens_per_minute,
// token_budget, spend_budget_usd, budget_period.
boost::json::object render_limits(const LimitSettings& limits);
// null, or the string / the ISO 8601 time.
boost::json::value opt(const std::optional<std::string>& v);
boost::json::value opt_time(const std::optional<std::int64_t>& unix_ms);
// Nano-dollars as USD.
double usd(std::int64_t nanos);
boost::json::value opt_usd(const std::optional<std::int64_t>& nanos);
boost::json::object render_preferences(const store::PreferencesRecord& prefs);
boost::json::object render_audit_event(const store::AuditEvent& event);
boost::json::object render_conversation(const store::ConversationRecord& conversation);
// Seed 002's message fields (sender_id, content, timestamp, message_type, is_ai_message, ai_model,
// status) beside parley's own (role, usage, ...).
boost::json::object render_message(const store::MessageRecord& message);
boost::json::object render_conversation_stats(const store::ConversationStats& stats);
// An answer's terminal event (SSE and WebSocket), made from the stored message alone so that it is
// the same followed live or replayed: {"done":true,"status","message_id","full_text","model",
// "usage","latency_ms"} when complete or cancelled, {"error":{…},"status","message_id",
// "partial_text"} when failed.
boost::json::object render_answer_end(const store::MessageRecord& message);

template <class T, class F>
boost::json::object render_page(const store::Page<T>& page, std::int64_t limit, std::int64_t offset,
                                F&& render_one) {
  boost::json::array items;
  for (const auto& item : page.items) items.push_back(render_one(item));
  return boost::json::object{
      {"items", std::move(items)}, {"total", page.total}, {"limit", limit}, {"offset", offset}};
}

}  // namespace parley::api
