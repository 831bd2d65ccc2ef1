// outline(): the members the gateway reads from bodies it forwards untouched, checked against
// boost::json's full parser on the same texts.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "upstream/json_outline.hpp"

namespace parley::upstream {
namespace {

std::optional<JsonOutline> scan(std::string_view text, std::vector<std::string_view> paths) {
  return outline(text, paths);
}

TEST(JsonOutline, ReadsRootMembersOfEveryKind) {
  auto o =
      scan(R"({"model":"gpt-4o","stream":true,"n":2,"t":0.5,"x":null,"messages":[{"a":1},2,[3]],"so":{}})",
           {"model", "stream", "n", "t", "x", "messages", "so", "missing"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->root, JsonKind::kObject);
  EXPECT_EQ(o->members[0].kind, JsonKind::kString);
  EXPECT_EQ(o->members[0].text, "gpt-4o");
  EXPECT_EQ(o->members[1].kind, JsonKind::kBool);
  EXPECT_TRUE(o->members[1].boolean);
  EXPECT_EQ(o->members[2].kind, JsonKind::kInt);
  EXPECT_EQ(o->members[2].integer, 2);
  EXPECT_EQ(o->members[3].kind, JsonKind::kDouble);
  EXPECT_EQ(o->members[4].kind, JsonKind::kNull);
  EXPECT_EQ(o->members[5].kind, JsonKind::kArray);
  EXPECT_EQ(o->members[5].size, 3u);
  EXPECT_EQ(o->members[6].kind, JsonKind::kObject);
  EXPECT_EQ(o->members[6].size, 0u);
  EXPECT_EQ(o->members[7].kind, JsonKind::kAbsent);
}

TEST(JsonOutline, ReadsMembersOfARootMemberObjectOnly) {
  auto o = scan(R"({"choices":[{"usage":{"total_tokens":99}}],
                    "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"deep":{"total_tokens":1}}})",
                {"usage", "usage.prompt_tokens", "usage.completion_tokens", "usage.total_tokens",
                 "usage.deep", "choices.usage"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->members[0].kind, JsonKind::kObject);
  EXPECT_EQ(o->members[0].size, 4u);
  EXPECT_EQ(o->members[1].integer, 3);
  EXPECT_EQ(o->members[2].integer, 4);
  EXPECT_EQ(o->members[3].integer, 7);  // not the 99 inside choices, not the 1 one level deeper
  EXPECT_EQ(o->members[4].kind, JsonKind::kObject);
  EXPECT_EQ(o->members[5].kind, JsonKind::kAbsent);  // choices is an array: its elements have no names
}

TEST(JsonOutline, TheLastOccurrenceOfAMemberWinsWithItsNestedMembers) {
  auto o = scan(R"({"model":"a","so":{"include_usage":true},"model":"b","so":{"other":1}})",
                {"model", "so", "so.include_usage"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->members[0].text, "b");
  EXPECT_EQ(o->members[1].kind, JsonKind::kObject);
  EXPECT_EQ(o->members[2].kind, JsonKind::kAbsent);
  EXPECT_TRUE(o->repeated);
}

TEST(JsonOutline, RepeatedSaysWhetherANamedRootMemberAppearedTwice) {
  EXPECT_FALSE(scan(R"({"model":"a","x":1,"x":2,"n":{"model":1,"model":2}})", {"model"})->repeated);
  EXPECT_TRUE(scan(R"({"model":"a","stream":true,"model":"a"})", {"model", "stream"})->repeated);
  EXPECT_TRUE(scan(R"({"stream":false,"stream":true})", {"model", "stream"})->repeated);
}

TEST(JsonOutline, UnescapesStringsAndKeys) {
  auto o = scan(R"({"mo\u0064el":"caf\u00e9 \"x\"\n","k":"\ud83d\ude00"})", {"model", "k"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->members[0].text, "caf\xc3\xa9 \"x\"\n");
  EXPECT_EQ(o->members[1].text, "\xf0\x9f\x98\x80");
}

TEST(JsonOutline, LongStringsArriveWhole) {
  std::string long_value(100'000, 'x');
  long_value[50'000] = '\\';
  long_value.insert(50'001, "n");
  std::string text = R"({"model":")" + long_value + R"("})";
  auto o = scan(text, {"model"});
  ASSERT_TRUE(o);
  std::string expected(100'000, 'x');
  expected[50'000] = '\n';
  EXPECT_EQ(o->members[0].text, expected);
}

TEST(JsonOutline, LargeUnsignedIntegersAreNotTruncated) {
  auto o = scan(R"({"a":18446744073709551615,"b":9223372036854775807,"c":-5})", {"a", "b", "c"});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->members[0].kind, JsonKind::kDouble);
  EXPECT_EQ(o->members[1].kind, JsonKind::kInt);
  EXPECT_EQ(o->members[1].integer, INT64_MAX);
  EXPECT_EQ(o->members[2].integer, -5);
}

TEST(JsonOutline, ReportsTheRootKindOfNonObjects) {
  EXPECT_EQ(scan("[1,2]", {"model"})->root, JsonKind::kArray);
  EXPECT_EQ(scan(" \"s\" ", {"model"})->root, JsonKind::kString);
  EXPECT_EQ(scan("42", {"model"})->root, JsonKind::kInt);
  EXPECT_EQ(scan("null", {"model"})->root, JsonKind::kNull);
  EXPECT_EQ(scan("[1,2]", {"model"})->members[0].kind, JsonKind::kAbsent);
}

TEST(JsonOutline, RejectsWhatTheFullParserRejects) {
  const std::vector<std::string> texts = {
      "",
      "{",
      "{\"a\":1,}",
      "{\"a\" 1}",
      "[1,]",
      "{\"a\":1} {}",
      "{\"a\":1}x",
      "nul",
      "{'a':1}",
      "{\"a\":01}",
      "{\"a\":\"\x01\"}",
      "\"\xff\"",
      "{\"a\":tru}",
      "{\"a\":1}}",
      "{\"a\":[}",
      "{\"a\":-}",
      "{\"a\":\"\\q\"}",
      std::string(40, '[') + std::string(40, ']'),
  };
  for (const std::string& text : texts) {
    boost::system::error_code ec;
    (void)boost::json::parse(text, ec);
    EXPECT_TRUE(ec) << "the full parser accepts: " << text;
    EXPECT_FALSE(scan(text, {"a"})) << text;
  }
  const std::vector<std::string> valid = {"{}", " {\"a\" : [ ] } \n", "[[[[1]]]]",
                                          "{\"a\":{\"b\":{\"c\":{}}}}", "-0.5e+3"};
  for (const std::string& text : valid) EXPECT_TRUE(scan(text, {"a", "a.b"})) << text;
}

TEST(JsonOutline, AgreesWithTheFullParserOnRealRequests) {
  const std::string text =
      R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[)"
      R"({"type":"text","text":"hi"}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],)"
      R"("stream":false,"stream_options":{"include_usage":false},"temperature":0.2,"seed":7})";
  auto o =
      scan(text, {"model", "messages", "stream", "stream_options", "stream_options.include_usage", "seed"});
  ASSERT_TRUE(o);
  boost::json::object full = boost::json::parse(text).as_object();
  EXPECT_EQ(o->members[0].text, full.at("model").as_string());
  EXPECT_EQ(o->members[1].size, full.at("messages").as_array().size());
  EXPECT_EQ(o->members[2].boolean, full.at("stream").as_bool());
  EXPECT_EQ(o->members[3].size, full.at("stream_options").as_object().size());
  EXPECT_EQ(o->members[4].boolean, full.at("stream_options").at("include_usage").as_bool());
  EXPECT_EQ(o->members[5].integer, full.at("seed").as_int64());
}

}  // namespace
}  // namespace parley::upstream
