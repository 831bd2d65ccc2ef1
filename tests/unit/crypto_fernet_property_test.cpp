// The Fernet fuzz target's properties (tests/fuzz/fernet_invariants.hpp) on its seed corpus and on
// generated plaintexts, times and TTLs, so that every GCC build checks them.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "../fuzz/fernet_invariants.hpp"
#include "fuzz_corpus.hpp"

namespace parley::crypto {
namespace {

std::optional<std::string> check(const std::string& input) {
  return fuzz::check_fernet_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

TEST(CryptoFernetProperty, SeedCorpusSatisfiesTheFuzzInvariants) {
  const auto corpus = test::fuzz_corpus("fernet");
  ASSERT_GE(corpus.size(), 12U);
  for (const auto& [path, input] : corpus) {
    EXPECT_EQ(check(input), std::nullopt) << path;
    for (int times = 0; times < 256; times += 37) {  // other times, TTLs and seeds
      std::string again = input;
      again[0] = static_cast<char>(times);
      again[1] = static_cast<char>(again[1] + times);
      EXPECT_EQ(check(again), std::nullopt) << path << " times " << times;
    }
  }
}

TEST(CryptoFernetProperty, GeneratedPlaintextsSatisfyTheFuzzInvariants) {
  std::mt19937 rng(99);
  for (int round = 0; round < 400; ++round) {
    std::string input;
    input.push_back(static_cast<char>(rng() & 0xff));
    input.push_back(static_cast<char>(rng() & 0xff));
    const std::size_t n = rng() % 70;
    for (std::size_t i = 0; i < n; ++i) input.push_back(static_cast<char>(rng() & 0xff));
    ASSERT_EQ(check(input), std::nullopt) << "round " << round;
  }
}

}  // namespace
}  // namespace parley::crypto
