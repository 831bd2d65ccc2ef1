// Runs the SSE fuzz target's properties (tests/fuzz/sse_parser_invariants.hpp) in every normal
// build: on the fuzz seed corpus and on streams generated from SSE building blocks.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>

#include "../fuzz/sse_parser_invariants.hpp"
#include "fuzz_corpus.hpp"

namespace parley::upstream {
namespace {

std::optional<std::string> check(const std::string& input) {
  return fuzz::check_sse_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

TEST(UpstreamSseParserProperty, SeedCorpusSatisfiesTheFuzzInvariants) {
  const auto corpus = test::fuzz_corpus("sse_parser");
  ASSERT_GE(corpus.size(), 5U);
  for (const auto& [path, input] : corpus) EXPECT_EQ(check(input), std::nullopt) << path;
}

TEST(UpstreamSseParserProperty, GeneratedStreamsSatisfyTheFuzzInvariants) {
  static constexpr std::array<std::string_view, 24> kPieces{"data:",
                                                            "data: ",
                                                            "event:",
                                                            "event: t",
                                                            "id:",
                                                            "id: 7",
                                                            "retry:",
                                                            "retry: 42",
                                                            "retry: x",
                                                            ":",
                                                            " ",
                                                            "\n",
                                                            "\r",
                                                            "\r\n",
                                                            "\n\n",
                                                            std::string_view{"\0", 1},
                                                            "\xEF\xBB\xBF",
                                                            "\xEF",
                                                            "abc",
                                                            "[DONE]",
                                                            "{\"a\":1}",
                                                            "0123456789abcdef",
                                                            "x",
                                                            "data"};
  std::mt19937 rng(4242);
  for (int round = 0; round < 3000; ++round) {
    std::string input;
    input.push_back(static_cast<char>(rng() & 0xff));  // mode and limit
    input.push_back(static_cast<char>(rng() & 0xff));  // split seed
    const int pieces = static_cast<int>(rng() % 40);
    for (int i = 0; i < pieces; ++i) {
      input.append(kPieces[rng() % kPieces.size()]);
    }
    ASSERT_EQ(check(input), std::nullopt) << "round " << round;
  }
}

}  // namespace
}  // namespace parley::upstream
