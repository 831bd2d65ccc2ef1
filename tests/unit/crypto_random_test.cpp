#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crypto/random.hpp"

namespace parley::crypto {
namespace {

bool all_base62(const std::string& s) {
  return s.find_first_not_of(kBase62Alphabet) == std::string::npos;
}

TEST(CryptoRandom, RandomBytesHasRequestedLengthAndVaries) {
  EXPECT_TRUE(random_bytes(0).empty());
  const std::string a = random_bytes(32);
  const std::string b = random_bytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(b.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(random_bytes(100000).size(), 100000u);
}

TEST(CryptoRandom, Base62HasRequestedLengthAndCharset) {
  for (const std::size_t n : {0u, 1u, 7u, 22u, 40u, 63u, 64u, 65u, 1000u}) {
    const std::string s = random_base62(n);
    EXPECT_EQ(s.size(), n);
    EXPECT_TRUE(all_base62(s)) << s;
  }
}

TEST(CryptoRandom, Base62IsUniformWithoutModuloBias) {
  // With plain `byte % 62` the first 8 characters would come up 5/4 as often as the rest
  // (about 4843 vs 3875 here); rejection sampling keeps every count near 4000 (sd ~ 62).
  constexpr std::size_t kPerChar = 4000;
  const std::string s = random_base62(kBase62Alphabet.size() * kPerChar);
  std::array<std::size_t, 256> counts{};
  for (const char c : s) ++counts[static_cast<unsigned char>(c)];
  for (const char c : kBase62Alphabet) {
    const std::size_t n = counts[static_cast<unsigned char>(c)];
    EXPECT_GT(n, kPerChar - 400) << "character " << c;
    EXPECT_LT(n, kPerChar + 400) << "character " << c;
  }
}

TEST(CryptoRandom, PublicIdsAreBase62AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::string id = new_public_id();
    ASSERT_EQ(id.size(), kPublicIdLength);
    ASSERT_EQ(id.size(), 22u);
    ASSERT_TRUE(all_base62(id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 2000u);
}

TEST(CryptoRandom, ThreadsDrawDifferentIds) {
  // Each thread draws from its own pool: no two threads may be handed the same bytes.
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;  // 500 × 40 characters: several refills of each pool
  std::vector<std::vector<std::string>> drawn(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&drawn, t] {
      for (int i = 0; i < kPerThread; ++i) drawn[t].push_back(random_base62(40));
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> seen;
  for (const auto& ids : drawn) seen.insert(ids.begin(), ids.end());
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace parley::crypto
