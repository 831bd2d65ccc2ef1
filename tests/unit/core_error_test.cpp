#include <gtest/gtest.h>

#include <set>

#include "core/error.hpp"

namespace parley {
namespace {

TEST(ErrorTable, MapsKindsToPublicStatusAndCode) {
  EXPECT_EQ(error_info(ErrorKind::kValidation).status, 422);
  EXPECT_EQ(error_info(ErrorKind::kValidation).code, "VALIDATION_ERROR");
  EXPECT_EQ(error_info(ErrorKind::kInvalidJson).status, 400);
  EXPECT_EQ(error_info(ErrorKind::kInvalidJson).code, "INVALID_JSON");
  EXPECT_EQ(error_info(ErrorKind::kInternal).status, 500);
  EXPECT_EQ(error_info(ErrorKind::kInternal).code, "UNEXPECTED_ERROR");
  EXPECT_EQ(error_info(ErrorKind::kOpenAiRateLimit).status, 429);
  EXPECT_EQ(error_info(ErrorKind::kOpenAiRateLimit).code, "OPENAI_RATE_LIMIT");
  EXPECT_EQ(error_info(ErrorKind::kOpenAiConnection).status, 503);
  EXPECT_EQ(error_info(ErrorKind::kOpenAiTimeout).status, 504);
  EXPECT_EQ(error_info(ErrorKind::kInvalidApiKey).status, 400);
  EXPECT_EQ(error_info(ErrorKind::kOpenAiApiError).status, 502);
  EXPECT_EQ(error_info(ErrorKind::kApiKeyNotConfigured).code, "API_KEY_NOT_CONFIGURED");
  EXPECT_EQ(error_info(ErrorKind::kApiKeyDecryptionFailed).status, 500);
  EXPECT_EQ(error_info(ErrorKind::kHeaderTooLarge).status, 431);
  EXPECT_EQ(error_info(ErrorKind::kPayloadTooLarge).status, 413);
  EXPECT_EQ(error_info(ErrorKind::kMethodNotAllowed).status, 405);
}

TEST(ErrorTable, OnlyTransientProviderFailuresAreRetryable) {
  EXPECT_TRUE(error_info(ErrorKind::kOpenAiRateLimit).retryable);
  EXPECT_TRUE(error_info(ErrorKind::kOpenAiConnection).retryable);
  EXPECT_FALSE(error_info(ErrorKind::kInvalidApiKey).retryable);
  EXPECT_FALSE(error_info(ErrorKind::kValidation).retryable);
  EXPECT_FALSE(error_info(ErrorKind::kOpenAiTimeout).retryable);
}

TEST(ErrorTable, CodesAreUniqueAndServerErrorsLogAsErrors) {
  std::set<std::string_view> codes;
  for (int k = 0; k <= static_cast<int>(ErrorKind::kModelNotFound); ++k) {
    const ErrorInfo& info = error_info(static_cast<ErrorKind>(k));
    EXPECT_TRUE(codes.insert(info.code).second) << info.code;
    EXPECT_GE(info.status, 400);
    EXPECT_FALSE(info.type.empty());
  }
  EXPECT_EQ(error_info(ErrorKind::kInternal).log_level, LogLevel::kError);
  EXPECT_EQ(error_info(ErrorKind::kDatabase).log_level, LogLevel::kError);
}

TEST(ErrorHelpers, ValidationCarriesParam) {
  Status s = validation("email", "must be an email address");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().kind, ErrorKind::kValidation);
  EXPECT_EQ(s.error().param.value_or(""), "email");
  EXPECT_EQ(s.error().status(), 422);
}

}  // namespace
}  // namespace parley
