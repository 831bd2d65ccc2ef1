#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "upstream/retry_policy.hpp"

namespace parley::upstream {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

constexpr milliseconds kPlentyOfTime = 10min;

Rng constant(double value) {
  return [value] { return value; };
}

RetryConfig no_jitter() {
  RetryConfig config;
  config.jitter = 0.0;
  return config;
}

RetryDecision decide_status(const RetryConfig& config, int attempt, int status,
                            const Rng& rng = constant(0.5)) {
  return decide(config, attempt, FailureKind::kHttpStatus, status, std::nullopt, false, kPlentyOfTime, rng);
}

// Replays a sequence of provider outcomes (0 = success) through the policy and returns the delays
// slept before each retry and the number of attempts made.
struct Schedule {
  std::vector<milliseconds> delays;
  int attempts = 0;
  bool succeeded = false;
};

Schedule simulate(const RetryConfig& config, const std::vector<int>& statuses, const Rng& rng) {
  Schedule run;
  for (int attempt = 0;; ++attempt) {
    ++run.attempts;
    const int status = statuses[std::min<std::size_t>(attempt, statuses.size() - 1)];
    if (status == 200) {
      run.succeeded = true;
      return run;
    }
    const RetryDecision d = decide_status(config, attempt, status, rng);
    if (!d.retry) return run;
    run.delays.push_back(d.delay);
  }
}

TEST(UpstreamRetryPolicy, RateLimitedTwiceThenOkSucceedsAfterTwoGrowingDelays) {
  const Schedule run = simulate(RetryConfig{}, {429, 429, 200}, make_rng(7));
  EXPECT_TRUE(run.succeeded);
  EXPECT_EQ(run.attempts, 3);
  ASSERT_EQ(run.delays.size(), 2u);
  // ±20 % around 1 s and 2 s: the ranges do not overlap, so the delays always grow.
  EXPECT_GE(run.delays[0], 800ms);
  EXPECT_LE(run.delays[0], 1200ms);
  EXPECT_GE(run.delays[1], 1600ms);
  EXPECT_LE(run.delays[1], 2400ms);
  EXPECT_GT(run.delays[1], run.delays[0]);
}

TEST(UpstreamRetryPolicy, RetriesRateLimitServerErrorsAndNetworkFailuresBeforeAnyByte) {
  const RetryConfig config = no_jitter();
  for (const int status : {429, 500, 502, 503, 504, 529}) {
    const RetryDecision d = decide_status(config, 0, status);
    EXPECT_TRUE(d.retry) << status;
    EXPECT_EQ(d.delay, 1000ms) << status;
    EXPECT_EQ(d.reason, status == 429 ? "rate_limited" : "server_error") << status;
  }
  const Rng rng = constant(0.5);
  const RetryDecision connect =
      decide(config, 0, FailureKind::kConnect, 0, std::nullopt, false, kPlentyOfTime, rng);
  EXPECT_TRUE(connect.retry);
  EXPECT_EQ(connect.reason, "connect");
  const RetryDecision reset =
      decide(config, 1, FailureKind::kReset, 0, std::nullopt, false, kPlentyOfTime, rng);
  EXPECT_TRUE(reset.retry);
  EXPECT_EQ(reset.delay, 2000ms);
  EXPECT_EQ(reset.reason, "reset");
}

TEST(UpstreamRetryPolicy, NeverRetriesClientErrorsOrOtherStatuses) {
  for (const int status : {400, 401, 403, 404, 422, 408, 409, 413, 501, 505, 599, 200, 302, 0}) {
    const RetryDecision d = decide_status(RetryConfig{}, 0, status);
    EXPECT_FALSE(d.retry) << status;
    EXPECT_EQ(d.reason, "status_not_retryable") << status;
  }
  // Each of them reaches the provider exactly once.
  for (const int status : {400, 401, 403, 404, 422}) {
    EXPECT_EQ(simulate(RetryConfig{}, {status, 200}, make_rng(1)).attempts, 1) << status;
  }
}

TEST(UpstreamRetryPolicy, NeverRetriesAttemptTimeoutsOrMalformedResponses) {
  const Rng rng = constant(0.5);
  const RetryDecision timeout =
      decide(RetryConfig{}, 0, FailureKind::kTimeout, 0, std::nullopt, false, kPlentyOfTime, rng);
  EXPECT_FALSE(timeout.retry);
  EXPECT_EQ(timeout.reason, "timeout");
  const RetryDecision malformed =
      decide(RetryConfig{}, 0, FailureKind::kMalformed, 200, std::nullopt, false, kPlentyOfTime, rng);
  EXPECT_FALSE(malformed.retry);
  EXPECT_EQ(malformed.reason, "malformed");
}

TEST(UpstreamRetryPolicy, MakesAtMostMaxRetriesPlusOneAttempts) {
  const Schedule run = simulate(no_jitter(), {503}, make_rng(1));
  EXPECT_FALSE(run.succeeded);
  EXPECT_EQ(run.attempts, 4);
  EXPECT_EQ(run.delays, (std::vector<milliseconds>{1000ms, 2000ms, 4000ms}));
  EXPECT_EQ(decide_status(RetryConfig{}, 3, 503).reason, "max_retries");

  RetryConfig none;
  none.max_retries = 0;
  EXPECT_EQ(simulate(none, {503}, make_rng(1)).attempts, 1);
  RetryConfig five = no_jitter();
  five.max_retries = 5;
  EXPECT_EQ(simulate(five, {500}, make_rng(1)).attempts, 6);
  // A fourth attempt that succeeds is still allowed.
  EXPECT_TRUE(simulate(RetryConfig{}, {503, 503, 503, 200}, make_rng(1)).succeeded);
}

TEST(UpstreamRetryPolicy, BackoffDoublesFromTheBaseAndStopsAtTheCap) {
  const RetryConfig config = no_jitter();
  const Rng rng = constant(0.5);
  const std::vector<milliseconds> expected{1000ms, 2000ms, 4000ms, 8000ms, 8000ms, 8000ms};
  for (int attempt = 0; attempt < static_cast<int>(expected.size()); ++attempt) {
    EXPECT_EQ(backoff_delay(config, attempt, rng), expected[attempt]) << attempt;
  }
  EXPECT_EQ(backoff_delay(config, 1000, rng), 8000ms);  // no overflow
  EXPECT_EQ(backoff_delay(config, std::numeric_limits<int>::max(), rng), 8000ms);

  RetryConfig scaled = no_jitter();  // as the integration tests scale it down
  scaled.base_delay = 10ms;
  scaled.max_delay = 80ms;
  EXPECT_EQ(backoff_delay(scaled, 2, rng), 40ms);
  RetryConfig base_over_cap = no_jitter();
  base_over_cap.base_delay = 20s;
  EXPECT_EQ(backoff_delay(base_over_cap, 0, rng), 8000ms);
  RetryConfig huge = no_jitter();
  huge.base_delay = milliseconds{std::numeric_limits<milliseconds::rep>::max() / 3};
  huge.max_delay = milliseconds{std::numeric_limits<milliseconds::rep>::max() / 2};
  EXPECT_EQ(backoff_delay(huge, 5, rng), kMaxBackoffDelay);
  huge.jitter = 0.2;  // jitter on top of the largest delay: no overflow
  EXPECT_EQ(backoff_delay(huge, 5, constant(0.75)), kMaxBackoffDelay + kMaxBackoffDelay / 10);
}

TEST(UpstreamRetryPolicy, JitterStaysWithinItsBounds) {
  const RetryConfig config;  // ±20 %
  EXPECT_EQ(backoff_delay(config, 0, constant(0.0)), 800ms);
  EXPECT_EQ(backoff_delay(config, 0, constant(0.5)), 1000ms);
  EXPECT_LE(backoff_delay(config, 0, constant(std::nextafter(1.0, 0.0))), 1200ms);
  EXPECT_EQ(backoff_delay(config, 3, constant(0.0)), 6400ms);  // jitter applies at the cap too

  const Rng rng = make_rng(99);
  for (int attempt = 0; attempt < 4; ++attempt) {
    const double nominal = 1000.0 * (1 << std::min(attempt, 3));
    milliseconds lo = milliseconds::max();
    milliseconds hi = milliseconds::min();
    for (int i = 0; i < 2000; ++i) {
      const milliseconds d = backoff_delay(config, attempt, rng);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    EXPECT_GE(lo.count(), std::llround(nominal * 0.8)) << attempt;
    EXPECT_LE(hi.count(), std::llround(nominal * 1.2)) << attempt;
    // And it really spreads over the whole range.
    EXPECT_LT(lo.count(), std::llround(nominal * 0.82)) << attempt;
    EXPECT_GT(hi.count(), std::llround(nominal * 1.18)) << attempt;
  }
}

TEST(UpstreamRetryPolicy, OutOfRangeRandomNumbersAndJitterAreClamped) {
  const RetryConfig config;
  EXPECT_EQ(backoff_delay(config, 0, constant(5.0)), 1200ms);
  EXPECT_EQ(backoff_delay(config, 0, constant(-1.0)), 800ms);
  EXPECT_EQ(backoff_delay(config, 0, constant(std::nan(""))), 800ms);
  EXPECT_EQ(backoff_delay(config, 0, Rng{}), 1000ms);  // no Rng: no jitter
  RetryConfig wild;
  wild.jitter = 3.0;  // treated as ±100 %
  EXPECT_EQ(backoff_delay(wild, 0, constant(0.0)), 0ms);
  wild.jitter = -1.0;  // treated as none
  EXPECT_EQ(backoff_delay(wild, 0, constant(0.0)), 1000ms);
}

TEST(UpstreamRetryPolicy, SeededRngsGiveIdenticalSchedules) {
  const Schedule a = simulate(RetryConfig{}, {503}, make_rng(12345));
  const Schedule b = simulate(RetryConfig{}, {503}, make_rng(12345));
  const Schedule c = simulate(RetryConfig{}, {503}, make_rng(54321));
  EXPECT_EQ(a.delays, b.delays);
  EXPECT_NE(a.delays, c.delays);
}

TEST(UpstreamRetryPolicy, RetryAfterRaisesTheDelayUpToItsCap) {
  const RetryConfig config = no_jitter();
  const Rng rng = constant(0.5);
  auto with_retry_after = [&](const RetryConfig& c, int attempt, milliseconds retry_after) {
    return decide(c, attempt, FailureKind::kHttpStatus, 429, retry_after, false, kPlentyOfTime, rng);
  };
  EXPECT_EQ(with_retry_after(config, 0, 5s).delay, 5000ms);
  EXPECT_EQ(with_retry_after(config, 0, 500ms).delay, 1000ms);  // the backoff is longer
  EXPECT_EQ(with_retry_after(config, 2, 3s).delay, 4000ms);
  EXPECT_EQ(with_retry_after(config, 0, 120s).delay, 30000ms);  // capped
  EXPECT_EQ(with_retry_after(config, 0, -5s).delay, 1000ms);    // nonsense is ignored
  RetryConfig small_cap = no_jitter();
  small_cap.retry_after_cap = 10s;
  const RetryDecision d = with_retry_after(small_cap, 0, 1h);
  EXPECT_TRUE(d.retry);
  EXPECT_EQ(d.delay, 10000ms);
  // Honoured for a 503 too.
  EXPECT_EQ(decide(config, 0, FailureKind::kHttpStatus, 503, 3s, false, kPlentyOfTime, rng).delay, 3000ms);
}

TEST(UpstreamRetryPolicy, NeverRetriesPastTheRequestDeadline) {
  const RetryConfig config = no_jitter();
  const Rng rng = constant(0.5);
  auto with_time_left = [&](int attempt, milliseconds left, std::optional<milliseconds> retry_after) {
    return decide(config, attempt, FailureKind::kHttpStatus, 503, retry_after, false, left, rng);
  };
  EXPECT_TRUE(with_time_left(0, 1001ms, std::nullopt).retry);
  const RetryDecision at = with_time_left(0, 1000ms, std::nullopt);
  EXPECT_FALSE(at.retry);
  EXPECT_EQ(at.reason, "deadline");
  EXPECT_FALSE(with_time_left(2, 3s, std::nullopt).retry);
  EXPECT_FALSE(with_time_left(0, 0ms, std::nullopt).retry);
  EXPECT_FALSE(with_time_left(0, -5ms, std::nullopt).retry);
  const RetryDecision retry_after = with_time_left(0, 4s, 5s);
  EXPECT_FALSE(retry_after.retry);
  EXPECT_EQ(retry_after.reason, "deadline");

  // Simulated: with 3.5 s of budget the 1 s and 2 s waits fit, the 4 s one does not.
  milliseconds left = 3500ms;
  int retries = 0;
  for (int attempt = 0;; ++attempt) {
    const RetryDecision d = with_time_left(attempt, left, std::nullopt);
    if (!d.retry) {
      EXPECT_EQ(d.reason, "deadline");
      break;
    }
    left -= d.delay;
    ++retries;
  }
  EXPECT_EQ(retries, 2);
  EXPECT_EQ(left, 500ms);
}

TEST(UpstreamRetryPolicy, NeverRetriesOnceBytesReachedTheClient) {
  const Rng rng = constant(0.5);
  for (const FailureKind kind : {FailureKind::kHttpStatus, FailureKind::kReset, FailureKind::kConnect}) {
    const RetryDecision d = decide(RetryConfig{}, 0, kind, 503, std::nullopt, true, kPlentyOfTime, rng);
    EXPECT_FALSE(d.retry);
    EXPECT_EQ(d.reason, "bytes_reached_client");
  }
}

TEST(UpstreamRetryPolicy, MapsFinalFailuresToProductErrorCodes) {
  struct Case {
    FailureKind kind;
    int status;
    ErrorKind expected;
    int http;
    std::string_view code;
  };
  const std::vector<Case> cases{
      {FailureKind::kHttpStatus, 429, ErrorKind::kOpenAiRateLimit, 429, "OPENAI_RATE_LIMIT"},
      {FailureKind::kHttpStatus, 401, ErrorKind::kInvalidApiKey, 400, "INVALID_API_KEY"},
      {FailureKind::kConnect, 0, ErrorKind::kOpenAiConnection, 503, "OPENAI_CONNECTION_ERROR"},
      {FailureKind::kReset, 0, ErrorKind::kOpenAiConnection, 503, "OPENAI_CONNECTION_ERROR"},
      {FailureKind::kTimeout, 0, ErrorKind::kOpenAiTimeout, 504, "OPENAI_TIMEOUT"},
      {FailureKind::kMalformed, 200, ErrorKind::kOpenAiApiError, 502, "OPENAI_API_ERROR"},
      {FailureKind::kHttpStatus, 500, ErrorKind::kOpenAiApiError, 502, "OPENAI_API_ERROR"},
      {FailureKind::kHttpStatus, 503, ErrorKind::kOpenAiApiError, 502, "OPENAI_API_ERROR"},
      {FailureKind::kHttpStatus, 400, ErrorKind::kOpenAiApiError, 502, "OPENAI_API_ERROR"},
      {FailureKind::kHttpStatus, 403, ErrorKind::kInvalidApiKey, 400, "INVALID_API_KEY"},
      {FailureKind::kHttpStatus, 404, ErrorKind::kOpenAiApiError, 502, "OPENAI_API_ERROR"},
      {FailureKind::kHttpStatus, 422, ErrorKind::kOpenAiApiError, 502, "OPENAI_API_ERROR"},
  };
  for (const Case& c : cases) {
    const ErrorKind kind = error_kind_for(c.kind, c.status);
    EXPECT_EQ(kind, c.expected) << to_string(c.kind) << " " << c.status;
    EXPECT_EQ(error_info(kind).status, c.http) << to_string(c.kind) << " " << c.status;
    EXPECT_EQ(error_info(kind).code, c.code) << to_string(c.kind) << " " << c.status;
  }
}

TEST(UpstreamRetryPolicy, ParsesRetryAfterDeltaSeconds) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(parse_retry_after("120", now), 120000ms);
  EXPECT_EQ(parse_retry_after("0", now), 0ms);
  EXPECT_EQ(parse_retry_after(" 7\t", now), 7000ms);
  EXPECT_EQ(parse_retry_after("007", now), 7000ms);
  EXPECT_EQ(parse_retry_after("99999999999999999999999", now), std::chrono::seconds{1'000'000'000});
  for (const std::string_view bad :
       {"", "  ", "-5", "+5", "1.5", "1e3", "abc", "12abc", "5 s", "0x10", "1 2"}) {
    EXPECT_EQ(parse_retry_after(bad, now), std::nullopt) << bad;
  }
}

TEST(UpstreamRetryPolicy, ParsesRetryAfterHttpDates) {
  using namespace std::chrono;
  const sys_seconds base = sys_days{1994y / November / 6} + 8h + 49min;  // 08:49:00
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", base), 37000ms);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 09:49:00 GMT", base), 3600000ms);
  EXPECT_EQ(parse_retry_after("Mon, 07 Nov 1994 08:49:00 GMT", base), 86400000ms);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", base + 1500us), 36999ms);  // rounds up
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:48:00 GMT", base), 0ms);               // already past
  EXPECT_EQ(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", base), 0ms);
  EXPECT_EQ(parse_retry_after("Thu, 29 Feb 1996 00:00:00 GMT", sys_days{1996y / February / 28}), 86400000ms);
  for (const std::string_view bad :
       {"Sunday, 06-Nov-94 08:49:37 GMT",  // RFC 850 (obsolete)
        "Sun Nov  6 08:49:37 1994",        // asctime (obsolete)
        "Sun, 06 Nov 1994 08:49:37 gmt", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 29 Feb 1995 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:61 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 19a4 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT x",
        "Sun, 00 Nov 1994 08:49:37 GMT"}) {
    EXPECT_EQ(parse_retry_after(bad, base), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace parley::upstream
