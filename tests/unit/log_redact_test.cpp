#include <gtest/gtest.h>

#include "log/log.hpp"
#include "log/redact.hpp"

namespace parley::log {
namespace {

TEST(Redact, ProviderAndServiceKeys) {
  EXPECT_EQ(redact("key sk-proj-abcdefghijklmnop end"), "key [REDACTED] end");
  EXPECT_EQ(redact("using ai_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 now"), "using [REDACTED] now");
  // Too short to be a key: left alone.
  EXPECT_EQ(redact("task sk-1 and ai_x"), "task sk-1 and ai_x");
}

TEST(Redact, BearerAndBasicCredentials) {
  EXPECT_EQ(redact("Authorization: Bearer abc.def-ghi"), "Authorization: Bearer [REDACTED]");
  EXPECT_EQ(redact("got bearer xyz123"), "got bearer [REDACTED]");
  EXPECT_EQ(redact("Basic dXNlcjpwYXNz"), "Basic [REDACTED]");
}

TEST(Redact, JwtAndFernetTokens) {
  std::string jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
  EXPECT_EQ(redact("token=" + jwt), "token=[REDACTED]");
  EXPECT_EQ(redact("t " + jwt + " x"), "t [REDACTED] x");
  std::string fernet = "gAAAAABhZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXphYmNkZWZnaGlqa2xtbm9w";
  EXPECT_EQ(redact("value " + fernet), "value [REDACTED]");
}

TEST(Redact, SecretNamedFields) {
  EXPECT_EQ(redact("password=hunter22 user=bob"), "password=[REDACTED] user=bob");
  EXPECT_EQ(redact(R"({"api_key":"abc\"def","name":"x"})"), R"({"api_key":"[REDACTED]","name":"x"})");
  EXPECT_EQ(redact("secret: s3cr3t"), "secret: [REDACTED]");
  EXPECT_EQ(redact("token_type=bearer"), "token_type=bearer");
}

TEST(Redact, UrlPasswords) {
  EXPECT_EQ(redact("postgresql://parley:pa55word@db:5432/parley"),
            "postgresql://parley:[REDACTED]@db:5432/parley");
  EXPECT_EQ(redact("http://127.0.0.1:8080/health"), "http://127.0.0.1:8080/health");
}

TEST(Redact, LeavesOrdinaryTextAlone) {
  std::string line = "access method=GET route=/health status=200 duration_ms=0.1 bytes=33";
  EXPECT_EQ(redact(line), line);
  EXPECT_FALSE(needs_redaction(line));
  EXPECT_TRUE(needs_redaction("sk-abcdefghijklmnopqrstu"));
}

TEST(JsonEscape, EscapesControlAndQuotes) {
  EXPECT_EQ(json_escape("a\"b\\c\nd\x01"), "a\\\"b\\\\c\\nd\\u0001");
}

}  // namespace
}  // namespace parley::log
