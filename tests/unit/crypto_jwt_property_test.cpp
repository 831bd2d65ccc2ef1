// The JWT fuzz target's properties (tests/fuzz/jwt_invariants.hpp) on its seed corpus and on
// generated claims and tokens, so that every GCC build checks them.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "../fuzz/jwt_invariants.hpp"
#include "fuzz_corpus.hpp"

namespace parley::crypto {
namespace {

std::optional<std::string> check(const std::string& input) {
  return fuzz::check_jwt_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

TEST(CryptoJwtProperty, AnExpThatIsNotAFiniteNumberIsRejected) {
  // Boost.JSON 1.81 reads 0e400 as NaN; compared with NaN, no time is past the expiry.
  for (const std::string_view exp : {"0e400", "1e400", "-1e400"}) {
    const std::string input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                              base64url_encode(R"({"sub":"u1","exp":)" + std::string(exp) + "}");
    const std::string token = input + "." + base64url_encode(hmac_sha256(fuzz::kJwtKey, input));
    EXPECT_FALSE(verify_hs256(token, fuzz::kJwtKey, VerifyOptions{fuzz::kJwtNow, 0, {}, {}})) << exp;
  }
}

TEST(CryptoJwtProperty, SeedCorpusSatisfiesTheFuzzInvariants) {
  const auto corpus = test::fuzz_corpus("jwt");
  ASSERT_GE(corpus.size(), 12U);
  for (const auto& [path, input] : corpus) {
    EXPECT_EQ(check(input), std::nullopt) << path;
    for (int alg = 0; alg < 16; alg += 5) {  // other header algorithms, leeways and seeds
      std::string again = input;
      again[0] = static_cast<char>((again[0] & ~15) | alg);
      again[1] = static_cast<char>(again[1] + alg);
      EXPECT_EQ(check(again), std::nullopt) << path << " alg " << alg;
    }
  }
}

TEST(CryptoJwtProperty, GeneratedClaimsAndTokensSatisfyTheFuzzInvariants) {
  static constexpr std::array<std::string_view, 16> kPieces{
      "{",          "}",     "\"sub\":", "\"exp\":", "\"aud\":", "\"nbf\":",
      "1700000000", "\"x\"", ",",        "[1,2]",    "null",     "eyJhbGciOiJIUzI1NiJ9",
      ".",          "-_",    "\xC3\xA9", "1e308"};
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string input;
    input.push_back(static_cast<char>(rng() & 0xff));
    input.push_back(static_cast<char>(rng() & 0xff));
    const int pieces = static_cast<int>(rng() % 16);
    for (int i = 0; i < pieces; ++i) input.append(kPieces[rng() % kPieces.size()]);
    ASSERT_EQ(check(input), std::nullopt) << "round " << round;
  }
}

}  // namespace
}  // namespace parley::crypto
