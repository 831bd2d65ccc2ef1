// SHA-256, HMAC-SHA256 and constant-time comparison (OpenSSL 3).
//
// Digests are returned as raw bytes (32 of them); pass them to hex_encode or base64url_encode for
// text. Thread-safety: pure functions. Errors: OpenSSL only fails these for allocation failure,
// which is treated like std::bad_alloc: the process aborts with a message. Nothing throws except
// std::bad_alloc.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace parley::crypto {

inline constexpr std::size_t kSha256Size = 32;

[[nodiscard]] std::string sha256(std::string_view data);
[[nodiscard]] std::string hmac_sha256(std::string_view key, std::string_view data);

// True when both have the same length and the same bytes. The time taken depends only on the
// lengths, never on where the contents differ (CRYPTO_memcmp). Use it for MACs, hashes, tokens.
[[nodiscard]] bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace parley::crypto
