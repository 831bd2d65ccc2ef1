// Second line of defence against secrets in logs: rewrites anything that looks like a credential.
// The first line is the type system (crypto::Secret never formats its value); this catches the rest.
#pragma once

#include <string>
#include <string_view>

namespace parley::log {

// Returns `text` with secret-looking values replaced by "[REDACTED]":
//  - provider keys `sk-…` and service keys `ai_…` (8+ key characters after the prefix)
//  - `Bearer <token>` and `Basic <token>` credentials
//  - JSON Web Tokens (three base64url segments starting with `eyJ`)
//  - Fernet tokens (`gAAAAA…`, 40+ base64url characters)
//  - values of `password`, `api_key`, `secret`, `token`-named fields in `k=v`, `k: v` and `"k":"v"` forms
//  - the password part of URLs `scheme://user:password@host`
// Pure function; thread-safe.
std::string redact(std::string_view text);

// True when redact() would change `text`. Cheap pre-check used by the log sink.
bool needs_redaction(std::string_view text);

}  // namespace parley::log
