#include "crypto/api_key.hpp"

#include "crypto/encoding.hpp"
#include "crypto/hash.hpp"
#include "crypto/random.hpp"

namespace parley::crypto {
namespace {

bool is_base62(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

}  // namespace

std::string generate_service_key() {
  std::string key(kServiceKeyPrefix);
  key.append(random_base62(kServiceKeyRandomLength));
  return key;
}

std::string hash_service_key(std::string_view key) {
  return hex_encode(sha256(key));
}

std::string service_key_display_prefix(std::string_view key) {
  return std::string(key.substr(0, kServiceKeyDisplayPrefixLength));
}

bool looks_like_service_key(std::string_view candidate) noexcept {
  if (candidate.size() != kServiceKeyLength || !candidate.starts_with(kServiceKeyPrefix)) return false;
  for (const char c : candidate.substr(kServiceKeyPrefix.size())) {
    if (!is_base62(c)) return false;
  }
  return true;
}

}  // namespace parley::crypto
