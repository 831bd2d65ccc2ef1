#include <gtest/gtest.h>

#include "http/router.hpp"

namespace parley::http {
namespace {

Handler noop() {
  return [](RequestContext&) -> boost::asio::awaitable<Response> { co_return Response{}; };
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router.add(Method::get, "/health", noop());
    router.add(Method::get, "/api/v1/users", noop());
    router.add(Method::post, "/api/v1/users", noop());
    router.add(Method::get, "/api/v1/users/me", noop());
    router.add(Method::get, "/api/v1/users/{user_id}", noop());
    router.add(Method::patch, "/api/v1/users/{user_id}", noop());
    router.add(Method::get, "/api/v1/users/{user_id}/preferences", noop());
    router.add(Method::get, "/api/v1/conversations/{conversation_id}/messages", noop());
  }
  Router router;
};

TEST_F(RouterTest, MatchesLiteralRoutes) {
  auto m = router.match(Method::get, "/health");
  ASSERT_TRUE(m);
  ASSERT_NE(m->handler, nullptr);
  EXPECT_EQ(m->route, "/health");
  EXPECT_TRUE(m->params.empty());
}

TEST_F(RouterTest, ExtractsAndDecodesParameters) {
  auto m = router.match(Method::get, "/api/v1/users/u%20x/preferences");
  ASSERT_TRUE(m);
  ASSERT_NE(m->handler, nullptr);
  EXPECT_EQ(m->route, "/api/v1/users/{user_id}/preferences");
  ASSERT_EQ(m->params.size(), 1U);
  EXPECT_EQ(m->params[0].name, "user_id");
  EXPECT_EQ(m->params[0].value, "u x");
}

TEST_F(RouterTest, LiteralSegmentBeatsParameter) {
  auto m = router.match(Method::get, "/api/v1/users/me");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route, "/api/v1/users/me");
  auto p = router.match(Method::patch, "/api/v1/users/me");
  ASSERT_TRUE(p);
  // PATCH only exists on the parameter route, so "me" is taken as an id there.
  EXPECT_EQ(p->route, "/api/v1/users/me");
  EXPECT_EQ(p->handler, nullptr);
}

TEST_F(RouterTest, UnknownPathIsNotFound) {
  EXPECT_FALSE(router.match(Method::get, "/nope"));
  EXPECT_FALSE(router.match(Method::get, "/api/v1/users/x/unknown"));
  EXPECT_FALSE(router.match(Method::get, "/health/"));
  EXPECT_FALSE(router.match(Method::get, "/api/v1/users//preferences"));
  EXPECT_FALSE(router.match(Method::get, "health"));
}

TEST_F(RouterTest, WrongMethodReportsAllowedMethods) {
  auto m = router.match(Method::delete_, "/api/v1/users");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->handler, nullptr);
  EXPECT_EQ(allow_header(m->allowed), "GET, HEAD, POST");
}

TEST_F(RouterTest, HeadFallsBackToGet) {
  auto m = router.match(Method::head, "/health");
  ASSERT_TRUE(m);
  EXPECT_NE(m->handler, nullptr);
}

TEST_F(RouterTest, ListsRegisteredRoutes) {
  EXPECT_EQ(router.routes().size(), 8U);
}

TEST(PercentDecode, DecodesEscapesAndKeepsInvalidOnes) {
  EXPECT_EQ(percent_decode("a%2Fb"), "a/b");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("%zz%4"), "%zz%4");
}

}  // namespace
}  // namespace parley::http
