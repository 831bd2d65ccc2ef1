// Service API keys: "ai_" followed by 40 base62 characters (~238 random bits). The key is shown
// once; only hash_service_key(key) is stored, plus the display prefix so people can tell keys apart.
//
// Thread-safety: pure functions (generation uses the thread-safe CSPRNG). Errors: none.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace parley::crypto {

inline constexpr std::string_view kServiceKeyPrefix = "ai_";
inline constexpr std::size_t kServiceKeyRandomLength = 40;
inline constexpr std::size_t kServiceKeyLength = kServiceKeyPrefix.size() + kServiceKeyRandomLength;
inline constexpr std::size_t kServiceKeyDisplayPrefixLength = 10;

[[nodiscard]] std::string generate_service_key();

// Lower-case hex SHA-256 of the whole key (prefix included): what the store keeps and looks up.
// A fast hash is right here: the key has far too much entropy to guess, unlike a password.
[[nodiscard]] std::string hash_service_key(std::string_view key);

// The first 10 characters ("ai_" + 7), safe to store and show. Shorter input is returned whole.
[[nodiscard]] std::string service_key_display_prefix(std::string_view key);

// Shape check only (prefix, length, base62 body), to reject garbage before hashing and lookup.
[[nodiscard]] bool looks_like_service_key(std::string_view candidate) noexcept;

}  // namespace parley::crypto
