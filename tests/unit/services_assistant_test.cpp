#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "services/assistant_service.hpp"

namespace parley::services {
namespace {

TEST(SmsAnswerTest, AcceptsOneObjectInAnyDecisionCase) {
  auto a = parse_sms_answer(R"({"decision":"yes","reply_text":"Sure, see you then."})");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->decision, "yes");
  EXPECT_EQ(a->reply_text, "Sure, see you then.");
  auto b = parse_sms_answer("  \n{\"decision\": \" NO \", \"reply_text\": \"\", \"confidence\": 0.9}\n");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->decision, "no");
  EXPECT_EQ(b->reply_text, "");
  auto c = parse_sms_answer("```json\n{\"decision\":\"Yes\",\"reply_text\":\"ok\"}\n```");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->decision, "yes");
  auto d = parse_sms_answer("```\n{\"decision\":\"no\",\"reply_text\":\"later\"}```");
  ASSERT_TRUE(d);
}

TEST(SmsAnswerTest, RefusesEverythingElse) {
  for (const char* bad : {
           "",
           "yes",
           "not json",
           R"(Sure! {"decision":"yes","reply_text":"ok"})",
           R"({"decision":"yes","reply_text":"ok"} Hope that helps.)",
           R"({"decision":"maybe","reply_text":"ok"})",
           R"({"decision":true,"reply_text":"ok"})",
           R"({"reply_text":"ok"})",
           R"({"decision":"yes"})",
           R"({"decision":"yes","reply_text":42})",
           R"(["yes","ok"])",
           R"({"decision":"yes","reply_text":"ok")",
           "```json\n{\"decision\":\"yes\",\"reply_text\":\"ok\"}",
       }) {
    auto r = parse_sms_answer(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().kind, ErrorKind::kModelOutputInvalid) << bad;
      EXPECT_EQ(r.error().status(), 502);
    }
  }
  std::string long_reply = R"({"decision":"yes","reply_text":")" + std::string(1601, 'a') + "\"}";
  EXPECT_FALSE(parse_sms_answer(long_reply));
  std::string max_reply = R"({"decision":"yes","reply_text":")" + std::string(1600, 'a') + "\"}";
  EXPECT_TRUE(parse_sms_answer(max_reply));
}

TEST(SmsAnswerTest, TheRequestedFormatIsAStrictJsonSchema) {
  boost::json::value v = boost::json::parse(sms_response_format());
  EXPECT_EQ(v.at("type"), "json_schema");
  EXPECT_EQ(v.at("json_schema").at("strict"), true);
  const auto& schema = v.at("json_schema").at("schema");
  EXPECT_EQ(schema.at("properties").at("decision").at("enum"), (boost::json::array{"yes", "no"}));
  EXPECT_EQ(schema.at("additionalProperties"), false);
}

CallInput good_call() {
  CallInput c;
  c.user_id = "u";
  c.direction = "inbound";
  c.from_number = "+14155550123";
  c.to_number = "+442071838750";
  c.status = "completed";
  c.started_at = 1'700'000'000'000;
  c.ended_at = 1'700'000'125'000;
  return c;
}

std::string param_of(const Status& s) {
  return s ? std::string() : s.error().param.value_or("");
}

TEST(CallRulesTest, AcceptsAValidCall) {
  const std::int64_t now = 1'700'000'200'000;
  EXPECT_TRUE(check_call(good_call(), now));
  CallInput c = good_call();
  c.duration_seconds = 125;
  EXPECT_TRUE(check_call(c, now));
  c.status = "missed";
  c.duration_seconds = 0;
  EXPECT_TRUE(check_call(c, now));
}

TEST(CallRulesTest, NamesTheFieldThatIsWrong) {
  const std::int64_t now = 1'700'000'200'000;
  CallInput c = good_call();
  c.direction = "sideways";
  EXPECT_EQ(param_of(check_call(c, now)), "direction");
  c = good_call();
  c.from_number = "4155550123";
  EXPECT_EQ(param_of(check_call(c, now)), "from_number");
  c = good_call();
  c.to_number = "+0123";
  EXPECT_EQ(param_of(check_call(c, now)), "to_number");
  c = good_call();
  c.status = "ringing";
  EXPECT_EQ(param_of(check_call(c, now)), "status");
  c = good_call();
  c.started_at = now + 86'400'001;
  c.ended_at.reset();
  EXPECT_EQ(param_of(check_call(c, now)), "started_at");
  c = good_call();
  c.ended_at = c.started_at - 1;
  EXPECT_EQ(param_of(check_call(c, now)), "ended_at");
  c = good_call();
  c.status = "missed";
  c.duration_seconds = 3;
  EXPECT_EQ(param_of(check_call(c, now)), "duration_seconds");
  c = good_call();
  c.duration_seconds = 500;
  EXPECT_EQ(param_of(check_call(c, now)), "duration_seconds");
  c = good_call();
  c.duration_seconds = -1;
  EXPECT_EQ(param_of(check_call(c, now)), "duration_seconds");
}

TEST(HistoryCursorTest, RoundTripsAndRefusesForgeries) {
  store::HistoryCursor c{1'700'000'000'123, "sms_abc:def"};
  auto back = decode_history_cursor(encode_history_cursor(c));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->at, c.at);
  EXPECT_EQ(back->id, c.id);
  const std::string too_long(300, 'A');
  for (const char* bad : {"", "!!!", "bm9jb2xvbg", "MTIz", "LTE6eA", too_long.c_str()}) {
    auto r = decode_history_cursor(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().param, "cursor");
    }
  }
}

}  // namespace
}  // namespace parley::services
