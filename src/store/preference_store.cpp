#include "store/preference_store.hpp"

#include <fmt/format.h>

#include "store/sql_util.hpp"

namespace parley::store {

using detail::forward_error;

namespace {

constexpr std::string_view kColumns =
    "user_id, language, tts_voice, auto_reply_enabled, conversation_timeout, notifications, default_model, "
    "system_prompt, updated_at";

PreferencesRecord from_row(const Row& row) {
  PreferencesRecord p;
  p.user_id = row.get_string(0);
  p.language = row.get_string(1);
  p.tts_voice = row.get_string(2);
  p.auto_reply_enabled = row.get_bool(3);
  p.conversation_timeout = row.get_int(4);
  p.notifications = row.get_bool(5);
  p.default_model = row.get_optional_string(6);
  p.system_prompt = row.get_optional_string(7);
  p.updated_at = row.get_int(8);
  return p;
}

}  // namespace

Result<std::optional<PreferencesRecord>> PreferenceStore::get(std::string_view user_id) {
  Result<QueryResult> r =
      db_.query(fmt::format("SELECT {} FROM user_preferences WHERE user_id = $1", kColumns), {user_id});
  if (!r) return forward_error(r);
  if (r->rows.empty()) return std::optional<PreferencesRecord>();
  return std::optional<PreferencesRecord>(from_row(r->rows.front()));
}

Result<PreferencesRecord> PreferenceStore::upsert(const PreferencesRecord& prefs) {
  Result<QueryResult> r = db_.query(
      fmt::format(
          "INSERT INTO user_preferences ({0}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
          "ON CONFLICT (user_id) DO UPDATE SET language = excluded.language, "
          "tts_voice = excluded.tts_voice, auto_reply_enabled = excluded.auto_reply_enabled, "
          "conversation_timeout = excluded.conversation_timeout, notifications = excluded.notifications, "
          "default_model = excluded.default_model, system_prompt = excluded.system_prompt, "
          "updated_at = excluded.updated_at "
          "RETURNING {0}",
          kColumns),
      {prefs.user_id, prefs.language, prefs.tts_voice, prefs.auto_reply_enabled, prefs.conversation_timeout,
       prefs.notifications, prefs.default_model, prefs.system_prompt, prefs.updated_at});
  if (!r) return forward_error(r);
  if (r->rows.empty()) return fail(ErrorKind::kDatabase, "preferences upsert returned no row");
  return from_row(r->rows.front());
}

}  // namespace parley::store
