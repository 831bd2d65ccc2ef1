// The provider layer without a network: usage extraction from responses and stream chunks, which
// provider answers the gateway relays, and the built-in demo provider's chat, stream and embeddings.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "provider/demo_provider.hpp"
#include "provider/provider.hpp"
#include "run_awaitable.hpp"

namespace parley::provider {
namespace {

namespace asio = boost::asio;
namespace bj = boost::json;

using test::run;

TEST(ProviderUsage, ReadsUsageFromACompletionOrAChunk) {
  auto u = usage_of(
      R"({"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->prompt_tokens, 3);
  EXPECT_EQ(u->completion_tokens, 4);
  EXPECT_EQ(u->total_tokens, 7);
  auto spaced = usage_of(R"({"usage" : {"prompt_tokens": 2, "completion_tokens": 5}})");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->total_tokens, 7) << "a missing total is the sum";
}

TEST(ProviderUsage, NullMissingOrMalformedUsageIsNone) {
  EXPECT_FALSE(usage_of(R"({"choices":[{"delta":{"content":"hi"}}],"usage":null})"));
  EXPECT_FALSE(usage_of(R"({"choices":[{"delta":{"content":"the \"usage\": {"}}]})"));
  EXPECT_FALSE(usage_of(R"({"usage":{"prompt_tokens":1)"));
  EXPECT_FALSE(usage_of("not json"));
}

TEST(ProviderUsage, OnlyTheProvidersVerdictOnTheRequestIsRelayed) {
  for (unsigned s : {400U, 404U, 409U, 413U, 422U}) EXPECT_TRUE(is_relayable_rejection(s)) << s;
  for (unsigned s : {200U, 401U, 403U, 429U, 500U, 502U, 503U, 504U})
    EXPECT_FALSE(is_relayable_rejection(s)) << s;
}

TEST(DemoProvider, ChatAnswersDeterministicallyWithUsage) {
  DemoProvider demo;
  auto res = run(demo.post({}, "/chat/completions",
                           R"({"model":"demo","messages":[{"role":"user","content":"hello  there"}]})"));
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->ok());
  bj::value v = bj::parse(res->body);
  EXPECT_EQ(v.at("choices").at(0).at("message").at("content").as_string(),
            "This is the parley demo model. You said: hello there");
  ASSERT_TRUE(res->usage);
  EXPECT_EQ(res->usage->prompt_tokens, 2);
  EXPECT_EQ(res->usage->total_tokens, res->usage->prompt_tokens + res->usage->completion_tokens);
}

TEST(DemoProvider, StreamSendsChunksThenAUsageChunk) {
  DemoProvider demo;
  std::vector<std::string> events;
  EventSink sink = [&](std::string_view data) -> asio::awaitable<bool> {
    events.emplace_back(data);
    co_return true;
  };
  auto out = run(demo.post_stream(
      {}, "/chat/completions",
      R"({"model":"demo","messages":[{"role":"user","content":"a b"}],"stream":true})", sink));
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->rejected());
  ASSERT_GE(events.size(), 3U);
  std::string text;
  for (const auto& e : events) {
    bj::value v = bj::parse(e);
    const auto& choices = v.at("choices").as_array();
    if (!choices.empty() && choices[0].at("delta").as_object().contains("content"))
      text += choices[0].at("delta").at("content").as_string();
  }
  EXPECT_EQ(text, "This is the parley demo model. You said: a b");
  auto usage = usage_of(events.back());
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->prompt_tokens, 2);
}

TEST(DemoProvider, EmbeddingsAreUnitVectorsEqualForEqualTexts) {
  DemoProvider demo;
  auto res =
      run(demo.post({}, "/embeddings", R"({"model":"demo","input":["x y","x y","z"],"dimensions":16})"));
  ASSERT_TRUE(res);
  ASSERT_TRUE(res->ok()) << res->body;
  bj::value v = bj::parse(res->body);
  const auto& data = v.at("data").as_array();
  ASSERT_EQ(data.size(), 3U);
  auto vec = [&](std::size_t i) {
    std::vector<double> out;
    for (const auto& x : data[i].at("embedding").as_array()) out.push_back(x.to_number<double>());
    return out;
  };
  EXPECT_EQ(vec(0).size(), 16U);
  EXPECT_EQ(vec(0), vec(1));
  EXPECT_NE(vec(0), vec(2));
  double norm = 0;
  for (double x : vec(2)) norm += x * x;
  EXPECT_NEAR(norm, 1.0, 1e-9);
  ASSERT_TRUE(res->usage);
  EXPECT_EQ(res->usage->prompt_tokens, 5);
}

TEST(DemoProvider, BadRequestsAreRejectionsNotErrors) {
  DemoProvider demo;
  auto bad = run(demo.post({}, "/embeddings", R"({"model":"demo","input":[1,2]})"));
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400U);
  EXPECT_TRUE(bj::parse(bad->body).at("error").is_object());
  auto unknown = run(demo.post({}, "/audio/speech", "{}"));
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404U);
  EventSink sink = [](std::string_view) -> asio::awaitable<bool> { co_return true; };
  auto stream = run(demo.post_stream({}, "/chat/completions", "not json", sink));
  ASSERT_TRUE(stream);
  EXPECT_TRUE(stream->rejected());
  EXPECT_EQ(stream->status, 400U);
}

}  // namespace
}  // namespace parley::provider
