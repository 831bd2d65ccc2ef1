#include "services/vault_service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <utility>

#include "auth/policy.hpp"
#include "services/validate.hpp"
#include "store/user_store.hpp"

namespace parley::services {
namespace {

constexpr std::size_t kMaxKeyLength = 512;
constexpr std::size_t kMinKeyLength = 8;
constexpr std::size_t kMaxProviderLength = 64;
// Longer lines cannot be a username and a token of a key of at most kMaxKeyLength characters.
constexpr std::size_t kMaxImportLineLength = std::size_t{16} * 1024;
// A row that changes under rotate_all() this many times in a row is reported as failed.
constexpr int kMaxRotateAttempts = 3;

std::string cache_key(std::string_view user_id, std::string_view provider) {
  std::string key;
  key.reserve(user_id.size() + 1 + provider.size());
  key.append(user_id);
  key.push_back('\0');
  key.append(provider);
  return key;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Provider names are [a-z0-9_-] (checked before use), so they need no JSON escaping.
std::string provider_detail(std::string_view provider, std::string_view source = {}) {
  if (source.empty()) return fmt::format(R"({{"provider":"{}"}})", provider);
  return fmt::format(R"({{"provider":"{}","source":"{}"}})", provider, source);
}

MaskedProviderKey masked_of(const store::ProviderKeyRecord& r) {
  return MaskedProviderKey{r.provider, r.key_hint, r.created_at, r.updated_at};
}

Error decryption_failed(std::string_view provider) {
  return Error(ErrorKind::kApiKeyDecryptionFailed,
               fmt::format("Your stored API key for provider \"{}\" cannot be decrypted. Please set your API "
                           "key again.",
                           provider));
}

// Does `token` verify and decrypt under `key` alone? (The plaintext is wiped inside.)
bool opens_with(const crypto::FernetKey& key, std::string_view token) {
  return crypto::fernet_extract_timestamp(key, token).has_value();
}

}  // namespace

Result<crypto::MultiFernet> parse_encryption_keys(std::string_view comma_separated) {
  std::vector<crypto::FernetKey> keys;
  std::size_t position = 0;
  while (!comma_separated.empty()) {
    ++position;
    const std::size_t comma = comma_separated.find(',');
    const std::string_view key = trim(comma_separated.substr(0, comma));
    if (!key.empty()) {
      auto parsed = crypto::FernetKey::parse(key);
      if (!parsed) {
        return validation("secrets.encryption_keys",
                          fmt::format("entry {} is not a Fernet key (32 bytes in url-safe base64; "
                                      "`parley keys generate` makes one)",
                                      position));
      }
      keys.push_back(std::move(*parsed));
    }
    if (comma == std::string_view::npos) break;
    comma_separated.remove_prefix(comma + 1);
  }
  if (keys.empty()) {
    return validation("secrets.encryption_keys",
                      "at least one Fernet key is required (`parley keys generate` makes one)");
  }
  return crypto::MultiFernet::create(std::move(keys));
}

Status check_provider_name(std::string_view provider) {
  const bool ok = !provider.empty() && provider.size() <= kMaxProviderLength &&
                  std::all_of(provider.begin(), provider.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
                  });
  if (!ok) return validation("provider", "provider must be 1 to 64 characters of a-z, 0-9, '_' and '-'");
  return {};
}

Status check_provider_key(std::string_view key) {
  const bool ok = key.size() >= kMinKeyLength && key.size() <= kMaxKeyLength &&
                  std::all_of(key.begin(), key.end(), [](char c) { return c > ' ' && c <= '~'; });
  if (!ok) {
    return validation("api_key", "api_key must be 8 to 512 printable ASCII characters without spaces");
  }
  return {};
}

Result<std::vector<std::string>> parse_csv_line(std::string_view line) {
  std::vector<std::string> fields;
  std::size_t i = 0;
  for (;;) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string field;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        field.push_back(line[i++]);
      }
      if (!closed) return fail(ErrorKind::kBadRequest, "unterminated quoted field");
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i < line.size() && line[i] != ',') {
        return fail(ErrorKind::kBadRequest, "unexpected text after a closing quote");
      }
    } else {
      const std::size_t end = std::min(line.find(',', i), line.size());
      field = std::string(trim(line.substr(i, end - i)));
      i = end;
    }
    fields.push_back(std::move(field));
    if (i >= line.size()) break;
    ++i;  // the comma
  }
  return fields;
}

VaultService::VaultService(store::Database& db, const Clock& clock, AuditLog& audit, crypto::MultiFernet keys,
                           VaultOptions options)
    : db_(db), clock_(clock), audit_(audit), keys_(std::move(keys)), options_(options) {}

Status VaultService::check_set(const auth::Principal& who, std::string_view user_id,
                               std::string_view provider, const crypto::Secret& key) const {
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, user_id); !s) return s;
  if (auto s = check_provider_name(provider); !s) return s;
  return check_provider_key(key.reveal());
}

Result<MaskedProviderKey> VaultService::set(const auth::Principal& who, std::string_view user_id,
                                            std::string_view provider, const crypto::Secret& key,
                                            const RequestMeta& meta) {
  if (auto s = check_set(who, user_id, provider, key); !s) return std::unexpected(s.error());
  const std::int64_t now = clock_.now_ms();
  auto token = keys_.encrypt(key.reveal(), now / 1000);
  if (!token) return fail(ErrorKind::kInternal, "The API key could not be encrypted");
  store::ProviderKeyRecord record{std::string(user_id),
                                  std::string(provider),
                                  std::move(*token),
                                  crypto::mask_secret(key.reveal()),
                                  now,
                                  now};
  store::ProviderKeyStore store(db_);
  auto saved = store.upsert(record);
  if (!saved) return std::unexpected(saved.error());
  forget(user_id, provider);
  audit_.record(who.user_id, "provider_key.set", "user", std::string(user_id), meta,
                provider_detail(provider));
  return masked_of(*saved);
}

Result<MaskedProviderKey> VaultService::get_masked(const auth::Principal& who, std::string_view user_id,
                                                   std::string_view provider) {
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, user_id); !s)
    return std::unexpected(s.error());
  if (auto s = check_provider_name(provider); !s) return std::unexpected(s.error());
  store::ProviderKeyStore store(db_);
  auto found = store.get(user_id, provider);
  if (!found) return std::unexpected(found.error());
  if (!*found) {
    return fail(ErrorKind::kNotFound, fmt::format("No API key is configured for provider \"{}\"", provider));
  }
  return masked_of(**found);
}

Result<std::vector<MaskedProviderKey>> VaultService::list_masked(const auth::Principal& who,
                                                                 std::string_view user_id) {
  if (auto s = auth::authorize_owned(who, auth::Access::kRead, user_id); !s)
    return std::unexpected(s.error());
  store::ProviderKeyStore store(db_);
  auto found = store.list_for_user(user_id);
  if (!found) return std::unexpected(found.error());
  std::vector<MaskedProviderKey> out;
  out.reserve(found->size());
  for (const auto& k : *found) out.push_back(masked_of(k));
  std::ranges::sort(out, {}, &MaskedProviderKey::provider);
  return out;
}

Status VaultService::remove(const auth::Principal& who, std::string_view user_id, std::string_view provider,
                            const RequestMeta& meta) {
  if (auto s = auth::authorize_owned(who, auth::Access::kWrite, user_id); !s) return s;
  if (auto s = check_provider_name(provider); !s) return s;
  store::ProviderKeyStore store(db_);
  auto removed = store.remove(user_id, provider);
  if (!removed) return std::unexpected(removed.error());
  forget(user_id, provider);
  if (!*removed) {
    return fail(ErrorKind::kNotFound, fmt::format("No API key is configured for provider \"{}\"", provider));
  }
  audit_.record(who.user_id, "provider_key.deleted", "user", std::string(user_id), meta,
                provider_detail(provider));
  return {};
}

Result<std::optional<crypto::Secret>> VaultService::decrypted(std::string_view user_id,
                                                              std::string_view provider) {
  const std::string key = cache_key(user_id, provider);
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    evict_expired_locked(clock_.now_ms());
    if (auto it = index_.find(key); it != index_.end()) return it->second->secret;
    generation = generation_;
  }

  store::ProviderKeyStore store(db_);
  auto found = store.get(user_id, provider);
  if (!found) return std::unexpected(found.error());
  std::optional<crypto::Secret> secret;
  if (*found) {
    auto plaintext = keys_.decrypt((*found)->token, clock_.now_s());
    if (!plaintext) {
      spdlog::warn("stored API key of user {} for provider {} cannot be decrypted with the configured keys",
                   user_id, provider);
      return std::unexpected(decryption_failed(provider));
    }
    secret.emplace(std::move(*plaintext));
  }

  std::lock_guard lock(mutex_);
  // A set or remove on this instance while we read must not be undone by caching the old answer.
  if (generation != generation_ || options_.cache_max_entries == 0 || options_.cache_ttl.count() <= 0) {
    return secret;
  }
  if (auto it = index_.find(key); it != index_.end()) {
    entries_.erase(it->second);
    index_.erase(it);
  }
  while (entries_.size() >= options_.cache_max_entries) {
    index_.erase(entries_.front().key);
    entries_.pop_front();
  }
  entries_.push_back(CacheEntry{key, secret, clock_.now_ms()});
  index_.emplace(key, std::prev(entries_.end()));
  return secret;
}

void VaultService::evict_expired_locked(std::int64_t now_ms) {
  // Entries are in load order and share one TTL, so the expired ones are at the front. A clock
  // that stepped back makes the newest entries look expired too: dropping them is harmless.
  while (!entries_.empty()) {
    const std::int64_t age = now_ms - entries_.front().loaded_ms;
    if (age >= 0 && age < options_.cache_ttl.count()) break;
    index_.erase(entries_.front().key);
    entries_.pop_front();
  }
}

void VaultService::forget(std::string_view user_id, std::string_view provider) {
  std::lock_guard lock(mutex_);
  ++generation_;
  if (auto it = index_.find(cache_key(user_id, provider)); it != index_.end()) {
    entries_.erase(it->second);
    index_.erase(it);
  }
}

void VaultService::forget_user(std::string_view user_id) {
  const std::string prefix = cache_key(user_id, "");
  std::lock_guard lock(mutex_);
  ++generation_;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->key.starts_with(prefix)) {
      index_.erase(it->key);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t VaultService::cache_size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

// ---- rotation ----------------------------------------------------------------------------------

void VaultService::rotate_row(store::ProviderKeyStore& store, store::ProviderKeyRecord row,
                              RotationReport& report) {
  auto failed = [&](std::string reason) {
    ++report.failed;
    spdlog::warn("provider key of user {} for {} not rotated: {}", row.user_id, row.provider, reason);
    if (report.failures.size() < kMaxReportedIssues) {
      report.failures.push_back(RotationFailure{row.user_id, row.provider, std::move(reason)});
    }
  };
  for (int attempt = 0; attempt < kMaxRotateAttempts; ++attempt) {
    if (opens_with(keys_.primary(), row.token)) {
      ++report.already_current;
      return;
    }
    auto rotated = keys_.rotate(row.token);
    if (!rotated) {
      failed("no configured encryption key can decrypt it; the user must set the key again");
      return;
    }
    auto updated = store.update_token_if_unchanged(row.user_id, row.provider, row.token, *rotated);
    if (!updated) {
      failed(updated.error().message);
      return;
    }
    if (*updated) {
      ++report.rotated;
      return;
    }
    // Set or deleted since we read it: look again.
    auto fresh = store.get(row.user_id, row.provider);
    if (!fresh) {
      failed(fresh.error().message);
      return;
    }
    if (!*fresh) return;  // deleted: nothing left to rotate
    row = std::move(**fresh);
  }
  failed("the key kept changing while it was being rotated; run the rotation again");
}

Result<RotationReport> VaultService::rotate_all(const RequestMeta& meta) {
  RotationReport report;
  store::ProviderKeyStore store(db_);
  std::optional<store::ProviderKeyCursor> cursor;
  for (;;) {
    auto batch = store.list_batch(cursor, options_.rotate_batch_size);
    if (!batch) return std::unexpected(batch.error());
    if (batch->empty()) break;
    cursor = store::ProviderKeyCursor{batch->back().user_id, batch->back().provider};
    const bool last = static_cast<std::int64_t>(batch->size()) < options_.rotate_batch_size;
    for (store::ProviderKeyRecord& row : *batch) rotate_row(store, std::move(row), report);
    if (last) break;
  }
  audit_.record(std::nullopt, "provider_keys.rotated", "provider_keys", std::nullopt, meta,
                fmt::format(R"({{"rotated":{},"already_current":{},"failed":{}}})", report.rotated,
                            report.already_current, report.failed));
  return report;
}

// ---- import ------------------------------------------------------------------------------------

Result<ImportReport> VaultService::import_csv(const std::filesystem::path& file, const ImportOptions& options,
                                              const RequestMeta& meta) {
  if (auto s = check_provider_name(options.provider); !s) return std::unexpected(s.error());
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(ErrorKind::kNotFound, fmt::format("cannot open {}", file.string()));
  return import_csv(in, options, meta);
}

ImportReport VaultService::import_csv(std::istream& in, const ImportOptions& options,
                                      const RequestMeta& meta) {
  ImportReport report;
  if (!check_provider_name(options.provider)) {
    ++report.failed;
    report.issues.push_back(ImportIssue{0, ImportOutcome::kFailed, {}, "invalid provider name"});
    return report;
  }
  std::string line;
  std::size_t line_no = 0;
  bool header_allowed = true;
  while (std::getline(in, line)) {
    ++line_no;
    std::string_view text = line;
    if (line_no == 1 && text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    import_row(text, line_no, header_allowed, options, meta, report);
  }
  return report;
}

void VaultService::import_row(std::string_view line, std::size_t line_no, bool& header_allowed,
                              const ImportOptions& options, const RequestMeta& meta, ImportReport& report) {
  std::string username;
  auto note = [&](ImportOutcome outcome, std::string reason) {
    (outcome == ImportOutcome::kSkipped ? report.skipped : report.failed) += 1;
    // Only something shaped like a username is repeated, never a token pasted into the wrong column.
    if (!check_username(username)) username.clear();
    if (report.issues.size() < kMaxReportedIssues) {
      report.issues.push_back(ImportIssue{line_no, outcome, std::move(username), std::move(reason)});
    }
  };

  if (trim(line).empty()) return note(ImportOutcome::kSkipped, "blank line");
  const bool may_be_header = std::exchange(header_allowed, false);
  if (line.size() > kMaxImportLineLength) return note(ImportOutcome::kFailed, "malformed row: line too long");
  auto fields = parse_csv_line(line);
  if (!fields) return note(ImportOutcome::kFailed, "malformed row: " + fields.error().message);
  if (fields->size() != 2) {
    return note(ImportOutcome::kFailed,
                fmt::format("malformed row: expected 2 columns (username,fernet_token), "
                            "found {}",
                            fields->size()));
  }
  username = (*fields)[0];
  const std::string& token = (*fields)[1];
  // Every Fernet token starts with "gAAAAA" (version byte 0x80, then a timestamp far below 2^40).
  if (may_be_header && to_lower(username) == "username" && !token.starts_with("gAAAAA")) return;
  if (username.empty()) return note(ImportOutcome::kFailed, "malformed row: empty username");
  if (token.empty()) return note(ImportOutcome::kFailed, "malformed row: empty token");

  auto plaintext = keys_.decrypt(token, clock_.now_s());
  if (!plaintext) {
    return note(ImportOutcome::kFailed, "the token cannot be decrypted with the configured encryption keys");
  }
  const crypto::Secret key(std::move(*plaintext));
  if (!check_provider_key(key.reveal())) {
    return note(
        ImportOutcome::kFailed,
        "the decrypted key is not a valid API key (8 to 512 printable ASCII characters without spaces)");
  }
  // Bad rows fail before the user is looked up, so a broken export is never reported as "unknown user".
  store::UserStore users(db_);
  auto user = users.get_by_username(username);
  if (!user) return note(ImportOutcome::kFailed, "user lookup failed: " + user.error().message);
  if (!*user) return note(ImportOutcome::kSkipped, "unknown user");

  std::string stored_token = token;
  if (!opens_with(keys_.primary(), token)) {
    auto rotated = keys_.rotate(token);
    if (!rotated) return note(ImportOutcome::kFailed, "the token could not be re-encrypted");
    stored_token = std::move(*rotated);
  }

  const std::int64_t now = clock_.now_ms();
  store::ProviderKeyRecord record{
      (*user)->id, options.provider, std::move(stored_token), crypto::mask_secret(key.reveal()), now, now};
  store::ProviderKeyStore store(db_);
  if (options.overwrite) {
    auto saved = store.upsert(record);
    if (!saved) return note(ImportOutcome::kFailed, "could not store the key: " + saved.error().message);
  } else {
    auto inserted = store.insert_if_absent(record);
    if (!inserted)
      return note(ImportOutcome::kFailed, "could not store the key: " + inserted.error().message);
    if (!*inserted)
      return note(ImportOutcome::kSkipped,
                  "the user already has a key for this provider (--overwrite replaces it)");
  }
  forget(record.user_id, record.provider);
  audit_.record(std::nullopt, "provider_key.set", "user", record.user_id, meta,
                provider_detail(options.provider, "import"));
  ++report.imported;
}

}  // namespace parley::services
