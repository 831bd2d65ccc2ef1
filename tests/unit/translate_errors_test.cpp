// Errors in Anthropic's shape, and Anthropic's errors as parley Errors.
#include <gtest/gtest.h>

#include "translate/anthropic.hpp"
#include "translate_json.hpp"

namespace parley::translate {
namespace {

namespace bj = boost::json;
using testing::json_eq;
using testing::obj;

TEST(AnthropicErrors, TypeByStatus) {
  const std::pair<int, const char*> cases[] = {{400, "invalid_request_error"},
                                               {401, "authentication_error"},
                                               {402, "billing_error"},
                                               {403, "permission_error"},
                                               {404, "not_found_error"},
                                               {405, "invalid_request_error"},
                                               {413, "request_too_large"},
                                               {422, "invalid_request_error"},
                                               {429, "rate_limit_error"},
                                               {500, "api_error"},
                                               {502, "api_error"},
                                               {503, "overloaded_error"},
                                               {504, "api_error"},
                                               {529, "overloaded_error"}};
  for (const auto& [status, type] : cases) EXPECT_EQ(anthropic_error_type(status), type) << status;
}

TEST(AnthropicErrors, AParleyErrorInAnthropicsShapeNamesItsParam) {
  EXPECT_TRUE(json_eq(
      anthropic_error(Error{ErrorKind::kValidation, "max_tokens is required", "max_tokens"}),
      R"({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens is required"}})"));
  EXPECT_TRUE(json_eq(
      anthropic_error(Error{ErrorKind::kBadRequest, "a tool needs a name", "tools[0].name"}, "req_1"),
      R"({"type":"error","error":{"type":"invalid_request_error","message":"tools[0].name: a tool needs a name"},
                          "request_id":"req_1"})"));
  EXPECT_TRUE(json_eq(anthropic_error(Error{ErrorKind::kUnauthorized, "bad key"}),
                      R"({"type":"error","error":{"type":"authentication_error","message":"bad key"}})"));
  EXPECT_TRUE(json_eq(anthropic_error(Error{ErrorKind::kForbidden, "no"}),
                      R"({"type":"error","error":{"type":"permission_error","message":"no"}})"));
  EXPECT_TRUE(json_eq(anthropic_error(Error{ErrorKind::kModelNotFound, "no such model"}),
                      R"({"type":"error","error":{"type":"not_found_error","message":"no such model"}})"));
  EXPECT_TRUE(json_eq(anthropic_error(Error{ErrorKind::kRateLimited, "slow"}),
                      R"({"type":"error","error":{"type":"rate_limit_error","message":"slow"}})"));
  EXPECT_TRUE(json_eq(anthropic_error(Error{ErrorKind::kInternal, "oops"}),
                      R"({"type":"error","error":{"type":"api_error","message":"oops"}})"));
  EXPECT_TRUE(json_eq(anthropic_error(Error{ErrorKind::kUnavailable, "busy"}),
                      R"({"type":"error","error":{"type":"overloaded_error","message":"busy"}})"));
  EXPECT_TRUE(json_eq(anthropic_error(413, "too big"),
                      R"({"type":"error","error":{"type":"request_too_large","message":"too big"}})"));
}

TEST(AnthropicErrors, AnAnthropicAnswerBecomesTheMatchingKind) {
  const bj::object body = obj(
      R"({"type":"error","error":{"type":"invalid_request_error","message":"messages: field required"}})");
  const std::pair<int, ErrorKind> cases[] = {
      {400, ErrorKind::kBadRequest},       {401, ErrorKind::kInvalidApiKey},
      {403, ErrorKind::kInvalidApiKey},    {404, ErrorKind::kModelNotFound},
      {413, ErrorKind::kPayloadTooLarge},  {422, ErrorKind::kBadRequest},
      {429, ErrorKind::kOpenAiRateLimit},  {500, ErrorKind::kOpenAiApiError},
      {503, ErrorKind::kOpenAiConnection}, {504, ErrorKind::kOpenAiTimeout},
      {529, ErrorKind::kOpenAiConnection}};
  for (const auto& [status, kind] : cases) {
    const Error e = error_from_anthropic(status, &body);
    EXPECT_EQ(e.kind, kind) << status;
    EXPECT_EQ(e.message, "messages: field required");
  }
  EXPECT_EQ(error_from_anthropic(502, nullptr).message, "the provider answered 502");
  EXPECT_EQ(error_from_anthropic(500, nullptr).kind, ErrorKind::kOpenAiApiError);
  const bj::object odd = obj(R"({"error":"just a string"})");
  EXPECT_EQ(error_from_anthropic(400, &odd).message, "the provider answered 400");
}

TEST(AnthropicErrors, AStreamErrorTypeBecomesTheMatchingKind) {
  EXPECT_EQ(error_from_anthropic_type("overloaded_error", "Overloaded").kind, ErrorKind::kOpenAiConnection);
  EXPECT_EQ(error_from_anthropic_type("rate_limit_error", "x").kind, ErrorKind::kOpenAiRateLimit);
  EXPECT_EQ(error_from_anthropic_type("api_error", "x").kind, ErrorKind::kOpenAiApiError);
  EXPECT_EQ(error_from_anthropic_type("invalid_request_error", "x").kind, ErrorKind::kBadRequest);
  EXPECT_EQ(error_from_anthropic_type("authentication_error", "x").kind, ErrorKind::kInvalidApiKey);
  EXPECT_EQ(error_from_anthropic_type("not_found_error", "x").kind, ErrorKind::kModelNotFound);
  EXPECT_EQ(error_from_anthropic_type("request_too_large", "x").kind, ErrorKind::kPayloadTooLarge);
  EXPECT_EQ(error_from_anthropic_type("timeout_error", "x").kind, ErrorKind::kOpenAiTimeout);
  EXPECT_EQ(error_from_anthropic_type("something_new", "").kind, ErrorKind::kOpenAiApiError);
  EXPECT_EQ(error_from_anthropic_type("something_new", "").message, "the provider answered something_new");
}

TEST(AnthropicErrors, TranslationErrorsRenderAsAClear400Or422) {
  Result<bj::object> r =
      anthropic_request_to_chat(obj(R"({"model":"m","messages":[{"role":"user","content":"q"}]})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status(), 422);
  EXPECT_TRUE(json_eq(
      anthropic_error(r.error()),
      R"({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens is required"}})"));
  r = anthropic_request_to_chat(obj(
      R"({"model":"m","max_tokens":1,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"q"}]})"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status(), 400);
  EXPECT_EQ(anthropic_error(r.error()).at("error").at("message").as_string().find("thinking"), 0u);
}

}  // namespace
}  // namespace parley::translate
