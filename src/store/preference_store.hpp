// Per-user preferences (issue 3, seed 001): one row per user, deleted with the user. The store
// keeps whatever it is given; defaults for a user without a row and validation (voices, timeout
// range) are the service's rules.
//
// BLOCKING (see database.hpp); holds a reference to its Executor. Errors: kNotFound from upsert
// when no user has this id; kDatabase/kUnavailable otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "store/database.hpp"

namespace parley::store {

struct PreferencesRecord {
  std::string user_id;
  std::string language;
  std::string tts_voice;
  bool auto_reply_enabled = false;
  std::int64_t conversation_timeout = 0;  // seconds
  bool notifications = true;
  std::optional<std::string> default_model;
  std::optional<std::string> system_prompt;
  std::int64_t updated_at = 0;  // unix ms
};

class PreferenceStore {
 public:
  explicit PreferenceStore(Executor& db) : db_(db) {}

  // std::nullopt when the user has never saved preferences.
  Result<std::optional<PreferencesRecord>> get(std::string_view user_id);

  // Inserts or replaces the user's whole row and returns it as stored.
  Result<PreferencesRecord> upsert(const PreferencesRecord& prefs);

 private:
  Executor& db_;
};

}  // namespace parley::store
