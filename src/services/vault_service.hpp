// The per-user provider key vault (issue 4, seeds 000 and 002): each user's own key for a provider
// ("bring your own key"), stored as a Fernet token compatible with Python's cryptography.fernet.
//
// Keys. The deployment's encryption keys (config `secrets.encryption_keys`, PARLEY_ENCRYPTION_KEYS)
// are comma-separated Fernet keys: the first encrypts, every one decrypts (MultiFernet). To rotate,
// put a new key first, run `parley keys rotate` (rotate_all), then drop the old key.
//
// What leaves the vault. People see only the masked hint recorded when the key was set
// (crypto::mask_secret: at most the first 3 and last 4 characters). The plaintext leaves only
// through decrypted(), as a crypto::Secret, for the provider client. Nothing here logs, audits or
// puts into an error message a key, a fragment of one, or a token.
//
// Cache. decrypted() keeps answers (also "no key") in memory for `cache_ttl` (bounded to
// `cache_max_entries`, oldest dropped first), so the chat hot path does not read and decrypt a row
// per request. set() and remove() on this instance drop the entry at once; a change made by another
// instance applies here within cache_ttl. Decrypted keys are never written anywhere.
//
// Authorization (auth/policy.hpp): the owner and admins may set and remove; managers may read the
// masked form of anyone's key; anyone else gets 404. decrypted(), rotate_all() and import_csv() are
// for trusted callers (the provider layer, the command line) and take no Principal.
//
// BLOCKING (database, file I/O); thread-safe. Errors: kValidation (param "api_key" or "provider"),
// kNotFound (no such user, no key for the provider, or another user's key), kForbidden (a manager
// writing), kApiKeyDecryptionFailed (a stored token no configured key opens), kDatabase /
// kUnavailable from the store.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/principal.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "crypto/fernet.hpp"
#include "crypto/secret.hpp"
#include "services/audit_log.hpp"
#include "services/context.hpp"
#include "store/database.hpp"
#include "store/provider_key_store.hpp"

namespace parley::services {

inline constexpr std::string_view kDefaultProvider = "openai";

// Parses `secrets.encryption_keys`: comma-separated Fernet keys, spaces around each allowed, empty
// entries ignored. kValidation (param "secrets.encryption_keys") when a key is malformed or there
// is none; the message never contains key material.
Result<crypto::MultiFernet> parse_encryption_keys(std::string_view comma_separated);

// 1–64 characters of [a-z0-9_-]; kValidation with param "provider" otherwise.
Status check_provider_name(std::string_view provider);
// 8–512 printable ASCII characters, no whitespace; kValidation with param "api_key" otherwise
// (the message never repeats the value).
Status check_provider_key(std::string_view key);

// Splits one CSV record (RFC 4180 quoting: "a ""b""" is `a "b"`; fields trimmed of spaces and tabs
// outside quotes). kBadRequest for an unterminated quote or text after a closing quote.
Result<std::vector<std::string>> parse_csv_line(std::string_view line);

struct MaskedProviderKey {
  std::string provider;
  std::string masked;           // e.g. "sk-…abcd"
  std::int64_t created_at = 0;  // unix ms
  std::int64_t updated_at = 0;  // unix ms
};

struct RotationFailure {
  std::string user_id;
  std::string provider;
  std::string reason;  // never key material
};

struct RotationReport {
  std::int64_t rotated = 0;               // re-encrypted under the first key
  std::int64_t already_current = 0;       // already under the first key; left alone
  std::int64_t failed = 0;                // no configured key opens the token (or the row kept changing)
  std::vector<RotationFailure> failures;  // the first kMaxReportedIssues of them
};

struct ImportOptions {
  std::string provider = std::string(kDefaultProvider);
  bool overwrite = false;  // replace a key the user already has (otherwise the row is skipped)
};

enum class ImportOutcome { kImported, kSkipped, kFailed };

struct ImportIssue {
  std::size_t line = 0;  // 1-based line of the file
  ImportOutcome outcome = ImportOutcome::kSkipped;
  std::string username;  // as given, when it looks like a username (else empty)
  std::string reason;    // never key material or token text
};

struct ImportReport {
  std::int64_t imported = 0;
  std::int64_t skipped = 0;         // blank lines, unknown users, existing keys without overwrite
  std::int64_t failed = 0;          // malformed rows, undecryptable tokens, invalid keys, store errors
  std::vector<ImportIssue> issues;  // every skipped or failed row, up to kMaxReportedIssues
};

inline constexpr std::size_t kMaxReportedIssues = 1000;

struct VaultOptions {
  std::chrono::milliseconds cache_ttl{60'000};
  std::size_t cache_max_entries = 10'000;
  std::int64_t rotate_batch_size = 500;  // rows read per query by rotate_all()
};

class VaultService {
 public:
  VaultService(store::Database& db, const Clock& clock, AuditLog& audit, crypto::MultiFernet keys,
               VaultOptions options = {});

  // Everything set() checks before touching anything: may `who` write `user_id`'s keys, and are
  // the provider name and key well-formed. No I/O: lets a handler refuse before verifying a key
  // with the provider.
  [[nodiscard]] Status check_set(const auth::Principal& who, std::string_view user_id,
                                 std::string_view provider, const crypto::Secret& key) const;

  // Encrypts `key` under the first encryption key and stores it (replacing any earlier key for
  // this provider); records "provider_key.set" in the audit log.
  Result<MaskedProviderKey> set(const auth::Principal& who, std::string_view user_id,
                                std::string_view provider, const crypto::Secret& key,
                                const RequestMeta& meta);

  // The masked form; kNotFound when the user has no key for `provider`.
  Result<MaskedProviderKey> get_masked(const auth::Principal& who, std::string_view user_id,
                                       std::string_view provider);

  // Every key the user keeps (masked), by provider name.
  Result<std::vector<MaskedProviderKey>> list_masked(const auth::Principal& who, std::string_view user_id);

  // Deletes the key; kNotFound when there is none. Records "provider_key.deleted".
  Status remove(const auth::Principal& who, std::string_view user_id, std::string_view provider,
                const RequestMeta& meta);

  // For the provider client: the user's key, std::nullopt when none is set. A token that no
  // configured key opens → kApiKeyDecryptionFailed asking the user to set the key again.
  Result<std::optional<crypto::Secret>> decrypted(std::string_view user_id, std::string_view provider);

  // Drops every cached key of a user (call when a user is deleted on this instance).
  void forget_user(std::string_view user_id);

  // Re-encrypts every stored token under the first key. Idempotent (a token already under the
  // first key is left alone) and safe to interrupt or to run beside a serving instance: each row is
  // replaced on its own, only while it still holds the token that was read. A store failure while
  // walking the table ends the run with that error (rows already rotated stay rotated).
  Result<RotationReport> rotate_all(const RequestMeta& meta = {"cli", "local"});

  // Imports a CSV of `username,fernet_token` rows (header optional) exported from a Python service
  // that used one of the configured encryption keys. Each row is handled on its own; see
  // ImportReport. kNotFound when the file cannot be opened.
  Result<ImportReport> import_csv(const std::filesystem::path& file, const ImportOptions& options,
                                  const RequestMeta& meta = {"cli", "local"});
  ImportReport import_csv(std::istream& in, const ImportOptions& options,
                          const RequestMeta& meta = {"cli", "local"});

  // Entries in the decrypted-key cache (tests, metrics).
  [[nodiscard]] std::size_t cache_size() const;

 private:
  struct CacheEntry {
    std::string key;  // user_id '\0' provider
    std::optional<crypto::Secret> secret;
    std::int64_t loaded_ms = 0;
  };

  void forget(std::string_view user_id, std::string_view provider);
  void evict_expired_locked(std::int64_t now_ms);
  void rotate_row(store::ProviderKeyStore& store, store::ProviderKeyRecord row, RotationReport& report);
  void import_row(std::string_view line, std::size_t line_no, bool& header_allowed,
                  const ImportOptions& options, const RequestMeta& meta, ImportReport& report);

  store::Database& db_;
  const Clock& clock_;
  AuditLog& audit_;
  const crypto::MultiFernet keys_;
  const VaultOptions options_;

  mutable std::mutex mutex_;
  std::list<CacheEntry> entries_;  // oldest first; every entry has the same TTL
  std::unordered_map<std::string, std::list<CacheEntry>::iterator> index_;
  std::uint64_t generation_ = 0;  // bumped by every forget: a decrypt that raced with it is not cached
};

}  // namespace parley::services
