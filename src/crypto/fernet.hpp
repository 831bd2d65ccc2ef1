// Fernet tokens, byte-compatible with Python's `cryptography.fernet` (spec:
// github.com/fernet/spec): tokens made here decrypt there and the other way round.
//
// Token = urlsafe-base64( 0x80 | timestamp (u64, big-endian) | IV (16) | AES-128-CBC(PKCS7) | HMAC )
// where HMAC = HMAC-SHA256(signing key, everything before it), checked in constant time before
// anything is decrypted.
//
// Time rules follow Python exactly: with a TTL, a token is rejected when timestamp + ttl < now,
// or when it claims a time more than kFernetMaxClockSkew seconds ahead of now. Without a TTL the
// timestamp is not checked at all (a stored secret never expires).
//
// Time is always passed in (unix seconds) so callers use their clock and tests a fixed one.
// Thread-safety: keys and MultiFernet are immutable after construction; const use from many
// threads is safe. Errors: decryption failures are ErrorKind::kUnauthorized with a short reason
// ("invalid token", "token expired", ...); callers map them to their own kind (a stored provider
// key that fails is kApiKeyDecryptionFailed). No message contains key material or plaintext.
// Nothing throws except std::bad_alloc.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace parley::crypto {

inline constexpr std::int64_t kFernetMaxClockSkew = 60;  // seconds, as Python's _MAX_CLOCK_SKEW
inline constexpr std::size_t kFernetIvSize = 16;
using FernetIv = std::array<unsigned char, kFernetIvSize>;

// 16 bytes signing key + 16 bytes AES key. Copies are independent; every copy wipes its bytes
// when destroyed.
class FernetKey {
 public:
  // Python's key text: 32 bytes as url-safe base64, normally padded (44 characters); the unpadded
  // form (43) is accepted too. Fails with kBadRequest; the message never includes the key.
  [[nodiscard]] static Result<FernetKey> parse(std::string_view urlsafe_b64_key);
  // A fresh random key.
  [[nodiscard]] static FernetKey generate();

  FernetKey(const FernetKey&) = default;
  FernetKey& operator=(const FernetKey&) = default;
  ~FernetKey();

  // The key in Python's format (44 characters, padded). This is the secret itself.
  [[nodiscard]] std::string encoded() const;

 private:
  FernetKey() = default;
  friend struct FernetAccess;

  std::array<unsigned char, 16> signing_key_{};
  std::array<unsigned char, 16> encryption_key_{};
};

// A new key in the format of Python's Fernet.generate_key(): 44 characters of padded url-safe
// base64.
[[nodiscard]] std::string generate_fernet_key();

// Encrypts `plaintext` stamped with `now`. `iv` is for tests and vectors only; by default a random
// IV is drawn. Fails (kInternal) only for a negative `now` or an OpenSSL failure.
[[nodiscard]] Result<std::string> fernet_encrypt(const FernetKey& key, std::string_view plaintext,
                                                 std::int64_t now, std::optional<FernetIv> iv = std::nullopt);

// Verifies and decrypts `token` (padded or unpadded url-safe base64) and returns the plaintext.
[[nodiscard]] Result<std::string> fernet_decrypt(const FernetKey& key, std::string_view token,
                                                 std::int64_t now,
                                                 std::optional<std::int64_t> ttl_seconds = std::nullopt);

// The timestamp of a token whose signature verifies under `key` (Python's extract_timestamp).
[[nodiscard]] Result<std::uint64_t> fernet_extract_timestamp(const FernetKey& key, std::string_view token);

// Key rotation: the first key encrypts, every key is tried to decrypt, in order.
class MultiFernet {
 public:
  // Fails (kBadRequest) for an empty list.
  [[nodiscard]] static Result<MultiFernet> create(std::vector<FernetKey> keys);

  [[nodiscard]] Result<std::string> encrypt(std::string_view plaintext, std::int64_t now,
                                            std::optional<FernetIv> iv = std::nullopt) const;
  [[nodiscard]] Result<std::string> decrypt(std::string_view token, std::int64_t now,
                                            std::optional<std::int64_t> ttl_seconds = std::nullopt) const;
  // Re-encrypts a token made with any of the keys under the first key. As in Python, the token's
  // original timestamp is kept (so TTLs still count from the first encryption) and no TTL or
  // clock-skew check applies.
  [[nodiscard]] Result<std::string> rotate(std::string_view token,
                                           std::optional<FernetIv> iv = std::nullopt) const;

  [[nodiscard]] const FernetKey& primary() const noexcept { return keys_.front(); }
  [[nodiscard]] std::size_t size() const noexcept { return keys_.size(); }

 private:
  explicit MultiFernet(std::vector<FernetKey> keys) : keys_(std::move(keys)) {}
  std::vector<FernetKey> keys_;  // never empty
};

}  // namespace parley::crypto
