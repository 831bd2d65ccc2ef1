#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "crypto/encoding.hpp"
#include "crypto/hash.hpp"
#include "crypto/jwt.hpp"

namespace parley::crypto {
namespace {

namespace json = boost::json;

constexpr std::string_view kSecret = "test-secret-0123456789-abcdefghijklmnop";
constexpr std::int64_t kNow = 1700000000;

// A token with exactly the given header and payload text, signed with HS256 whatever the header
// says, so that each rejection is caused by the one thing a test changes.
std::string make_token_from_segments(std::string_view header_b64, std::string_view payload_b64,
                                     std::string_view secret = kSecret) {
  const std::string input = std::string(header_b64) + "." + std::string(payload_b64);
  return input + "." + base64url_encode(hmac_sha256(secret, input));
}

std::string make_token(std::string_view header, std::string_view payload, std::string_view secret = kSecret) {
  return make_token_from_segments(base64url_encode(header), base64url_encode(payload), secret);
}

std::string claims_with(std::string_view extra) {
  return R"({"sub":"u1","exp":1700000600)" + std::string(extra.empty() ? "" : ",") + std::string(extra) + "}";
}

constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";

VerifyOptions at_now() {
  return VerifyOptions{.now = kNow};
}

void expect_rejected(std::string_view token, const VerifyOptions& options = at_now(),
                     std::string_view secret = kSecret) {
  auto claims = verify_hs256(token, secret, options);
  ASSERT_FALSE(claims) << "accepted: " << token;
  EXPECT_EQ(claims.error().kind, ErrorKind::kUnauthorized);
  if (!secret.empty()) {
    EXPECT_EQ(claims.error().message.find(secret), std::string::npos);
  }
  if (!token.empty()) {
    EXPECT_EQ(claims.error().message.find(token), std::string::npos);
  }
}

// RFC 7515 appendix A.1.
constexpr std::string_view kRfcToken =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
constexpr std::string_view kRfcJwkK =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

std::string rfc_key() {
  auto key = base64url_decode(kRfcJwkK);
  EXPECT_TRUE(key);
  return key.value_or("");
}

TEST(CryptoJwt, Rfc7515AppendixA1Verifies) {
  auto claims = verify_hs256(kRfcToken, rfc_key(), VerifyOptions{.now = 1300819379, .issuer = "joe"});
  ASSERT_TRUE(claims) << claims.error().message;
  EXPECT_EQ(claims->at("iss").as_string(), "joe");
  EXPECT_EQ(claims->at("exp").as_int64(), 1300819380);
  EXPECT_TRUE(claims->at("http://example.com/is_root").as_bool());
}

TEST(CryptoJwt, Rfc7515AppendixA1IsExpiredAtItsExp) {
  expect_rejected(kRfcToken, VerifyOptions{.now = 1300819380}, rfc_key());
  auto claims = verify_hs256(kRfcToken, rfc_key(), VerifyOptions{.now = 1300819380});
  ASSERT_FALSE(claims);
  EXPECT_EQ(claims.error().message, "token expired");
}

TEST(CryptoJwt, SignThenVerifyRoundTrips) {
  const json::object claims{{"sub", "user-1"},   {"role", "admin"}, {"iat", kNow},
                            {"exp", kNow + 900}, {"iss", "parley"}, {"aud", "parley-api"}};
  const std::string token = sign_hs256(claims, kSecret);
  const std::size_t dot = token.find('.');
  auto header = base64url_decode(token.substr(0, dot));
  ASSERT_TRUE(header);
  EXPECT_EQ(json::parse(*header), json::parse(kHeader));

  auto verified =
      verify_hs256(token, kSecret, VerifyOptions{.now = kNow, .issuer = "parley", .audience = "parley-api"});
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(*verified, claims);
  expect_rejected(token, at_now(), "another-secret-0123456789");
}

TEST(CryptoJwt, RejectsWrongSegmentCount) {
  const std::string good = make_token(kHeader, claims_with(""));
  ASSERT_TRUE(verify_hs256(good, kSecret, at_now()));
  expect_rejected("");
  expect_rejected(good.substr(0, good.rfind('.')));  // two segments
  expect_rejected(good + ".");                       // four segments
  expect_rejected(good + "." + good.substr(good.rfind('.') + 1));
  expect_rejected("abc");
}

TEST(CryptoJwt, RejectsEmptySegments) {
  const std::string header = base64url_encode(kHeader);
  const std::string payload = base64url_encode(claims_with(""));
  const std::string sig = base64url_encode(hmac_sha256(kSecret, header + "." + payload));
  expect_rejected("." + payload + "." + sig);
  expect_rejected(header + ".." + sig);
  expect_rejected(header + "." + payload + ".");
  expect_rejected("..");
}

TEST(CryptoJwt, RejectsPaddedOrNonBase64UrlSegments) {
  // Each token is correctly signed over its own (flawed) text, so only the encoding rule rejects it.
  const std::string header = base64url_encode(kHeader);
  const std::string tilde_claims = claims_with(R"("k":"~~~")");
  ASSERT_EQ(base64_encode(tilde_claims).find('+') != std::string::npos, true);
  EXPECT_TRUE(
      verify_hs256(make_token_from_segments(header, base64url_encode(tilde_claims)), kSecret, at_now()));
  expect_rejected(make_token_from_segments(header, base64_encode(tilde_claims)));  // '+' instead of '-'

  const std::string slash_claims = claims_with(R"("k":"???")");
  ASSERT_EQ(base64_encode(slash_claims).find('/') != std::string::npos, true);
  expect_rejected(make_token_from_segments(header, base64_encode(slash_claims)));  // '/' instead of '_'

  const std::string padded_claims = claims_with(R"("k":"~~")");
  ASSERT_EQ(base64url_encode(padded_claims, true).back(), '=');
  EXPECT_TRUE(
      verify_hs256(make_token_from_segments(header, base64url_encode(padded_claims)), kSecret, at_now()));
  expect_rejected(make_token_from_segments(header, base64url_encode(padded_claims, true)));  // padded

  expect_rejected(make_token_from_segments(header + " ", base64url_encode(claims_with(""))));
  expect_rejected(make_token_from_segments(header, base64url_encode(claims_with("")) + "*"));

  const std::string good = make_token(kHeader, claims_with(""));
  expect_rejected(good + "=");  // padded signature
}

TEST(CryptoJwt, RejectsNonCanonicalSignatureEncoding) {
  // 32 bytes = 43 characters whose last one carries 2 unused bits. Setting them keeps the decoded
  // bytes (and so the MAC) identical, but the text differs and must not verify.
  const std::string good = make_token(kHeader, claims_with(""));
  ASSERT_TRUE(verify_hs256(good, kSecret, at_now()));
  constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string variant = good;
  const std::size_t last = kAlphabet.find(good.back());
  ASSERT_NE(last, std::string_view::npos);
  ASSERT_EQ(last & 3, 0u);
  variant.back() = kAlphabet[last | 1];
  expect_rejected(variant);
}

TEST(CryptoJwt, RejectsHeaderThatIsNotAJsonObject) {
  expect_rejected(make_token("not json", claims_with("")));
  expect_rejected(make_token(R"(["alg","HS256"])", claims_with("")));
  expect_rejected(make_token(R"("HS256")", claims_with("")));
  expect_rejected(make_token(R"({"alg":"HS256")", claims_with("")));
}

TEST(CryptoJwt, RejectsAnyAlgorithmButHs256) {
  expect_rejected(make_token(R"({"typ":"JWT"})", claims_with("")));
  for (const char* alg : {"none", "None", "HS512", "HS384", "RS256", "ES256", "hs256", ""}) {
    SCOPED_TRACE(alg);
    const std::string header = std::string(R"({"alg":")") + alg + R"(","typ":"JWT"})";
    const std::string token = make_token(header, claims_with(""));
    expect_rejected(token);
    auto claims = verify_hs256(token, kSecret, at_now());
    ASSERT_FALSE(claims);
    EXPECT_EQ(claims.error().message, "unsupported token algorithm");
  }
  expect_rejected(make_token(R"({"alg":256})", claims_with("")));
  expect_rejected(make_token(R"({"alg":["HS256"]})", claims_with("")));
  // The classic "none" attack: no signature at all.
  const std::string unsigned_token =
      base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." + base64url_encode(claims_with("")) + ".";
  expect_rejected(unsigned_token);
}

TEST(CryptoJwt, RejectsCriticalHeaderExtensions) {
  expect_rejected(make_token(R"({"alg":"HS256","crit":["exp"]})", claims_with("")));
}

TEST(CryptoJwt, RejectsBadSignature) {
  expect_rejected(make_token(kHeader, claims_with(""), "some-other-secret"));
  const std::string good = make_token(kHeader, claims_with(""));
  std::string flipped = good;
  flipped[good.size() - 10] = flipped[good.size() - 10] == 'A' ? 'B' : 'A';
  expect_rejected(flipped);
  expect_rejected(good.substr(0, good.size() - 4));  // truncated signature
  // Payload swapped after signing.
  const std::string other = make_token(kHeader, R"({"sub":"admin","exp":1700000600})");
  const std::size_t d1 = good.find('.');
  const std::size_t d2 = good.rfind('.');
  expect_rejected(good.substr(0, d1) + other.substr(other.find('.'), other.rfind('.') - other.find('.')) +
                  good.substr(d2));
  auto claims = verify_hs256(flipped, kSecret, at_now());
  ASSERT_FALSE(claims);
  EXPECT_EQ(claims.error().message, "invalid token signature");
}

TEST(CryptoJwt, RejectsPayloadThatIsNotAJsonObject) {
  expect_rejected(make_token(kHeader, "not json"));
  expect_rejected(make_token(kHeader, R"([{"exp":1700000600}])"));
  expect_rejected(make_token(kHeader, "1700000600"));
}

TEST(CryptoJwt, RejectsMissingOrNonNumericExp) {
  expect_rejected(make_token(kHeader, R"({"sub":"u1"})"));
  expect_rejected(make_token(kHeader, R"({"sub":"u1","exp":"1700000600"})"));
  expect_rejected(make_token(kHeader, R"({"sub":"u1","exp":null})"));
  expect_rejected(make_token(kHeader, R"({"sub":"u1","exp":true})"));
  auto claims = verify_hs256(make_token(kHeader, R"({"sub":"u1"})"), kSecret, at_now());
  ASSERT_FALSE(claims);
  EXPECT_EQ(claims.error().message, "token has no expiry");
  // A fractional exp is a number and is accepted.
  EXPECT_TRUE(verify_hs256(make_token(kHeader, R"({"exp":1700000600.5})"), kSecret, at_now()));
}

TEST(CryptoJwt, RejectsExpiredBeyondLeeway) {
  const std::string token = make_token(kHeader, R"({"exp":1699999990})");  // 10 s ago
  expect_rejected(token);
  expect_rejected(token, VerifyOptions{.now = kNow, .leeway_seconds = 5});
  expect_rejected(token, VerifyOptions{.now = kNow, .leeway_seconds = 10});
  EXPECT_TRUE(verify_hs256(token, kSecret, VerifyOptions{.now = kNow, .leeway_seconds = 11}));
}

TEST(CryptoJwt, RejectsNotBeforeInTheFuture) {
  const std::string token = make_token(kHeader, claims_with(R"("nbf":1700000100)"));
  expect_rejected(token);
  expect_rejected(token, VerifyOptions{.now = kNow, .leeway_seconds = 99});
  EXPECT_TRUE(verify_hs256(token, kSecret, VerifyOptions{.now = kNow, .leeway_seconds = 100}));
  EXPECT_TRUE(verify_hs256(token, kSecret, VerifyOptions{.now = kNow + 100}));
  expect_rejected(make_token(kHeader, claims_with(R"("nbf":"soon")")));
}

TEST(CryptoJwt, RejectsIssuedAtInTheFuture) {
  const std::string token = make_token(kHeader, claims_with(R"("iat":1700000030)"));
  expect_rejected(token);
  EXPECT_TRUE(verify_hs256(token, kSecret, VerifyOptions{.now = kNow, .leeway_seconds = 30}));
  EXPECT_TRUE(verify_hs256(make_token(kHeader, claims_with(R"("iat":1699999000)")), kSecret, at_now()));
  expect_rejected(make_token(kHeader, claims_with(R"("iat":"now")")));
}

TEST(CryptoJwt, RejectsIssuerMismatchWhenConfigured) {
  const std::string token = make_token(kHeader, claims_with(R"("iss":"parley")"));
  const VerifyOptions want_parley{.now = kNow, .issuer = "parley"};
  EXPECT_TRUE(verify_hs256(token, kSecret, want_parley));
  expect_rejected(token, VerifyOptions{.now = kNow, .issuer = "someone-else"});
  expect_rejected(make_token(kHeader, claims_with("")), want_parley);
  expect_rejected(make_token(kHeader, claims_with(R"("iss":["parley"])")), want_parley);
  EXPECT_TRUE(verify_hs256(token, kSecret, at_now()));  // not configured: not checked
}

TEST(CryptoJwt, RejectsAudienceMismatchWhenConfigured) {
  const VerifyOptions want_api{.now = kNow, .audience = "api"};
  EXPECT_TRUE(verify_hs256(make_token(kHeader, claims_with(R"("aud":"api")")), kSecret, want_api));
  EXPECT_TRUE(verify_hs256(make_token(kHeader, claims_with(R"("aud":["web","api"])")), kSecret, want_api));
  expect_rejected(make_token(kHeader, claims_with(R"("aud":"web")")), want_api);
  expect_rejected(make_token(kHeader, claims_with(R"("aud":["web","console"])")), want_api);
  expect_rejected(make_token(kHeader, claims_with(R"("aud":[])")), want_api);
  expect_rejected(make_token(kHeader, claims_with(R"("aud":{"api":true})")), want_api);
  expect_rejected(make_token(kHeader, claims_with("")), want_api);
  auto claims = verify_hs256(make_token(kHeader, claims_with(R"("aud":"web")")), kSecret, want_api);
  ASSERT_FALSE(claims);
  EXPECT_EQ(claims.error().message, "invalid token audience");
}

TEST(CryptoJwt, RejectsOversizedTokens) {
  const std::string big =
      make_token(kHeader, claims_with(R"("pad":")" + std::string(kMaxJwtLength, 'x') + "\""));
  expect_rejected(big);
}

TEST(CryptoJwt, RefusesToVerifyWithAnEmptySecret) {
  const std::string unsigned_by_empty = make_token(kHeader, claims_with(""), "");
  auto claims = verify_hs256(unsigned_by_empty, "", at_now());
  ASSERT_FALSE(claims);
  EXPECT_EQ(claims.error().kind, ErrorKind::kInternal);
}

}  // namespace
}  // namespace parley::crypto
