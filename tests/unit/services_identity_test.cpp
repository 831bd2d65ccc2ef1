// Identity services without a database: field rules, the failed-login limiter, the principal
// cache and the preference checks.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "services/login_limiter.hpp"
#include "services/preference_service.hpp"
#include "services/principal_cache.hpp"
#include "services/validate.hpp"

namespace parley::services {
namespace {

using namespace std::chrono_literals;

void expect_param(const Status& s, const char* param, const std::string& input) {
  ASSERT_FALSE(s) << '"' << input << "\" was accepted";
  EXPECT_EQ(s.error().kind, ErrorKind::kValidation) << input;
  EXPECT_EQ(s.error().param, param) << input;
}

TEST(Validate, Usernames) {
  for (const std::string& ok :
       std::vector<std::string>{"abc", "A.b-_9", std::string(32, 'z'), "user.name", "___"}) {
    EXPECT_TRUE(check_username(ok)) << ok;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "ab", std::string(33, 'z'), "has space", "semi;colon",
                                "\xC3\xBC"
                                "ber",
                                "tab\t", "a/b", "a@b"}) {
    expect_param(check_username(bad), "username", bad);
  }
}

TEST(Validate, Emails) {
  for (const std::string& ok :
       std::vector<std::string>{"a@example.com", "first.last+tag@sub.example.org", "x@a-b.co"}) {
    EXPECT_TRUE(check_email(ok)) << ok;
  }
  for (const std::string& bad : std::vector<std::string>{
           "", "plain", "a@b", "a@@b.com", "@example.com", "a@example", "a@.com", "a..b@example.com",
           ".a@example.com", "a b@example.com", "a@-x.com", "a@x-.com", std::string(65, 'a') + "@example.com",
           std::string(250, 'a') + "@e.co"}) {
    expect_param(check_email(bad), "email", bad);
  }
}

TEST(Validate, PhoneNumbersAreE164) {
  for (const std::string& ok :
       std::vector<std::string>{"+14155550123", "+442071838750", "+12", "+123456789012345"}) {
    EXPECT_TRUE(check_phone(ok)) << ok;
  }
  for (std::string bad :
       {"", "+", "+1", "14155550123", "+0123", "+1234567890123456", "+1 415", "+1-415", "+abc"}) {
    expect_param(check_phone(bad), "phone_number", bad);
  }
}

TEST(Validate, PasswordLengthCountsCharactersNotBytes) {
  EXPECT_TRUE(check_password(std::string(8, 'x')));
  EXPECT_TRUE(check_password(std::string(1024, 'x')));
  expect_param(check_password(std::string(7, 'x')), "password", "7 chars");
  expect_param(check_password(std::string(1025, 'x')), "password", "1025 chars");
  std::string eight_umlauts;
  for (int i = 0; i < 8; ++i) eight_umlauts += "\xC3\xBC";  // 16 bytes, 8 characters
  EXPECT_TRUE(check_password(eight_umlauts));
  std::string four_umlauts;
  for (int i = 0; i < 4; ++i) four_umlauts += "\xC3\xBC";  // 8 bytes, 4 characters
  expect_param(check_password(four_umlauts), "password", "4 umlauts");
}

TEST(LoginLimiter, SlowsAUsernameFromTheAddressThatFailedIgnoringCase) {
  LoginLimiter limiter({.max_failures_per_user = 3, .max_failures_per_address = 100, .window = 60s});
  auto t0 = LoginLimiter::Clock::time_point{} + 1000s;
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(limiter.blocked_for("Alice", "10.0.0.1", t0));
    limiter.record_failure(i % 2 == 0 ? "alice" : "ALICE", "10.0.0.1", t0);
  }
  auto wait = limiter.blocked_for("aLiCe", "10.0.0.1", t0);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 1s);
  // The owner, from an address that did not fail, is not held back: nobody can lock a name out.
  EXPECT_FALSE(limiter.blocked_for("alice", "10.0.0.9", t0));
  EXPECT_FALSE(limiter.blocked_for("bob", "10.0.0.1", t0));
}

TEST(LoginLimiter, EachFurtherFailureDoublesTheWaitUpToTheWindow) {
  LoginLimiter limiter({.max_failures_per_user = 2, .max_failures_per_address = 1000, .window = 60s});
  auto t = LoginLimiter::Clock::time_point{} + 1000s;
  limiter.record_failure("mallory", "203.0.113.5", t);
  limiter.record_failure("mallory", "203.0.113.5", t);
  std::vector<std::chrono::seconds> waits;
  for (int i = 0; i < 7; ++i) {
    auto wait = limiter.blocked_for("mallory", "203.0.113.5", t);
    ASSERT_TRUE(wait);
    waits.push_back(*wait);
    t += *wait;  // the client waits as asked, then fails again
    EXPECT_FALSE(limiter.blocked_for("mallory", "203.0.113.5", t));
    limiter.record_failure("mallory", "203.0.113.5", t);
  }
  EXPECT_EQ(waits, (std::vector<std::chrono::seconds>{1s, 2s, 4s, 8s, 16s, 32s, 4s}));
}

TEST(LoginLimiter, SlowsAnAddressAcrossUsernames) {
  LoginLimiter limiter({.max_failures_per_user = 100, .max_failures_per_address = 4, .window = 30s});
  auto t0 = LoginLimiter::Clock::time_point{} + 1000s;
  for (int i = 0; i < 4; ++i)
    limiter.record_failure("user" + std::to_string(i), "192.0.2.7", t0 + std::chrono::seconds(i));
  auto wait = limiter.blocked_for("someone-new", "192.0.2.7", t0 + 3s);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 1s);
  EXPECT_FALSE(limiter.blocked_for("someone-new", "192.0.2.8", t0 + 3s));
  EXPECT_FALSE(limiter.blocked_for("someone-new", "192.0.2.7", t0 + 4s));
}

TEST(LoginLimiter, SuccessClearsThePairButNotTheAddress) {
  LoginLimiter limiter({.max_failures_per_user = 2, .max_failures_per_address = 3, .window = 60s});
  auto t0 = LoginLimiter::Clock::time_point{} + 1000s;
  limiter.record_failure("carol", "198.51.100.1", t0);
  limiter.record_failure("carol", "198.51.100.1", t0);
  ASSERT_TRUE(limiter.blocked_for("carol", "198.51.100.1", t0));
  limiter.record_success("CAROL", "198.51.100.1");
  EXPECT_FALSE(limiter.blocked_for("carol", "198.51.100.1", t0));
  limiter.record_failure("dave", "198.51.100.1", t0);
  EXPECT_TRUE(limiter.blocked_for("erin", "198.51.100.1", t0));
}

TEST(LoginLimiter, RegistrationsPerAddressInASlidingWindow) {
  LoginLimiter limiter({.max_registrations_per_address = 3, .registration_window = 100s});
  auto t0 = LoginLimiter::Clock::time_point{} + 1000s;
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(limiter.admit_registration("192.0.2.1", t0 + std::chrono::seconds(i * 10)));
  auto refused = limiter.admit_registration("192.0.2.1", t0 + 25s);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->retry_after, 75s);  // the first attempt leaves the window at t0 + 100 s
  EXPECT_EQ(refused->limit, 3U);
  // A refused attempt is not counted, another address is not affected, failed logins are not mixed in.
  EXPECT_FALSE(limiter.admit_registration("192.0.2.2", t0 + 25s));
  EXPECT_FALSE(limiter.blocked_for("anyone", "192.0.2.1", t0 + 25s));
  EXPECT_TRUE(limiter.admit_registration("192.0.2.1", t0 + 99s));
  EXPECT_FALSE(limiter.admit_registration("192.0.2.1", t0 + 100s));
  EXPECT_TRUE(limiter.admit_registration("192.0.2.1", t0 + 100s));
}

TEST(LoginLimiter, BlockNamesTheExhaustedCounterAndItsLimit) {
  LoginLimiter limiter({.max_failures_per_user = 2, .max_failures_per_address = 5, .window = 60s});
  auto t0 = LoginLimiter::Clock::time_point{} + 1000s;
  EXPECT_FALSE(limiter.block("heidi", "h", t0));
  limiter.record_failure("heidi", "h", t0);
  limiter.record_failure("heidi", "h", t0);
  auto by_pair = limiter.block("heidi", "h", t0);
  ASSERT_TRUE(by_pair);
  EXPECT_EQ(by_pair->limit, 2u);
  EXPECT_EQ(by_pair->retry_after, 1s);
  for (int i = 0; i < 3; ++i) limiter.record_failure("other" + std::to_string(i), "h", t0 + 30s);
  auto by_address = limiter.block("ivan", "h", t0 + 30s);
  ASSERT_TRUE(by_address);
  EXPECT_EQ(by_address->limit, 5u);
  EXPECT_EQ(by_address->retry_after, 1s);
}

TEST(LoginLimiter, RetryAfterIsAtLeastOneSecond) {
  LoginLimiter limiter({.max_failures_per_user = 1, .max_failures_per_address = 100, .window = 10s});
  auto t0 = LoginLimiter::Clock::time_point{} + 1000s;
  limiter.record_failure("frank", "a", t0);
  auto wait = limiter.blocked_for("frank", "a", t0 + 999ms);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 1s);
}

TEST(LoginLimiter, MemoryIsBounded) {
  LoginLimiter limiter(
      {.max_failures_per_user = 5, .max_failures_per_address = 5, .window = 60s, .max_tracked_keys = 10});
  auto t0 = LoginLimiter::Clock::time_point{} + 1000s;
  for (int i = 0; i < 1000; ++i) limiter.record_failure("u" + std::to_string(i), "a" + std::to_string(i), t0);
  // Nothing to assert on the size directly; the limiter keeps working after the resets.
  for (int i = 0; i < 5; ++i) limiter.record_failure("grace", "b", t0);
  EXPECT_TRUE(limiter.blocked_for("grace", "b", t0));
}

TEST(PrincipalCache, EntriesExpireAfterTheTtl) {
  PrincipalCache cache(1000ms);
  auto t0 = PrincipalCache::Clock::time_point{} + 1000s;
  cache.put("u1", CachedUser{"alice", auth::Role::kAdmin, true}, t0);
  auto hit = cache.get("u1", t0 + 999ms);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->username, "alice");
  EXPECT_EQ(hit->role, auth::Role::kAdmin);
  EXPECT_FALSE(cache.get("u1", t0 + 1000ms));
}

TEST(PrincipalCache, InvalidateDropsTheEntry) {
  PrincipalCache cache(60'000ms);
  cache.put("u1", CachedUser{"alice", auth::Role::kUser, true});
  cache.invalidate("u1");
  EXPECT_FALSE(cache.get("u1"));
}

TEST(PrincipalCache, AReadThatRacedWithAnInvalidationIsNotCached) {
  PrincipalCache cache(60'000ms);
  std::uint64_t before_read = cache.generation();
  cache.invalidate("u1");  // e.g. the user was deactivated while the row was being read
  cache.put_if_unchanged("u1", CachedUser{"alice", auth::Role::kUser, true}, before_read);
  EXPECT_FALSE(cache.get("u1"));
  std::uint64_t now = cache.generation();
  cache.put_if_unchanged("u1", CachedUser{"alice", auth::Role::kUser, false}, now);
  auto hit = cache.get("u1");
  ASSERT_TRUE(hit);
  EXPECT_FALSE(hit->active);
}

TEST(PrincipalCache, ZeroTtlCachesNothing) {
  PrincipalCache cache(0ms);
  cache.put("u1", CachedUser{"alice", auth::Role::kUser, true});
  cache.put_if_unchanged("u2", CachedUser{"bob", auth::Role::kUser, true}, cache.generation());
  EXPECT_FALSE(cache.get("u1"));
  EXPECT_FALSE(cache.get("u2"));
}

TEST(Preferences, VoicesAndTimeouts) {
  for (const char* v : {"alloy", "echo", "fable", "onyx", "nova", "shimmer"})
    EXPECT_TRUE(is_tts_voice(v)) << v;
  for (const char* v : {"", "Alloy", "robot", "alloy "}) EXPECT_FALSE(is_tts_voice(v)) << v;
  PreferencesPatch p;
  p.conversation_timeout = 30;
  EXPECT_TRUE(check_preferences_patch(p));
  p.conversation_timeout = 86400;
  EXPECT_TRUE(check_preferences_patch(p));
  p.conversation_timeout = 29;
  expect_param(check_preferences_patch(p), "conversation_timeout", "29");
  p.conversation_timeout = 86401;
  expect_param(check_preferences_patch(p), "conversation_timeout", "86401");
  PreferencesPatch v;
  v.tts_voice = "robot";
  expect_param(check_preferences_patch(v), "tts_voice", "robot");
  PreferencesPatch l;
  l.language = "en us";
  expect_param(check_preferences_patch(l), "language", "en us");
}

TEST(Preferences, Defaults) {
  auto d = PreferenceService::defaults("u1");
  EXPECT_EQ(d.user_id, "u1");
  EXPECT_EQ(d.language, "en");
  EXPECT_EQ(d.tts_voice, "alloy");
  EXPECT_FALSE(d.auto_reply_enabled);
  EXPECT_EQ(d.conversation_timeout, 300);
  EXPECT_TRUE(d.notifications);
  EXPECT_FALSE(d.default_model);
  EXPECT_FALSE(d.system_prompt);
}

}  // namespace
}  // namespace parley::services
