// Randomness from OpenSSL's CSPRNG (RAND_bytes). The one home for random bytes, tokens and ids.
//
// Thread-safety: every function may be called from any thread.
// Errors: a CSPRNG failure is unrecoverable (the process could only hand out guessable secrets),
// so these functions abort the process instead of returning an error. They never throw except
// std::bad_alloc.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace parley::crypto {

// The 62 characters used by random_base62: digits, upper case, lower case.
inline constexpr std::string_view kBase62Alphabet =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// Length of new_public_id(): 22 base62 characters carry about 131 random bits.
inline constexpr std::size_t kPublicIdLength = 22;

// `n` bytes from the CSPRNG.
[[nodiscard]] std::string random_bytes(std::size_t n);

// `n` characters drawn uniformly from kBase62Alphabet (rejection sampling, no modulo bias). The
// bytes come from a per-thread pool of CSPRNG output, wiped as it is used (one RAND_bytes call per
// 1 KiB instead of one per id).
[[nodiscard]] std::string random_base62(std::size_t n);

// An opaque id for users, keys, conversations...: kPublicIdLength base62 characters.
[[nodiscard]] std::string new_public_id();

}  // namespace parley::crypto
