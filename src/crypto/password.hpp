// Password hashing with argon2id (libsodium crypto_pwhash_str_alg). The encoded hash
// ("$argon2id$v=19$m=19456,t=2,p=1$salt$hash") carries its own salt and parameters, so a stored
// hash stays verifiable after the defaults change; password_needs_rehash says when to upgrade.
//
// BLOCKING: hash_password and verify_password take tens of milliseconds and ~19 MiB each by design.
// Callers must run them on a worker pool, never on an event-loop thread.
// Thread-safety: safe from any thread (libsodium is initialised once, thread-safely).
// Errors: hash_password fails with kInternal (out of memory, bad parameters); the password never
// appears in a message. Nothing throws except std::bad_alloc.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace parley::crypto {

// Defaults are OWASP's argon2id minimum: 19 MiB of memory, 2 passes (libsodium uses 1 lane).
struct PasswordParams {
  unsigned long long ops_limit = 2;
  std::size_t mem_limit_bytes = std::size_t{19} * 1024 * 1024;
};

[[nodiscard]] Result<std::string> hash_password(std::string_view password, const PasswordParams& params = {});

// True only when `encoded_hash` is a well-formed argon2 hash of `password`. A malformed hash is
// simply false.
[[nodiscard]] bool verify_password(std::string_view encoded_hash, std::string_view password);

// True when `encoded_hash` is not argon2id with exactly `params` (or is malformed): after a
// successful login, hash the password again and store the new hash.
[[nodiscard]] bool password_needs_rehash(std::string_view encoded_hash, const PasswordParams& params = {});

}  // namespace parley::crypto
