#include "crypto/jwt.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>

#include "crypto/encoding.hpp"
#include "crypto/hash.hpp"

namespace parley::crypto {
namespace {

namespace json = boost::json;

std::unexpected<Error> reject(std::string reason = "invalid token") {
  return fail(ErrorKind::kUnauthorized, std::move(reason));
}

// Decodes a segment and parses it as a JSON object.
Result<json::object> decode_object(std::string_view segment) {
  auto text = base64url_decode(segment, Padding::kForbidden);
  if (!text) return reject();
  boost::system::error_code ec;
  json::value value = json::parse(*text, ec);
  if (ec || !value.is_object()) return reject();
  return std::move(value.as_object());
}

// A finite number. Boost.JSON reads 1e400 as infinity and 0e400 as NaN, and an exp of NaN would
// never expire (every comparison with it is false).
std::optional<double> number_claim(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double() && std::isfinite(v.get_double())) return v.get_double();
  return std::nullopt;
}

bool audience_matches(const json::value& aud, std::string_view expected) {
  if (aud.is_string()) return aud.get_string() == expected;
  if (!aud.is_array()) return false;
  for (const json::value& item : aud.get_array()) {
    if (item.is_string() && item.get_string() == expected) return true;
  }
  return false;
}

}  // namespace

std::string sign_hs256(const json::object& claims, std::string_view secret) {
  static constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";
  std::string token = base64url_encode(kHeader);
  token.push_back('.');
  token.append(base64url_encode(json::serialize(claims)));
  const std::string signature = hmac_sha256(secret, token);
  token.push_back('.');
  token.append(base64url_encode(signature));
  return token;
}

Result<json::object> verify_hs256(std::string_view token, std::string_view secret,
                                  const VerifyOptions& options) {
  if (secret.empty()) return fail(ErrorKind::kInternal, "JWT secret is not configured");
  if (token.empty() || token.size() > kMaxJwtLength) return reject();

  const std::size_t first_dot = token.find('.');
  if (first_dot == std::string_view::npos) return reject();
  const std::size_t second_dot = token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos || token.find('.', second_dot + 1) != std::string_view::npos) {
    return reject();
  }
  const std::string_view header_b64 = token.substr(0, first_dot);
  const std::string_view payload_b64 = token.substr(first_dot + 1, second_dot - first_dot - 1);
  const std::string_view signature_b64 = token.substr(second_dot + 1);
  if (header_b64.empty() || payload_b64.empty() || signature_b64.empty()) return reject();

  auto header = decode_object(header_b64);
  if (!header) return std::unexpected(std::move(header.error()));
  const json::value* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256") {
    return reject("unsupported token algorithm");
  }
  // RFC 7515 §4.1.11: extensions listed in "crit" must be understood; we understand none.
  if (header->contains("crit")) return reject("unsupported token extension");

  auto signature = base64url_decode(signature_b64, Padding::kForbidden);
  if (!signature) return reject();
  const std::string_view signing_input = token.substr(0, second_dot);
  if (!constant_time_equal(hmac_sha256(secret, signing_input), *signature)) {
    return reject("invalid token signature");
  }

  auto claims = decode_object(payload_b64);
  if (!claims) return std::unexpected(std::move(claims.error()));

  const auto now = static_cast<double>(options.now);
  const auto leeway = static_cast<double>(options.leeway_seconds);

  const json::value* exp_value = claims->if_contains("exp");
  if (exp_value == nullptr) return reject("token has no expiry");
  const std::optional<double> exp = number_claim(*exp_value);
  if (!exp) return reject();
  // RFC 7519 §4.1.4: the current time must be before exp.
  if (now >= *exp + leeway) return reject("token expired");

  if (const json::value* nbf_value = claims->if_contains("nbf")) {
    const std::optional<double> nbf = number_claim(*nbf_value);
    if (!nbf) return reject();
    if (*nbf > now + leeway) return reject("token not yet valid");
  }
  if (const json::value* iat_value = claims->if_contains("iat")) {
    const std::optional<double> iat = number_claim(*iat_value);
    if (!iat) return reject();
    if (*iat > now + leeway) return reject("token issued in the future");
  }

  if (options.issuer) {
    const json::value* iss = claims->if_contains("iss");
    if (iss == nullptr || !iss->is_string() || iss->get_string() != *options.issuer) {
      return reject("invalid token issuer");
    }
  }
  if (options.audience) {
    const json::value* aud = claims->if_contains("aud");
    if (aud == nullptr || !audience_matches(*aud, *options.audience)) return reject("invalid token audience");
  }
  return std::move(*claims);
}

}  // namespace parley::crypto
