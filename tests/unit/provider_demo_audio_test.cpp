#include <gtest/gtest.h>

#include "provider/demo_audio.hpp"

namespace parley::provider {
namespace {

TEST(DemoAudioTest, WavCarriesTheTextAndIsValid) {
  std::string wav = demo_wav("Hello there, how are you?");
  ASSERT_GE(wav.size(), 44U);
  EXPECT_EQ(wav.substr(0, 4), "RIFF");
  EXPECT_EQ(wav.substr(8, 4), "WAVE");
  // The RIFF size covers the rest of the file.
  const auto riff = static_cast<std::uint32_t>(static_cast<unsigned char>(wav[4])) |
                    static_cast<std::uint32_t>(static_cast<unsigned char>(wav[5])) << 8 |
                    static_cast<std::uint32_t>(static_cast<unsigned char>(wav[6])) << 16 |
                    static_cast<std::uint32_t>(static_cast<unsigned char>(wav[7])) << 24;
  EXPECT_EQ(riff, wav.size() - 8);
  EXPECT_EQ(wav_comment(wav), "Hello there, how are you?");
  EXPECT_GT(wav_seconds(wav), 0.25);
  EXPECT_LE(wav_seconds(wav), 1.0);
}

TEST(DemoAudioTest, LengthFollowsTheTextUpToOneSecond) {
  EXPECT_LT(wav_seconds(demo_wav("a")), wav_seconds(demo_wav("a longer sentence")));
  EXPECT_DOUBLE_EQ(wav_seconds(demo_wav(std::string(500, 'x'))), 1.0);
}

TEST(DemoAudioTest, OddLengthTextsAndNonWavBytes) {
  EXPECT_EQ(wav_comment(demo_wav("ab")), "ab");
  EXPECT_EQ(wav_comment(demo_wav("abc")), "abc");
  EXPECT_EQ(wav_comment(demo_wav("")), "");
  EXPECT_FALSE(wav_comment("not a wav file at all"));
  EXPECT_FALSE(wav_comment(""));
  EXPECT_DOUBLE_EQ(wav_seconds("RIFF"), 0.0);
  std::string truncated = demo_wav("hello").substr(0, 40);
  EXPECT_FALSE(wav_comment(truncated));
}

}  // namespace
}  // namespace parley::provider
