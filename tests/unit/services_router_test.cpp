// The pure parts of routing: candidate order, deployment health, cooldown length, fault reasons.
#include <gtest/gtest.h>

#include <map>
#include <thread>
#include <vector>

#include "services/router.hpp"

namespace parley::services {
namespace {

using std::chrono::milliseconds;

TEST(OrderDeployments, HealthyByWeightThenStandbyThenCoolingSoonestFirst) {
  const std::vector<DeploymentState> d{
      {10, 1, 0},     // healthy
      {11, 0, 0},     // standby (weight 0)
      {12, 1, 5000},  // cooling until 5000
      {13, 2, 900},   // cooled until 900: healthy again at 1000
      {14, 1, 3000},  // cooling until 3000
      {15, 0, 0},     // standby
  };
  auto rng = upstream::make_rng(7);
  const auto order = order_deployments(d, 1000, rng);
  ASSERT_EQ(order.size(), 6U);
  // The two healthy weighted ones first (either order), then the standbys in the given order,
  // then the cooling ones by recovery time.
  EXPECT_TRUE((order[0] == 0 && order[1] == 3) || (order[0] == 3 && order[1] == 0));
  EXPECT_EQ(order[2], 1U);
  EXPECT_EQ(order[3], 5U);
  EXPECT_EQ(order[4], 4U);
  EXPECT_EQ(order[5], 2U);
}

TEST(OrderDeployments, FirstChoiceFollowsTheWeights) {
  const std::vector<DeploymentState> d{{0, 3, 0}, {1, 1, 0}};
  auto rng = upstream::make_rng(42);
  int first = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    if (order_deployments(d, 0, rng)[0] == 0) ++first;
  }
  EXPECT_NEAR(static_cast<double>(first) / n, 0.75, 0.02);
}

TEST(OrderDeployments, ThreeWaysAndEveryDeploymentOnce) {
  const std::vector<DeploymentState> d{{0, 1, 0}, {1, 2, 0}, {2, 5, 0}};
  auto rng = upstream::make_rng(3);
  std::map<std::size_t, int> firsts;
  const int n = 16000;
  for (int i = 0; i < n; ++i) {
    auto order = order_deployments(d, 0, rng);
    ASSERT_EQ(order.size(), 3U);
    std::vector<bool> seen(3);
    for (auto p : order) seen[p] = true;
    EXPECT_TRUE(seen[0] && seen[1] && seen[2]);
    ++firsts[order[0]];
  }
  EXPECT_NEAR(firsts[0] / static_cast<double>(n), 1.0 / 8, 0.02);
  EXPECT_NEAR(firsts[1] / static_cast<double>(n), 2.0 / 8, 0.02);
  EXPECT_NEAR(firsts[2] / static_cast<double>(n), 5.0 / 8, 0.02);
}

TEST(OrderDeployments, AllCoolingStillGivesEveryCandidate) {
  const std::vector<DeploymentState> d{{0, 1, 800}, {1, 1, 700}};
  auto rng = upstream::make_rng(1);
  const auto order = order_deployments(d, 100, rng);
  EXPECT_EQ(order, (std::vector<std::size_t>{1, 0}));
  EXPECT_TRUE(order_deployments({}, 0, rng).empty());
}

TEST(DeploymentHealth, CoolRecoverAndCount) {
  DeploymentHealth h(3);
  EXPECT_EQ(h.cooling(0), 0U);
  EXPECT_TRUE(h.cool(1, 500, 100));   // newly cooled
  EXPECT_FALSE(h.cool(1, 400, 200));  // already cooling; a shorter cooldown changes nothing
  EXPECT_EQ(h.cooled_until(1), 500);
  EXPECT_FALSE(h.cool(1, 700, 300));  // extended while cooling: not a new cooldown
  EXPECT_EQ(h.cooled_until(1), 700);
  EXPECT_EQ(h.cooling(300), 1U);
  EXPECT_EQ(h.cooling(700), 0U);      // over at its end
  EXPECT_TRUE(h.cool(1, 2000, 800));  // past its end: a new cooldown
  h.recover(1, 700);                  // seen before the new cooldown: kept
  EXPECT_EQ(h.cooled_until(1), 2000);
  h.recover(1, 2000);
  EXPECT_EQ(h.cooled_until(1), 0);
  // Out of range: always healthy, never counted.
  EXPECT_FALSE(h.cool(9, 1000, 0));
  EXPECT_EQ(h.cooled_until(9), 0);
}

TEST(DeploymentHealth, ConcurrentCoolsCountOnce) {
  DeploymentHealth h(1);
  std::atomic<int> fresh{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&h, &fresh, t] {
      if (h.cool(0, 10'000 + t, 100)) fresh.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(fresh.load(), 1);
  EXPECT_EQ(h.cooled_until(0), 10'007);
}

TEST(Cooldown, RetryAfterOn429And503Only) {
  provider::CallFailure f;
  f.status = 429;
  f.retry_after = milliseconds(1500);
  EXPECT_EQ(cooldown_for(f, milliseconds(30'000)), milliseconds(1500));
  f.status = 503;
  EXPECT_EQ(cooldown_for(f, milliseconds(30'000)), milliseconds(1500));
  f.status = 500;
  EXPECT_EQ(cooldown_for(f, milliseconds(30'000)), milliseconds(30'000));
  f.status = 429;
  f.retry_after.reset();
  EXPECT_EQ(cooldown_for(f, milliseconds(250)), milliseconds(250));
}

TEST(FaultReason, NotedReasonErrorKindsAndEvents) {
  const Error rate(ErrorKind::kOpenAiRateLimit, "x");
  const Error api(ErrorKind::kOpenAiApiError, "x");
  provider::CallFailure none;
  provider::CallFailure server;
  server.reason = "server_error";
  server.status = 502;
  provider::CallFailure refused;  // e.g. 401: noted, not the deployment's fault
  refused.status = 401;
  EXPECT_EQ(fault_reason(server, api, false), "server_error");
  EXPECT_EQ(fault_reason(server, api, true), "");  // events reached the client
  EXPECT_EQ(fault_reason(refused, Error(ErrorKind::kInvalidApiKey, "x"), false), "");
  // A provider that notes nothing: read from the error.
  EXPECT_EQ(fault_reason(none, rate, false), "rate_limited");
  EXPECT_EQ(fault_reason(none, Error(ErrorKind::kOpenAiTimeout, "x"), false), "timeout");
  EXPECT_EQ(fault_reason(none, Error(ErrorKind::kOpenAiConnection, "x"), false), "connect");
  EXPECT_EQ(fault_reason(none, api, false), "");
  EXPECT_EQ(fault_reason(none, Error(ErrorKind::kValidation, "x"), false), "");
}

}  // namespace
}  // namespace parley::services
