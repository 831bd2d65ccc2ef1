#include "crypto/password.hpp"

#include <sodium.h>

#include <array>
#include <optional>

namespace parley::crypto {
namespace {

constexpr std::string_view kArgon2idPrefix = crypto_pwhash_argon2id_STRPREFIX;

bool sodium_ready() {
  // sodium_init is itself idempotent and thread-safe; the static just avoids repeating the call.
  static const bool ready = sodium_init() >= 0;
  return ready;
}

using HashBuffer = std::array<char, crypto_pwhash_STRBYTES>;

// libsodium wants a NUL-terminated string in a crypto_pwhash_STRBYTES buffer.
std::optional<HashBuffer> to_buffer(std::string_view encoded_hash) {
  if (encoded_hash.size() >= crypto_pwhash_STRBYTES) return std::nullopt;
  if (encoded_hash.find('\0') != std::string_view::npos) return std::nullopt;
  HashBuffer buffer{};
  encoded_hash.copy(buffer.data(), encoded_hash.size());
  return buffer;
}

// Some libsodium paths reject a null pointer even with length 0.
const char* chars_of(std::string_view s) noexcept {
  return s.empty() ? "" : s.data();
}

}  // namespace

Result<std::string> hash_password(std::string_view password, const PasswordParams& params) {
  if (!sodium_ready()) return fail(ErrorKind::kInternal, "libsodium initialisation failed");
  HashBuffer buffer{};
  if (crypto_pwhash_str_alg(buffer.data(), chars_of(password), password.size(), params.ops_limit,
                            params.mem_limit_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return fail(ErrorKind::kInternal, "password hashing failed");
  }
  return std::string(buffer.data());
}

bool verify_password(std::string_view encoded_hash, std::string_view password) {
  if (!sodium_ready()) return false;
  const auto buffer = to_buffer(encoded_hash);
  if (!buffer) return false;
  return crypto_pwhash_str_verify(buffer->data(), chars_of(password), password.size()) == 0;
}

bool password_needs_rehash(std::string_view encoded_hash, const PasswordParams& params) {
  if (!sodium_ready()) return true;
  if (!encoded_hash.starts_with(kArgon2idPrefix)) return true;
  const auto buffer = to_buffer(encoded_hash);
  if (!buffer) return true;
  return crypto_pwhash_str_needs_rehash(buffer->data(), params.ops_limit, params.mem_limit_bytes) != 0;
}

}  // namespace parley::crypto
