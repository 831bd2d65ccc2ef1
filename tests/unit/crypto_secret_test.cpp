#include <fmt/format.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "crypto/secret.hpp"

namespace parley::crypto {
namespace {

template <class T>
concept Streamable = requires(std::ostream& os, const T& t) {
  os << t;
};

// The accidents the type exists to prevent must not compile.
static_assert(!Streamable<Secret>);
static_assert(!std::is_convertible_v<Secret, std::string>);
static_assert(!std::is_convertible_v<Secret, std::string_view>);
static_assert(!std::is_convertible_v<std::string, Secret>);
static_assert(std::is_copy_constructible_v<Secret> && std::is_nothrow_move_constructible_v<Secret>);

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";

TEST(CryptoSecret, FormatsAsRedacted) {
  const Secret s("sk-live-abcdef123456");
  EXPECT_EQ(fmt::format("{}", s), "[redacted]");
  EXPECT_EQ(fmt::format("key={}!", s), "key=[redacted]!");
  EXPECT_EQ(fmt::format("{:>12}", s), "  [redacted]");
  EXPECT_EQ(fmt::format("{}", s).find("abcdef"), std::string::npos);
}

TEST(CryptoSecret, RevealReturnsTheValue) {
  const Secret s(std::string("hunter2"));
  EXPECT_EQ(s.reveal(), "hunter2");
  EXPECT_EQ(s.size(), 7u);
  EXPECT_FALSE(s.empty());
  EXPECT_TRUE(Secret().empty());
}

TEST(CryptoSecret, CopiesAreIndependentAndMovesEmptyTheSource) {
  Secret a("first-secret-value-longer-than-sso");
  Secret b = a;
  EXPECT_EQ(b.reveal(), a.reveal());

  Secret c = std::move(a);
  EXPECT_EQ(c.reveal(), "first-secret-value-longer-than-sso");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract says wiped and empty

  Secret d("short");
  d = std::move(c);
  EXPECT_EQ(d.reveal(), "first-secret-value-longer-than-sso");
  EXPECT_TRUE(c.empty());  // NOLINT(bugprone-use-after-move)

  d = Secret("x");
  EXPECT_EQ(d.reveal(), "x");
  b = d;
  EXPECT_EQ(b.reveal(), "x");
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(d.reveal(), "x");
}

TEST(CryptoSecret, MaskShowsThreeLeadingAndFourTrailingForLongSecrets) {
  EXPECT_EQ(mask_secret("sk-proj-abcdefghijklmnopqrstuvwxyz0123abcd"),
            "sk-" + std::string(kEllipsis) + "abcd");
  EXPECT_EQ(mask_secret("ai_0123456789abcdefghij"), "ai_" + std::string(kEllipsis) + "ghij");
}

TEST(CryptoSecret, MaskShowsLessForShorterSecrets) {
  const std::string e(kEllipsis);
  EXPECT_EQ(mask_secret("abcdefghijklmnopqrstu"), "abc" + e + "rstu");  // 21
  EXPECT_EQ(mask_secret("abcdefghijklmnopqr"), "ab" + e + "opqr");      // 18
  EXPECT_EQ(mask_secret("abcdefghijklmno"), "a" + e + "lmno");          // 15
  EXPECT_EQ(mask_secret("abcdefghijkl"), e + "ijkl");                   // 12
  EXPECT_EQ(mask_secret("abcdefghijk"), e + "jk");                      // 11
  EXPECT_EQ(mask_secret("abcdef"), e + "ef");                           // 6
  EXPECT_EQ(mask_secret("abcde"), e);
  EXPECT_EQ(mask_secret("a"), e);
  EXPECT_EQ(mask_secret(""), "");
  EXPECT_EQ(mask_secret("p\xC3\xA4ssw\xC3\xB6rd-with-umlauts-long"), e);
}

TEST(CryptoSecret, MaskNeverShowsMoreThanAThirdOrSevenCharacters) {
  const std::string source = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#";
  for (std::size_t n = 1; n <= source.size(); ++n) {
    const std::string secret = source.substr(0, n);
    const std::string masked = mask_secret(secret);
    const std::size_t at = masked.find(kEllipsis);
    ASSERT_NE(at, std::string::npos) << n;
    const std::string head = masked.substr(0, at);
    const std::string tail = masked.substr(at + kEllipsis.size());
    EXPECT_LE(head.size() + tail.size(), n / 3) << n;
    EXPECT_LE(head.size(), 3u) << n;
    EXPECT_LE(tail.size(), 4u) << n;
    EXPECT_TRUE(secret.starts_with(head)) << n;
    EXPECT_TRUE(secret.ends_with(tail)) << n;
  }
}

}  // namespace
}  // namespace parley::crypto
