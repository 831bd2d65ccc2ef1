// The properties of Fernet tokens (crypto/fernet.hpp) that the libFuzzer target `fernet_fuzz` and
// the unit test `crypto_fernet_property_test.cpp` check:
//
//   - nothing crashes or trips ASan/UBSan (the TTL and clock-skew arithmetic included, with times
//     and TTLs at the ends of int64), whatever the token, time and TTL;
//   - the input read as a token is accepted exactly when a reading of its own (strict base64url,
//     version byte, HMAC-SHA256 and AES-128-CBC through OpenSSL's C API, Python's time rules in
//     128-bit arithmetic) accepts it, with the same plaintext; MultiFernet agrees, and every
//     failure is a 401;
//   - any plaintext (from the input) encrypted at any time round-trips through fernet_decrypt,
//     MultiFernet::decrypt and MultiFernet::rotate (which keeps the timestamp), and is accepted
//     under a TTL exactly when Python's rules say so;
//   - any single-byte change of a valid token (positions and values drawn from the input, plus
//     the last characters) is rejected, and so is the token under another key.
//
// Input layout: byte 0 picks the encryption time (bits 0-1), the decryption time (bits 2-4) and
// the TTL (bits 5-7); byte 1 seeds the byte changes and the IV; the rest is the token text (for
// part one) and the plaintext (for the others).
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/fernet.hpp"

namespace parley::crypto::fuzz {

// The keys the target uses, in Python's text form (16 signing bytes, then 16 encryption bytes).
inline constexpr std::string_view kFernetKeyText = "f3if0U8nPwKDo2uArvlrHeK_r-fKKzC5oC_8Rl3KWaw=";
inline constexpr std::string_view kOtherFernetKeyText = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

__extension__ using Int128 = __int128;

// base64url with the padding either absent or exactly right, the unused bits zero.
inline std::optional<std::string> strict_base64url(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (text.size() % 4 == 0) {
    std::size_t pad = 0;
    while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
    text.remove_suffix(pad);
    if (pad > 0 && text.size() % 4 != 4 - pad) return std::nullopt;
  }
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const std::size_t n = std::min<std::size_t>(4, text.size() - i);
    std::uint32_t group = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      int v = 0;
      if (k < n) {
        v = value(text[i + k]);
        if (v < 0) return std::nullopt;
      }
      group = group << 6 | static_cast<std::uint32_t>(v);
    }
    const std::size_t bytes = n - 1;  // 4 chars: 3 bytes, 3: 2, 2: 1
    for (std::size_t k = 0; k < bytes; ++k) out.push_back(static_cast<char>(group >> (16 - 8 * k) & 0xff));
    if (bytes < 3 && (group & ((1u << (8 * (3 - bytes))) - 1)) != 0) return std::nullopt;
  }
  return out;
}

inline bool fernet_time_ok(std::uint64_t timestamp, std::int64_t now, std::optional<std::int64_t> ttl) {
  if (!ttl) return true;
  const Int128 ts = timestamp;
  return !(ts + Int128{*ttl} < Int128{now}) && !(Int128{now} + 60 < ts);
}

// Fernet verification and decryption spelled out with OpenSSL's C API.
inline std::optional<std::string> reference_fernet_decrypt(std::string_view key_text, std::string_view token,
                                                           std::int64_t now,
                                                           std::optional<std::int64_t> ttl) {
  const std::optional<std::string> key = strict_base64url(key_text);
  const std::optional<std::string> data = strict_base64url(token);
  if (!key || key->size() != 32 || !data || data->size() < 1 + 8 + 16 + 16 + 32) return std::nullopt;
  if (static_cast<unsigned char>((*data)[0]) != 0x80) return std::nullopt;
  std::uint64_t timestamp = 0;
  for (std::size_t i = 1; i <= 8; ++i) timestamp = timestamp << 8 | static_cast<unsigned char>((*data)[i]);
  if (!fernet_time_ok(timestamp, now, ttl)) return std::nullopt;
  const std::size_t signed_size = data->size() - 32;
  if ((signed_size - 25) % 16 != 0) return std::nullopt;
  std::array<unsigned char, 32> mac{};
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key->data(), 16, reinterpret_cast<const unsigned char*>(data->data()), signed_size,
       mac.data(), &mac_size);
  if (std::string_view(reinterpret_cast<const char*>(mac.data()), mac_size) !=
      std::string_view(*data).substr(signed_size)) {
    return std::nullopt;
  }
  std::unique_ptr<EVP_CIPHER_CTX, void (*)(EVP_CIPHER_CTX*)> ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  const auto* bytes = reinterpret_cast<const unsigned char*>(data->data());
  std::string plain(signed_size, '\0');
  int n1 = 0;
  int n2 = 0;
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr,
                         reinterpret_cast<const unsigned char*>(key->data()) + 16, bytes + 9) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out, &n1, bytes + 25, static_cast<int>(signed_size - 25)) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out + n1, &n2) != 1) {
    return std::nullopt;
  }
  plain.resize(static_cast<std::size_t>(n1 + n2));
  return plain;
}

inline std::optional<std::string> check_fernet_input(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return std::nullopt;
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  static constexpr std::int64_t kEncryptAt[4] = {0, 1'700'000'000, 1'700'000'061, kMax};
  static constexpr std::int64_t kDecryptAt[8] = {
      0, 1'700'000'000, 1'700'000'060, 1'699'999'939, 1'700'003'600, kMax, kMin, -1};
  static constexpr std::int64_t kTtls[8] = {-1, 0, 60, 3600, kMax, kMin, 1, -1};
  const std::int64_t encrypt_at = kEncryptAt[data[0] & 3u];
  const std::int64_t decrypt_at = kDecryptAt[(data[0] >> 2) & 7u];
  const unsigned ttl_index = (data[0] >> 5) & 7u;
  const std::optional<std::int64_t> ttl =
      ttl_index == 7 ? std::nullopt : std::optional<std::int64_t>(kTtls[ttl_index]);
  std::uint32_t state = data[1] + 1u;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);

  auto key = FernetKey::parse(kFernetKeyText);
  auto other = FernetKey::parse(kOtherFernetKeyText);
  if (!key || !other) return std::string("the fuzz keys do not parse");
  auto multi = MultiFernet::create({*other, *key});
  if (!multi) return std::string("MultiFernet::create failed");

  // 1. The input as a token.
  const std::optional<std::string> want = reference_fernet_decrypt(kFernetKeyText, text, decrypt_at, ttl);
  auto got = fernet_decrypt(*key, text, decrypt_at, ttl);
  if (got.has_value() != want.has_value()) {
    return std::string("fernet_decrypt ") + (got ? "accepted" : "refused") + " a token the reference " +
           (want ? "accepts" : "refuses");
  }
  if (got && *got != *want) return std::string("fernet_decrypt returned another plaintext");
  if (!got && got.error().kind != ErrorKind::kUnauthorized)
    return std::string("fernet_decrypt failed with a non-401");
  auto by_multi = multi->decrypt(text, decrypt_at, ttl);
  if (by_multi.has_value() != got.has_value() || (by_multi && *by_multi != *got)) {
    return std::string("MultiFernet::decrypt disagrees with fernet_decrypt");
  }
  if (fernet_decrypt(*other, text, decrypt_at, std::nullopt) &&
      !reference_fernet_decrypt(kOtherFernetKeyText, text, decrypt_at, std::nullopt)) {
    return std::string("a token verified under a key that did not make it");
  }

  // 2. Round trips of the input as plaintext.
  FernetIv iv{};
  for (auto& b : iv) b = static_cast<unsigned char>(next());
  auto token = fernet_encrypt(*key, text, encrypt_at, iv);
  if (!token) return "fernet_encrypt failed: " + token.error().message;
  auto back = fernet_decrypt(*key, *token, decrypt_at, std::nullopt);
  if (!back || *back != text) return std::string("encrypt then decrypt (no TTL) lost the plaintext");
  const bool timely = fernet_time_ok(static_cast<std::uint64_t>(encrypt_at), decrypt_at, ttl);
  auto with_ttl = fernet_decrypt(*key, *token, decrypt_at, ttl);
  if (with_ttl.has_value() != timely) {
    return std::string("a token ") + (timely ? "refused" : "accepted") + " against Python's TTL rules";
  }
  if (with_ttl && *with_ttl != text) return std::string("encrypt then decrypt (TTL) lost the plaintext");
  auto stamp = fernet_extract_timestamp(*key, *token);
  if (!stamp || *stamp != static_cast<std::uint64_t>(encrypt_at)) return std::string("the timestamp is lost");
  auto rotated = multi->rotate(*token);
  if (!rotated) return std::string("MultiFernet::rotate refused a token of one of its keys");
  auto rotated_back = fernet_decrypt(*other, *rotated, decrypt_at, std::nullopt);
  auto rotated_stamp = fernet_extract_timestamp(*other, *rotated);
  if (!rotated_back || *rotated_back != text || !rotated_stamp || *rotated_stamp != *stamp) {
    return std::string("a rotated token lost its plaintext or timestamp");
  }
  if (fernet_decrypt(*key, *rotated, decrypt_at, std::nullopt))
    return std::string("a rotated token opens with the old key");
  if (fernet_decrypt(*other, *token, decrypt_at, std::nullopt))
    return std::string("a token opened under another key");

  // 3. Every single-byte change is rejected.
  std::array<std::size_t, 11> positions{};
  for (std::size_t i = 0; i < 8; ++i) positions[i] = next() % token->size();
  positions[8] = token->size() - 1;
  positions[9] = token->size() - 2;
  positions[10] = token->size() - 3;
  for (const std::size_t p : positions) {
    std::string changed = *token;
    changed[p] = static_cast<char>(changed[p] ^ static_cast<char>(1 + next() % 255));
    if (fernet_decrypt(*key, changed, decrypt_at, std::nullopt)) {
      return "a token with byte " + std::to_string(p) + " changed was accepted";
    }
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=";
    changed = *token;
    changed[p] = kAlphabet[next() % kAlphabet.size()];
    if (changed != *token && fernet_decrypt(*key, changed, decrypt_at, std::nullopt)) {
      return "a token with character " + std::to_string(p) + " changed was accepted";
    }
  }
  return std::nullopt;
}

}  // namespace parley::crypto::fuzz
