// The properties of HS256 JSON Web Tokens (crypto/jwt.hpp) that the libFuzzer target `jwt_fuzz`
// and the unit test `crypto_jwt_property_test.cpp` check:
//
//   - nothing crashes, throws or trips ASan/UBSan, whatever the token, key and options;
//   - the input read as a token: when it verifies, signing its claims again with the same key
//     gives a token that verifies to the same claims; it never verifies under another key (one
//     byte changed, one byte more or less, another key altogether); every failure is a 401;
//   - a token signed from claims derived from the input (a JSON object in the input, or a subject
//     made of its bytes; exp in the future) verifies to exactly those claims, and every
//     single-byte change of it (positions and values drawn from the input, plus the last character
//     of each segment and the dots) is rejected;
//   - a token whose exp is not a finite number after now (0e400, which Boost.JSON reads as NaN,
//     1e400, a string, null) is rejected;
//   - a token whose header names another algorithm ("none", "HS512", "hs256", …), correctly
//     HMAC-signed or with an empty signature, or that lists "crit", is rejected; only "HS256" passes.
//
// Input layout: byte 0 picks the header algorithm (bits 0-3), the leeway (bits 4-5) and whether an
// issuer and audience are required (bit 6); byte 1 seeds the byte changes; the rest is the token
// (or claims) text.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/encoding.hpp"
#include "crypto/hash.hpp"
#include "crypto/jwt.hpp"

namespace parley::crypto::fuzz {

namespace bj = boost::json;

inline constexpr std::string_view kJwtKey = "fuzz-jwt-secret-0123456789abcdef";
inline constexpr std::int64_t kJwtNow = 1'700'000'000;

inline std::optional<std::string> expect_rejected(const Result<bj::object>& r, const char* what) {
  if (r) return std::string("accepted ") + what;
  if (r.error().kind != ErrorKind::kUnauthorized)
    return std::string("rejected ") + what + " with a non-401 error";
  return std::nullopt;
}

inline std::optional<std::string> check_jwt_input(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return std::nullopt;
  static constexpr std::string_view kAlgs[16] = {"none",   "None",  "NONE",  "HS512", "RS256", "hs256",
                                                 "HS256 ", "",      "HS384", "ES256", "HS256", "HS256",
                                                 "HS256",  "HS256", "HS256", "HS256"};
  static constexpr std::int64_t kLeeways[4] = {0, 30, 86400, 1'000'000'000'000};
  const std::string_view alg = kAlgs[data[0] & 15u];
  VerifyOptions options{kJwtNow, kLeeways[(data[0] >> 4) & 3u], std::nullopt, std::nullopt};
  if ((data[0] & 64u) != 0) {
    options.issuer = "parley";
    options.audience = "parley-api";
  }
  std::uint32_t state = data[1] + 1u;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);

  // Another key never verifies what this key signed.
  const std::string key(kJwtKey);
  std::vector<std::string> other_keys{key.substr(1), key + "x", "not-the-fuzz-secret"};
  other_keys.push_back(key);
  other_keys.back()[next() % key.size()] ^= static_cast<char>(1 + next() % 255);

  // 1. The input as a token.
  auto verified = verify_hs256(text, key, options);
  if (!verified && verified.error().kind != ErrorKind::kUnauthorized) {
    return std::string("a token was rejected with a non-401 error");
  }
  if (verified) {
    const std::string again = sign_hs256(*verified, key);
    auto reverified = verify_hs256(again, key, options);
    if (!reverified || *reverified != *verified)
      return std::string("re-signed claims do not verify the same");
  }
  for (const std::string& other : other_keys) {
    if (verify_hs256(text, other, options)) return std::string("a token verified under another key");
  }

  // 2. A token signed from claims derived from the input.
  bj::object claims;
  boost::system::error_code ec;
  // Claims from the input when they survive serialize and parse (Boost.JSON 1.81 reads 0e400 as
  // NaN, which it writes as "NaN": no signer of ours writes such claims).
  if (bj::value v = bj::parse(text, ec); !ec && v.is_object()) {
    if (bj::value again = bj::parse(bj::serialize(v), ec); !ec) claims = std::move(again.as_object());
  }
  claims["sub"] = hex_encode(text.substr(0, 24));
  claims.erase("nbf");
  claims.erase("iat");
  claims["exp"] = kJwtNow + 1 + static_cast<std::int64_t>(next() % 100000);
  if (options.issuer) claims["iss"] = *options.issuer;
  if (options.audience) claims["aud"] = bj::array{"other", *options.audience};
  const std::string token = sign_hs256(claims, key);
  auto own = verify_hs256(token, key, options);
  if (!own) return "a freshly signed token was rejected: " + own.error().message;
  if (bj::serialize(*own) != bj::serialize(claims))
    return std::string("a freshly signed token verified to other claims");
  for (const std::string& other : other_keys) {
    if (auto wrong = expect_rejected(verify_hs256(token, other, options), "a token under another key"))
      return wrong;
  }

  std::vector<std::size_t> positions;
  for (int i = 0; i < 8; ++i) positions.push_back(next() % token.size());
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = token.rfind('.');
  for (std::size_t p :
       {std::size_t{0}, dot1 - 1, dot1, dot1 + 1, dot2 - 1, dot2, dot2 + 1, token.size() - 1}) {
    positions.push_back(p);
  }
  for (const std::size_t p : positions) {
    std::string changed = token;
    changed[p] = static_cast<char>(changed[p] ^ static_cast<char>(1 + next() % 255));
    if (auto wrong = expect_rejected(verify_hs256(changed, key, options), "a token with one byte changed")) {
      return *wrong + " (at " + std::to_string(p) + ")";
    }
    // The same position turned into each character that keeps it base64url (the hardest case).
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    changed = token;
    const char replacement = kAlphabet[next() % kAlphabet.size()];
    if (replacement == token[p]) continue;
    changed[p] = replacement;
    if (auto wrong =
            expect_rejected(verify_hs256(changed, key, options), "a token with one character changed")) {
      return *wrong + " (at " + std::to_string(p) + ")";
    }
  }

  // 3. Only HS256 in the header passes, however the rest is signed.
  bj::object header{{"alg", alg}, {"typ", "JWT"}};
  if ((next() & 7u) == 0) header["crit"] = bj::array{"exp"};
  const std::string signing_input =
      base64url_encode(bj::serialize(header)) + "." + base64url_encode(bj::serialize(claims));
  const std::string hmac_signed = signing_input + "." + base64url_encode(hmac_sha256(key, signing_input));
  const bool acceptable = alg == "HS256" && !header.contains("crit");
  auto by_alg = verify_hs256(hmac_signed, key, options);
  if (by_alg.has_value() != acceptable) {
    return "a token with alg \"" + std::string(alg) + "\"" + (header.contains("crit") ? " and crit" : "") +
           (acceptable ? " was rejected" : " was accepted");
  }
  if (by_alg && bj::serialize(*by_alg) != bj::serialize(claims)) {
    return std::string("an HS256 token verified to other claims");
  }

  // 4. exp must be a finite number after now (Boost.JSON 1.81 reads 0e400 as NaN, 1e400 as inf).
  struct Spelling {
    std::string_view exp;
    bool valid;
  };
  static constexpr Spelling kExps[] = {{"0e400", false},   {"1e400", false}, {"-1e400", false},
                                       {"1e308", true},    {"1.7e9", false}, {"2e9", true},
                                       {"\"2e9\"", false}, {"null", false}};
  const Spelling spelling = kExps[next() % std::size(kExps)];
  const std::string payload = R"({"sub":"x","exp":)" + std::string(spelling.exp) + "}";
  const std::string exp_input =
      base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url_encode(payload);
  const std::string exp_token = exp_input + "." + base64url_encode(hmac_sha256(key, exp_input));
  VerifyOptions plain{kJwtNow, 0, std::nullopt, std::nullopt};
  if (verify_hs256(exp_token, key, plain).has_value() != spelling.valid) {
    return "a token with exp " + std::string(spelling.exp) +
           (spelling.valid ? " was rejected" : " was accepted");
  }
  if (auto wrong =
          expect_rejected(verify_hs256(signing_input + ".", key, options), "a token without signature")) {
    return wrong;
  }
  if (auto wrong = expect_rejected(verify_hs256(signing_input, key, options), "a token of two segments")) {
    return wrong;
  }
  return std::nullopt;
}

}  // namespace parley::crypto::fuzz
