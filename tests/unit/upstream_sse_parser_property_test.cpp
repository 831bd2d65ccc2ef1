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

namespace parley::upstream {
namespace {

std::optional<std::string> check(const std::string& input) {
  return fuzz::check_sse_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

TEST(UpstreamSseParserProperty, SeedCorpusSatisfiesTheFuzzInvariants) {
  // PARLEY_SOURCE_DIR (set by CTest) first: __FILE__ may be relative when ccache rewrites paths.
  const char* root = std::getenv("PARLEY_SOURCE_DIR");
  const std::filesystem::path dir =
      (root != nullptr ? std::filesystem::path(root) / "tests"
                       : std::filesystem::path(__FILE__).parent_path().parent_path()) /
      "fuzz" / "corpus" / "sse_parser";
  ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string input((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(check(input), std::nullopt) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 5);
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
