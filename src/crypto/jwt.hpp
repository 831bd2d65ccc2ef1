// JSON Web Tokens (RFC 7519) signed with HMAC-SHA256 (JWS, RFC 7515). HS256 is the only
// algorithm: it is pinned here, never read from the token, so "none", "HS512", "RS256" and any
// other header value are rejected.
//
// Thread-safety: pure functions. Errors: verify_hs256 returns ErrorKind::kUnauthorized with a
// short generic reason ("invalid token", "token expired", ...); the token, its claims and the
// secret never appear in a message. Nothing throws except std::bad_alloc.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace parley::crypto {

// Longer tokens are rejected before any decoding; ours are a few hundred bytes.
inline constexpr std::size_t kMaxJwtLength = 8192;

struct VerifyOptions {
  std::int64_t now = 0;                 // unix seconds
  std::int64_t leeway_seconds = 0;      // clock tolerance applied to exp, nbf and iat
  std::optional<std::string> issuer;    // when set, "iss" must equal it
  std::optional<std::string> audience;  // when set, "aud" (string or array) must contain it
};

// header.payload.signature with header {"alg":"HS256","typ":"JWT"} and `claims` as the payload.
// `secret` must be non-empty (configuration guarantees a long random one).
[[nodiscard]] std::string sign_hs256(const boost::json::object& claims, std::string_view secret);

// Returns the claims of a token signed with `secret` that is valid at `options.now`:
// - exactly three non-empty segments of canonical, unpadded base64url;
// - header a JSON object with "alg":"HS256" and no "crit";
// - signature matches (constant-time compare), checked before the payload is parsed;
// - payload a JSON object; "exp" present and numeric, and now < exp + leeway;
// - "nbf" and "iat", when present, numeric and not later than now + leeway;
// - "iss" / "aud" as configured in `options` (not checked when not configured).
[[nodiscard]] Result<boost::json::object> verify_hs256(std::string_view token, std::string_view secret,
                                                       const VerifyOptions& options);

}  // namespace parley::crypto
