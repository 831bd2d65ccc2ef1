#include <gtest/gtest.h>

#include <set>
#include <string>

#include "crypto/api_key.hpp"
#include "crypto/random.hpp"

namespace parley::crypto {
namespace {

TEST(CryptoApiKey, GeneratedKeysHaveTheDocumentedShape) {
  std::set<std::string> seen;
  for (int i = 0; i < 500; ++i) {
    const std::string key = generate_service_key();
    ASSERT_EQ(key.size(), 43u);
    ASSERT_TRUE(key.starts_with("ai_")) << key;
    ASSERT_EQ(key.find_first_not_of(kBase62Alphabet, 3), std::string::npos) << key;
    ASSERT_TRUE(looks_like_service_key(key)) << key;
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), 500u);
}

TEST(CryptoApiKey, HashIsLowerCaseHexSha256OfTheWholeKey) {
  EXPECT_EQ(hash_service_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string key = generate_service_key();
  const std::string hash = hash_service_key(key);
  EXPECT_EQ(hash.size(), 64u);
  EXPECT_EQ(hash.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(hash, hash_service_key(key));
  EXPECT_NE(hash, hash_service_key(key.substr(3)));
}

TEST(CryptoApiKey, DisplayPrefixIsTheFirstTenCharacters) {
  EXPECT_EQ(service_key_display_prefix("ai_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"), "ai_AbCdEfG");
  const std::string key = generate_service_key();
  EXPECT_EQ(service_key_display_prefix(key), key.substr(0, 10));
  EXPECT_EQ(service_key_display_prefix("ai_x"), "ai_x");
}

TEST(CryptoApiKey, LooksLikeServiceKeyChecksPrefixLengthAndCharset) {
  const std::string good = "ai_" + std::string(40, 'Z');
  EXPECT_TRUE(looks_like_service_key(good));
  EXPECT_FALSE(looks_like_service_key(""));
  EXPECT_FALSE(looks_like_service_key("ai_"));
  EXPECT_FALSE(looks_like_service_key(good.substr(0, 42)));
  EXPECT_FALSE(looks_like_service_key(good + "Z"));
  EXPECT_FALSE(looks_like_service_key("sk_" + std::string(40, 'Z')));
  EXPECT_FALSE(looks_like_service_key("AI_" + std::string(40, 'Z')));
  EXPECT_FALSE(looks_like_service_key("ai_" + std::string(39, 'Z') + "-"));
  EXPECT_FALSE(looks_like_service_key("ai_" + std::string(39, 'Z') + "_"));
  EXPECT_FALSE(looks_like_service_key("ai_" + std::string(39, 'Z') + " "));
}

}  // namespace
}  // namespace parley::crypto
