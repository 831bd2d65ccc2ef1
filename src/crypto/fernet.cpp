#include "crypto/fernet.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <climits>
#include <memory>

#include "crypto/encoding.hpp"
#include "crypto/hash.hpp"
#include "crypto/random.hpp"

namespace parley::crypto {
namespace {

constexpr unsigned char kVersion = 0x80;
constexpr std::size_t kTimestampSize = 8;
constexpr std::size_t kHeaderSize = 1 + kTimestampSize + kFernetIvSize;  // version | ts | iv
constexpr std::size_t kBlockSize = 16;
// Smallest well-formed token: header, one cipher block, HMAC.
constexpr std::size_t kMinTokenBytes = kHeaderSize + kBlockSize + kSha256Size;
// EVP takes int lengths; a stored secret is far below this anyway.
constexpr std::size_t kMaxPlaintextBytes = static_cast<std::size_t>(INT_MAX) - 2 * kBlockSize;

// Python integers do not overflow; 128-bit arithmetic reproduces its comparisons exactly.
__extension__ using Int128 = __int128;

std::unexpected<Error> invalid(std::string reason = "invalid token") {
  return fail(ErrorKind::kUnauthorized, std::move(reason));
}

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const noexcept { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

const unsigned char* bytes_of(std::string_view s) {
  static constexpr unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

struct UnverifiedToken {
  std::uint64_t timestamp = 0;
  std::string data;  // the decoded token, HMAC included
};

// Python's _get_unverified_token_data: decode and read the timestamp, trust nothing yet.
Result<UnverifiedToken> unverified_token(std::string_view token) {
  auto data = base64url_decode(token, Padding::kOptional);
  if (!data) return invalid();
  if (data->empty() || static_cast<unsigned char>((*data)[0]) != kVersion) return invalid();
  if (data->size() < 1 + kTimestampSize) return invalid();
  std::uint64_t ts = 0;
  for (std::size_t i = 1; i <= kTimestampSize; ++i) ts = ts << 8 | static_cast<unsigned char>((*data)[i]);
  return UnverifiedToken{ts, std::move(*data)};
}

Status check_time(std::uint64_t timestamp, std::int64_t now, std::optional<std::int64_t> ttl) {
  if (!ttl) return {};
  const Int128 ts = timestamp;
  if (ts + *ttl < now) return invalid("token expired");
  if (Int128{now} + kFernetMaxClockSkew < ts) return invalid("token timestamp is in the future");
  return {};
}

}  // namespace

// Reaches into FernetKey for the raw key halves; only this file uses it.
struct FernetAccess {
  static std::string_view signing_view(const FernetKey& k) {
    return {reinterpret_cast<const char*>(k.signing_key_.data()), k.signing_key_.size()};
  }

  // Python's _verify_signature + the decrypting half of _decrypt_data.
  static Result<std::string> decrypt_data(const FernetKey& key, std::string_view data) {
    if (data.size() < kMinTokenBytes) return invalid();
    const std::string_view signed_part = data.substr(0, data.size() - kSha256Size);
    const std::string_view mac = data.substr(data.size() - kSha256Size);
    if (!constant_time_equal(hmac_sha256(signing_view(key), signed_part), mac)) return invalid();

    const std::string_view iv = data.substr(1 + kTimestampSize, kFernetIvSize);
    const std::string_view ciphertext = signed_part.substr(kHeaderSize);
    if (ciphertext.empty() || ciphertext.size() % kBlockSize != 0) return invalid();
    if (ciphertext.size() > static_cast<std::size_t>(INT_MAX)) return invalid();

    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return fail(ErrorKind::kInternal, "cipher context allocation failed");
    if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr, key.encryption_key_.data(), bytes_of(iv)) !=
        1) {
      return fail(ErrorKind::kInternal, "cipher initialisation failed");
    }
    std::string plaintext(ciphertext.size() + kBlockSize, '\0');
    auto* out = reinterpret_cast<unsigned char*>(plaintext.data());
    int written = 0;
    int final_written = 0;
    if (EVP_DecryptUpdate(ctx.get(), out, &written, bytes_of(ciphertext),
                          static_cast<int>(ciphertext.size())) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), out + written, &final_written) != 1) {
      OPENSSL_cleanse(plaintext.data(), plaintext.size());
      return invalid();  // bad PKCS7 padding; the MAC already matched, so this is no oracle
    }
    const std::size_t total = static_cast<std::size_t>(written) + static_cast<std::size_t>(final_written);
    OPENSSL_cleanse(plaintext.data() + total, plaintext.size() - total);
    plaintext.resize(total);
    return plaintext;
  }

  // Python's _encrypt_from_parts.
  static Result<std::string> encrypt_from_parts(const FernetKey& key, std::string_view plaintext,
                                                std::uint64_t timestamp, const FernetIv& iv) {
    if (plaintext.size() > kMaxPlaintextBytes)
      return fail(ErrorKind::kPayloadTooLarge, "plaintext too large");
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    if (!ctx) return fail(ErrorKind::kInternal, "cipher context allocation failed");
    if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr, key.encryption_key_.data(), iv.data()) !=
        1) {
      return fail(ErrorKind::kInternal, "cipher initialisation failed");
    }

    std::string data;
    data.reserve(kHeaderSize + plaintext.size() + kBlockSize + kSha256Size);
    data.push_back(static_cast<char>(kVersion));
    for (int shift = 56; shift >= 0; shift -= 8) data.push_back(static_cast<char>(timestamp >> shift & 0xff));
    data.append(reinterpret_cast<const char*>(iv.data()), iv.size());

    const std::size_t cipher_at = data.size();
    data.resize(cipher_at + plaintext.size() + kBlockSize);
    auto* out = reinterpret_cast<unsigned char*>(data.data() + cipher_at);
    int written = 0;
    int final_written = 0;
    if (EVP_EncryptUpdate(ctx.get(), out, &written, bytes_of(plaintext),
                          static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), out + written, &final_written) != 1) {
      return fail(ErrorKind::kInternal, "encryption failed");
    }
    data.resize(cipher_at + static_cast<std::size_t>(written) + static_cast<std::size_t>(final_written));
    data.append(hmac_sha256(signing_view(key), data));
    return base64url_encode(data, /*pad=*/true);
  }
};

namespace {

FernetIv random_iv() {
  FernetIv iv{};
  const std::string bytes = random_bytes(iv.size());
  std::copy(bytes.begin(), bytes.end(), iv.begin());
  return iv;
}

}  // namespace

Result<FernetKey> FernetKey::parse(std::string_view urlsafe_b64_key) {
  auto raw = base64url_decode(urlsafe_b64_key, Padding::kOptional);
  if (!raw || raw->size() != 32) {
    if (raw) OPENSSL_cleanse(raw->data(), raw->size());
    return fail(ErrorKind::kBadRequest, "Fernet key must be 32 url-safe base64-encoded bytes");
  }
  FernetKey key;
  std::copy_n(raw->begin(), 16, key.signing_key_.begin());
  std::copy_n(raw->begin() + 16, 16, key.encryption_key_.begin());
  OPENSSL_cleanse(raw->data(), raw->size());
  return key;
}

FernetKey FernetKey::generate() {
  std::string raw = random_bytes(32);
  FernetKey key;
  std::copy_n(raw.begin(), 16, key.signing_key_.begin());
  std::copy_n(raw.begin() + 16, 16, key.encryption_key_.begin());
  OPENSSL_cleanse(raw.data(), raw.size());
  return key;
}

FernetKey::~FernetKey() {
  OPENSSL_cleanse(signing_key_.data(), signing_key_.size());
  OPENSSL_cleanse(encryption_key_.data(), encryption_key_.size());
}

std::string FernetKey::encoded() const {
  std::string raw;
  raw.reserve(32);
  raw.append(reinterpret_cast<const char*>(signing_key_.data()), signing_key_.size());
  raw.append(reinterpret_cast<const char*>(encryption_key_.data()), encryption_key_.size());
  std::string text = base64url_encode(raw, /*pad=*/true);
  OPENSSL_cleanse(raw.data(), raw.size());
  return text;
}

std::string generate_fernet_key() {
  return FernetKey::generate().encoded();
}

Result<std::string> fernet_encrypt(const FernetKey& key, std::string_view plaintext, std::int64_t now,
                                   std::optional<FernetIv> iv) {
  if (now < 0) return fail(ErrorKind::kInternal, "Fernet timestamp before 1970");
  return FernetAccess::encrypt_from_parts(key, plaintext, static_cast<std::uint64_t>(now),
                                          iv ? *iv : random_iv());
}

Result<std::string> fernet_decrypt(const FernetKey& key, std::string_view token, std::int64_t now,
                                   std::optional<std::int64_t> ttl_seconds) {
  auto parts = unverified_token(token);
  if (!parts) return std::unexpected(std::move(parts.error()));
  if (auto timely = check_time(parts->timestamp, now, ttl_seconds); !timely) {
    return std::unexpected(std::move(timely.error()));
  }
  return FernetAccess::decrypt_data(key, parts->data);
}

Result<std::uint64_t> fernet_extract_timestamp(const FernetKey& key, std::string_view token) {
  auto parts = unverified_token(token);
  if (!parts) return std::unexpected(std::move(parts.error()));
  auto plaintext = FernetAccess::decrypt_data(key, parts->data);
  if (!plaintext) return std::unexpected(std::move(plaintext.error()));
  OPENSSL_cleanse(plaintext->data(), plaintext->size());
  return parts->timestamp;
}

Result<MultiFernet> MultiFernet::create(std::vector<FernetKey> keys) {
  if (keys.empty()) return fail(ErrorKind::kBadRequest, "MultiFernet needs at least one key");
  return MultiFernet(std::move(keys));
}

Result<std::string> MultiFernet::encrypt(std::string_view plaintext, std::int64_t now,
                                         std::optional<FernetIv> iv) const {
  return fernet_encrypt(keys_.front(), plaintext, now, iv);
}

Result<std::string> MultiFernet::decrypt(std::string_view token, std::int64_t now,
                                         std::optional<std::int64_t> ttl_seconds) const {
  auto parts = unverified_token(token);
  if (!parts) return std::unexpected(std::move(parts.error()));
  // The time checks do not depend on the key, so they run once rather than per key.
  if (auto timely = check_time(parts->timestamp, now, ttl_seconds); !timely) {
    return std::unexpected(std::move(timely.error()));
  }
  for (const FernetKey& key : keys_) {
    auto plaintext = FernetAccess::decrypt_data(key, parts->data);
    if (plaintext || plaintext.error().kind != ErrorKind::kUnauthorized) return plaintext;
  }
  return invalid();
}

Result<std::string> MultiFernet::rotate(std::string_view token, std::optional<FernetIv> iv) const {
  auto parts = unverified_token(token);
  if (!parts) return std::unexpected(std::move(parts.error()));
  for (const FernetKey& key : keys_) {
    auto plaintext = FernetAccess::decrypt_data(key, parts->data);
    if (!plaintext) {
      if (plaintext.error().kind != ErrorKind::kUnauthorized) return plaintext;
      continue;
    }
    auto rotated =
        FernetAccess::encrypt_from_parts(keys_.front(), *plaintext, parts->timestamp, iv ? *iv : random_iv());
    OPENSSL_cleanse(plaintext->data(), plaintext->size());
    return rotated;
  }
  return invalid();
}

}  // namespace parley::crypto
