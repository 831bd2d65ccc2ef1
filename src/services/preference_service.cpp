#include "services/preference_service.hpp"

#include <algorithm>
#include <array>

#include "auth/policy.hpp"
#include "store/user_store.hpp"

namespace parley::services {

bool is_tts_voice(std::string_view voice) {
  static constexpr std::array<std::string_view, 13> kVoices{"alloy", "ash",     "ballad", "cedar", "coral",
                                                            "echo",  "fable",   "marin",  "nova",  "onyx",
                                                            "sage",  "shimmer", "verse"};
  return std::find(kVoices.begin(), kVoices.end(), voice) != kVoices.end();
}

Status check_preferences_patch(const PreferencesPatch& p) {
  if (p.language) {
    const std::string& l = *p.language;
    bool ok = l.size() >= 2 && l.size() <= 35 && std::all_of(l.begin(), l.end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
              });
    if (!ok) return validation("language", "language must be a language tag such as \"en\" or \"pt-BR\"");
  }
  if (p.tts_voice && !is_tts_voice(*p.tts_voice)) {
    return validation(
        "tts_voice",
        "tts_voice must be one of alloy, ash, ballad, cedar, coral, echo, fable, marin, nova, onyx, "
        "sage, shimmer, verse");
  }
  if (p.conversation_timeout && (*p.conversation_timeout < 30 || *p.conversation_timeout > 86400)) {
    return validation("conversation_timeout", "conversation_timeout must be between 30 and 86400 seconds");
  }
  return {};
}

store::PreferencesRecord PreferenceService::defaults(std::string_view user_id) {
  store::PreferencesRecord r;
  r.user_id = std::string(user_id);
  r.language = "en";
  r.tts_voice = "alloy";
  r.auto_reply_enabled = false;
  r.conversation_timeout = 300;
  r.notifications = true;
  return r;
}

Result<store::PreferencesRecord> PreferenceService::load(std::string_view user_id) {
  store::PreferenceStore prefs(db_);
  auto found = prefs.get(user_id);
  if (!found) return std::unexpected(found.error());
  if (*found) return std::move(**found);
  store::UserStore users(db_);
  auto user = users.get_by_id(user_id);
  if (!user) return std::unexpected(user.error());
  if (!*user) return fail(ErrorKind::kNotFound, "User not found");
  return defaults(user_id);
}

Result<store::PreferencesRecord> PreferenceService::get(const auth::Principal& who,
                                                        std::string_view user_id) {
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, user_id); !s)
    return std::unexpected(s.error());
  return load(user_id);
}

Result<store::PreferencesRecord> PreferenceService::save(const auth::Principal& who, std::string_view user_id,
                                                         const PreferencesPatch& p, bool replace) {
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, user_id); !s)
    return std::unexpected(s.error());
  if (auto s = check_preferences_patch(p); !s) return std::unexpected(s.error());
  store::PreferencesRecord r = defaults(user_id);
  if (!replace) {
    auto current = load(user_id);
    if (!current) return std::unexpected(current.error());
    r = *current;
  }
  if (p.language) r.language = *p.language;
  if (p.tts_voice) r.tts_voice = *p.tts_voice;
  if (p.auto_reply_enabled) r.auto_reply_enabled = *p.auto_reply_enabled;
  if (p.conversation_timeout) r.conversation_timeout = *p.conversation_timeout;
  if (p.notifications) r.notifications = *p.notifications;
  if (p.default_model) r.default_model = *p.default_model;
  if (p.system_prompt) r.system_prompt = *p.system_prompt;
  r.updated_at = clock_.now_ms();
  store::PreferenceStore prefs(db_);
  auto saved = prefs.upsert(r);
  if (!saved && saved.error().kind == ErrorKind::kNotFound)
    return fail(ErrorKind::kNotFound, "User not found");
  return saved;
}

}  // namespace parley::services
