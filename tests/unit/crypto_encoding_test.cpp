#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "crypto/encoding.hpp"

namespace parley::crypto {
namespace {

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

// RFC 4648 §10.
const std::vector<std::pair<std::string, std::string>> kRfc4648 = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(CryptoEncoding, Base64MatchesRfc4648Vectors) {
  for (const auto& [plain, encoded] : kRfc4648) {
    EXPECT_EQ(base64_encode(plain), encoded);
    auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(CryptoEncoding, Base64UrlUsesUrlAlphabetAndOptionalPadding) {
  const std::string bytes("\xfb\xff", 2);
  EXPECT_EQ(base64_encode(bytes), "+/8=");
  EXPECT_EQ(base64url_encode(bytes), "-_8");
  EXPECT_EQ(base64url_encode(bytes, true), "-_8=");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("f", true), "Zg==");
}

TEST(CryptoEncoding, RoundTripsEveryLengthAndByte) {
  const std::string bytes = all_bytes();
  for (std::size_t n = 0; n <= bytes.size(); ++n) {
    const std::string in = bytes.substr(bytes.size() - n);
    auto std_round = base64_decode(base64_encode(in));
    ASSERT_TRUE(std_round) << n;
    EXPECT_EQ(*std_round, in);
    auto url_round = base64url_decode(base64url_encode(in));
    ASSERT_TRUE(url_round) << n;
    EXPECT_EQ(*url_round, in);
    auto url_padded = base64url_decode(base64url_encode(in, true), Padding::kRequired);
    ASSERT_TRUE(url_padded) << n;
    EXPECT_EQ(*url_padded, in);
    auto hex_round = hex_decode(hex_encode(in));
    ASSERT_TRUE(hex_round) << n;
    EXPECT_EQ(*hex_round, in);
  }
}

TEST(CryptoEncoding, DecodersRejectCharactersOutsideTheAlphabet) {
  for (const char* bad : {"Zm9v*mFy", "Zm9v YmFy", "Zm9vYmFy\n", "Zm9v-mFy", "Zm9v_mFy", "Zm\x80v"}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
  for (const char* bad : {"Zm9v+mFy", "Zm9v/mFy", "Zm9v.mFy", " Zm9v", "Zm9v\r"}) {
    EXPECT_FALSE(base64url_decode(bad)) << bad;
  }
  EXPECT_FALSE(base64url_decode(std::string("Zm9v\0mFy", 8)));
}

TEST(CryptoEncoding, DecodersRejectNonCanonicalTrailingBits) {
  // "f" is "Zg"; "Zh".."Zv" carry the same 8 bits plus non-zero unused bits.
  EXPECT_TRUE(base64url_decode("Zg"));
  EXPECT_FALSE(base64url_decode("Zh"));
  EXPECT_FALSE(base64url_decode("Zv"));
  EXPECT_FALSE(base64_decode("Zh=="));
  // "fo" is "Zm8"; "Zm9" sets an unused bit.
  EXPECT_TRUE(base64url_decode("Zm8"));
  EXPECT_FALSE(base64url_decode("Zm9"));
  EXPECT_FALSE(base64_decode("Zm9="));
}

TEST(CryptoEncoding, DecodersRejectImpossibleLengthsAndBadPadding) {
  EXPECT_FALSE(base64url_decode("Zm9vY"));  // 5 chars: one dangling character
  EXPECT_FALSE(base64_decode("Zm9vY==="));  // three pad characters
  EXPECT_FALSE(base64_decode("Zg="));       // one pad where two are needed
  EXPECT_FALSE(base64_decode("Zm8=="));     // two pads where one is needed
  EXPECT_FALSE(base64_decode("Zm9v="));     // pad after a full quantum
  EXPECT_FALSE(base64_decode("Zg==Zg=="));  // pad in the middle
  EXPECT_FALSE(base64_decode("===="));
  EXPECT_FALSE(base64_decode("Zg"));       // standard decoder requires padding by default
  EXPECT_FALSE(base64url_decode("Zg=="));  // base64url forbids padding by default
  EXPECT_FALSE(base64url_decode("Zg==", Padding::kForbidden));
  EXPECT_FALSE(base64url_decode("Zg", Padding::kRequired));
}

TEST(CryptoEncoding, OptionalPaddingAcceptsBothFormsButOnlyExactPadding) {
  auto padded = base64url_decode("Zm8=", Padding::kOptional);
  auto bare = base64url_decode("Zm8", Padding::kOptional);
  ASSERT_TRUE(padded);
  ASSERT_TRUE(bare);
  EXPECT_EQ(*padded, "fo");
  EXPECT_EQ(*bare, "fo");
  EXPECT_FALSE(base64url_decode("Zm8==", Padding::kOptional));
  EXPECT_FALSE(base64url_decode("Zg=", Padding::kOptional));
}

TEST(CryptoEncoding, DecodeErrorsAreBadRequestWithoutEchoingInput) {
  auto r = base64url_decode("secret*value");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kBadRequest);
  EXPECT_EQ(r.error().message.find("secret"), std::string::npos);
}

TEST(CryptoEncoding, HexEncodesLowerCaseAndDecodesStrictly) {
  EXPECT_EQ(hex_encode(std::string("\x00\x01\xab\xff", 4)), "0001abff");
  auto upper = hex_decode("00AbFF");
  ASSERT_TRUE(upper);
  EXPECT_EQ(*upper, std::string("\x00\xab\xff", 3));
  EXPECT_FALSE(hex_decode("abc"));
  EXPECT_FALSE(hex_decode("zz"));
  EXPECT_FALSE(hex_decode("0x"));
}

}  // namespace
}  // namespace parley::crypto
