// Per-user preferences (seed 001) with defaults for users who never saved any: language "en",
// tts_voice "alloy", auto_reply_enabled false, conversation_timeout 300 s, notifications true,
// default_model and system_prompt unset. BLOCKING; thread-safe.
#pragma once

#include <optional>
#include <string>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "store/database.hpp"
#include "store/preference_store.hpp"

namespace parley::services {

struct PreferencesPatch {
  std::optional<std::string> language;
  std::optional<std::string> tts_voice;
  std::optional<bool> auto_reply_enabled;
  std::optional<std::int64_t> conversation_timeout;
  std::optional<bool> notifications;
  std::optional<std::optional<std::string>> default_model;  // inner nullopt: unset
  std::optional<std::optional<std::string>> system_prompt;
};

// The OpenAI text-to-speech voices.
bool is_tts_voice(std::string_view voice);
Status check_preferences_patch(const PreferencesPatch& patch);

class PreferenceService {
 public:
  PreferenceService(store::Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  Result<store::PreferencesRecord> get(const auth::Principal& who, std::string_view user_id);
  // replace = true (PUT): fields not given return to their defaults; false (PATCH): they stay.
  Result<store::PreferencesRecord> save(const auth::Principal& who, std::string_view user_id,
                                        const PreferencesPatch& patch, bool replace);

  static store::PreferencesRecord defaults(std::string_view user_id);

 private:
  Result<store::PreferencesRecord> load(std::string_view user_id);
  store::Database& db_;
  const Clock& clock_;
};

}  // namespace parley::services
