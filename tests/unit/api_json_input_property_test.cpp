// Reading JSON request bodies: examples of the strict UTF-8 count and the outline of two-level
// containers, and the JSON input fuzz target's properties (tests/fuzz/json_input_invariants.hpp)
// on its seed corpus and on generated bodies, so that every GCC build checks them.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "../fuzz/json_input_invariants.hpp"
#include "fuzz_corpus.hpp"

namespace parley::api {
namespace {

std::optional<std::string> check(const std::string& input) {
  return fuzz::check_json_input(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

TEST(ApiJsonInput, Utf8LengthCountsOnlyWellFormedUtf8) {
  EXPECT_EQ(utf8_length("h\xC3\xA9llo \xE4\xB8\x96 \xF0\x9F\x98\x80"), 9U);
  EXPECT_EQ(utf8_length("\xF4\x8F\xBF\xBF"), 1U);            // U+10FFFF
  EXPECT_EQ(utf8_length("\xF4\x90\x80\x80"), std::nullopt);  // past U+10FFFF
  EXPECT_EQ(utf8_length("\xC0\x80"), std::nullopt);          // overlong NUL
  EXPECT_EQ(utf8_length("\xE0\x80\xAF"), std::nullopt);      // overlong '/'
  EXPECT_EQ(utf8_length("\xF0\x80\x80\xAF"), std::nullopt);  // overlong '/'
  EXPECT_EQ(utf8_length("\xED\xA0\x80"), std::nullopt);      // a UTF-16 surrogate
  EXPECT_EQ(utf8_length("\xE2\x82"), std::nullopt);          // cut short
}

TEST(ApiJsonInput, OutlineGivesTheSizeOfASecondLevelContainer) {
  static constexpr std::string_view kPaths[] = {"a.b", "a.c"};
  auto doc = upstream::outline(R"({"a":{"b":{"x":1,"y":[1,2]},"c":[1,2,3]}})", kPaths);
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->members[0].kind, upstream::JsonKind::kObject);
  EXPECT_EQ(doc->members[0].size, 2U);
  EXPECT_EQ(doc->members[1].kind, upstream::JsonKind::kArray);
  EXPECT_EQ(doc->members[1].size, 3U);
}

TEST(ApiJsonInputProperty, SeedCorpusSatisfiesTheFuzzInvariants) {
  const auto corpus = test::fuzz_corpus("json_input");
  ASSERT_GE(corpus.size(), 12U);
  for (const auto& [path, input] : corpus) {
    EXPECT_EQ(check(input), std::nullopt) << path;
    for (int rules = 1; rules < 256; rules += 51) {  // other content types, rules and bounds
      std::string again = input;
      again[0] = static_cast<char>(again[0] + rules);
      again[1] = static_cast<char>(again[1] + rules);
      EXPECT_EQ(check(again), std::nullopt) << path << " rules +" << rules;
    }
  }
}

TEST(ApiJsonInputProperty, GeneratedBodiesSatisfyTheFuzzInvariants) {
  static constexpr std::array<std::string_view, 26> kPieces{"{",
                                                            "}",
                                                            "[",
                                                            "]",
                                                            ",",
                                                            ":",
                                                            "\"name\"",
                                                            "\"n\"",
                                                            "\"x\"",
                                                            "\"model\"",
                                                            "\"a\"",
                                                            "\"b\"",
                                                            "\" p \"",
                                                            "\"\\n\"",
                                                            "\"\\u00e9\"",
                                                            "\"\x7f\"",
                                                            "1",
                                                            "-0.5",
                                                            "1e3",
                                                            "true",
                                                            "null",
                                                            " ",
                                                            "\"\xC3\xA9\"",
                                                            "\"\\ud83d\\ude00\"",
                                                            "99999999999999999999",
                                                            "\"\xF0\x9F\x98\x80\""};
  std::mt19937 rng(2026);
  for (int round = 0; round < 4000; ++round) {
    std::string input;
    input.push_back(static_cast<char>(rng() & 0xff));
    input.push_back(static_cast<char>(rng() & 0xff));
    // Mostly well-formed objects: a key/value list, sometimes with a stray piece.
    input.append("{");
    const int members = static_cast<int>(rng() % 6);
    for (int i = 0; i < members; ++i) {
      if (i > 0) input.append(",");
      input.append(kPieces[6 + rng() % 8]);
      input.append(":");
      const int pieces = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < pieces; ++k) input.append(kPieces[rng() % kPieces.size()]);
    }
    input.append("}");
    ASSERT_EQ(check(input), std::nullopt) << "round " << round;
  }
}

}  // namespace
}  // namespace parley::api
