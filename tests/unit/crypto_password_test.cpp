#include <gtest/gtest.h>

#include <string>

#include "crypto/password.hpp"

namespace parley::crypto {
namespace {

// Cheap parameters keep the tests fast; one test uses the real defaults.
constexpr PasswordParams kFast{.ops_limit = 1, .mem_limit_bytes = 64 * 1024};

TEST(CryptoPassword, DefaultHashIsArgon2idWithOwaspParameters) {
  auto hash = hash_password("correct horse battery staple");
  ASSERT_TRUE(hash) << hash.error().message;
  EXPECT_TRUE(hash->starts_with("$argon2id$v=19$m=19456,t=2,p=1$")) << *hash;
  EXPECT_TRUE(verify_password(*hash, "correct horse battery staple"));
  EXPECT_FALSE(verify_password(*hash, "correct horse battery stapl"));
  EXPECT_FALSE(password_needs_rehash(*hash));
}

TEST(CryptoPassword, VerifyRejectsWrongPasswords) {
  auto hash = hash_password("s3cret!", kFast);
  ASSERT_TRUE(hash);
  EXPECT_TRUE(verify_password(*hash, "s3cret!"));
  EXPECT_FALSE(verify_password(*hash, "s3cret"));
  EXPECT_FALSE(verify_password(*hash, "S3cret!"));
  EXPECT_FALSE(verify_password(*hash, "s3cret!!"));
  EXPECT_FALSE(verify_password(*hash, ""));
  EXPECT_FALSE(verify_password(*hash, std::string("s3cret!\0", 8)));
}

TEST(CryptoPassword, SaltMakesEveryHashDifferent) {
  auto a = hash_password("same password", kFast);
  auto b = hash_password("same password", kFast);
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(verify_password(*a, "same password"));
  EXPECT_TRUE(verify_password(*b, "same password"));
}

TEST(CryptoPassword, EmptyAndLongPasswordsWork) {
  auto empty = hash_password("", kFast);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(verify_password(*empty, ""));
  EXPECT_FALSE(verify_password(*empty, " "));
  const std::string long_password(10000, 'p');
  auto long_hash = hash_password(long_password, kFast);
  ASSERT_TRUE(long_hash);
  EXPECT_TRUE(verify_password(*long_hash, long_password));
  EXPECT_FALSE(verify_password(*long_hash, long_password.substr(1)));
}

TEST(CryptoPassword, MalformedHashesNeverVerify) {
  auto hash = hash_password("pw", kFast);
  ASSERT_TRUE(hash);
  std::string tampered = *hash;
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_password(tampered, "pw"));
  EXPECT_FALSE(verify_password("", "pw"));
  EXPECT_FALSE(verify_password("$argon2id$", "pw"));
  EXPECT_FALSE(verify_password("plaintext-pw", "plaintext-pw"));
  EXPECT_FALSE(verify_password(std::string(500, '$'), "pw"));
  EXPECT_FALSE(verify_password(*hash + std::string("\0", 1), "pw"));
}

TEST(CryptoPassword, NeedsRehashWhenParametersOrAlgorithmDiffer) {
  auto fast = hash_password("pw", kFast);
  ASSERT_TRUE(fast);
  EXPECT_FALSE(password_needs_rehash(*fast, kFast));
  EXPECT_TRUE(password_needs_rehash(*fast));  // defaults are stronger
  EXPECT_TRUE(password_needs_rehash(*fast, PasswordParams{.ops_limit = 2, .mem_limit_bytes = 64 * 1024}));
  EXPECT_TRUE(
      password_needs_rehash("$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
                            "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"));
  EXPECT_TRUE(password_needs_rehash("not a hash"));
  EXPECT_TRUE(password_needs_rehash(""));
}

TEST(CryptoPassword, InvalidParametersFail) {
  auto hash = hash_password("pw", PasswordParams{.ops_limit = 1, .mem_limit_bytes = 0});
  ASSERT_FALSE(hash);
  EXPECT_EQ(hash.error().kind, ErrorKind::kInternal);
  EXPECT_EQ(hash.error().message.find("pw"), std::string::npos);
}

}  // namespace
}  // namespace parley::crypto
