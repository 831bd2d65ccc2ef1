// Routing and fallbacks (docs/GATEWAY.md, "Routing and fallbacks"). Several providers may serve
// the same model: they are its deployments. A request for model M is tried on M's healthy
// deployments in a weighted-random order, then on its cooling ones (soonest recovery first), then
// on each fallback model's deployments ([routing.fallbacks]) the same way. A deployment that fails
// through its own fault (429, 5xx, timeout, connection failure, before any event reached the
// client) is cooled for routing.cooldown_ms (or the provider's Retry-After) and the request moves
// to the next candidate; the client's own 4xx and anything after the first streamed event never
// move. Every provider call of parley goes through Router::post / post_stream / post_raw.
//
// Health is per provider (one deployment = one [[providers]] entry, for every model it serves),
// kept in this process's memory (each instance learns on its own), lock-free.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "crypto/secret.hpp"
#include "provider/provider.hpp"
#include "services/limiter.hpp"
#include "upstream/retry_policy.hpp"

namespace parley::services {

struct RoutingOptions {
  std::chrono::milliseconds cooldown{30'000};  // 0: deployments are never cooled
  // Model → the models to try, in order, when all of its deployments failed.
  std::vector<std::pair<std::string, std::vector<std::string>>> fallbacks;
};

// One deployment a request may go to: a provider serving a model, with the key for this caller.
struct Candidate {
  const provider::ProviderEntry* entry = nullptr;
  std::size_t id = 0;  // the entry's position in the registry
  std::string model;
  std::optional<crypto::Secret> api_key;
  std::int64_t cooled_until_ms = 0;  // as seen when the candidates were ordered; 0: healthy
};

// A resolved call: the candidate to call (entry, model, call.api_key: the first candidate before
// the call, the one that answered — or failed last — after it), the caller's admission, and every
// candidate in the order they are tried.
struct Route {
  const provider::ProviderEntry* entry = nullptr;
  provider::CallContext call;
  std::string model;
  Admission admission;  // set by ChatService::admit(): the headers' figures and the tokens reserved
  std::vector<Candidate> candidates;  // empty: only `entry`
  std::string requested_model;        // the model the request body names (empty: `model`)
};

// One deployment's state for ordering.
struct DeploymentState {
  std::size_t id = 0;
  std::uint32_t weight = 1;
  std::int64_t cooled_until_ms = 0;
};

// The order in which to try deployments at `now_ms`: healthy ones of weight > 0 in a weighted-random
// order (each is first with probability weight / total weight), then healthy ones of weight 0 in
// the given order, then cooling ones, soonest recovery first. Returns positions in `deployments`.
std::vector<std::size_t> order_deployments(const std::vector<DeploymentState>& deployments,
                                           std::int64_t now_ms, const upstream::Rng& rng);

// Cooldown state of `count` deployments: until when each is cooling (ms of a steady clock; 0:
// healthy). Thread-safe, lock-free. Ids at or past `count` are always healthy.
class DeploymentHealth {
 public:
  explicit DeploymentHealth(std::size_t count);
  [[nodiscard]] std::int64_t cooled_until(std::size_t id) const;
  // Cools `id` until `until_ms` (never shortens a cooldown). True when it was healthy at `now_ms`.
  bool cool(std::size_t id, std::int64_t until_ms, std::int64_t now_ms);
  // It answered: healthy again, unless it was cooled anew since `seen` was read.
  void recover(std::size_t id, std::int64_t seen);
  [[nodiscard]] std::size_t cooling(std::int64_t now_ms) const;

 private:
  std::size_t count_;
  std::unique_ptr<std::atomic<std::int64_t>[]> until_;
};

// How long a failed deployment stays cooled: the provider's Retry-After on a 429 or 503 (already
// capped by its retry_after_cap), else `cooldown`.
std::chrono::milliseconds cooldown_for(const provider::CallFailure& failure,
                                       std::chrono::milliseconds cooldown);

// Why a failed call should move to the next candidate: the reason the provider noted, or — for a
// provider that notes none — one read from the error (rate limit, timeout, connection); empty
// when the call must not move (the client's own request, a stream that already sent events).
std::string_view fault_reason(const provider::CallFailure& noted, const Error& error,
                              bool events_reached_client);

class Router {
 public:
  Router(const provider::ProviderRegistry& providers, RoutingOptions options);

  // `model`'s deployments in the order to try them now (keys not resolved).
  [[nodiscard]] std::vector<Candidate> deployments(std::string_view model) const;
  // The fallback models of `model` (empty when none).
  [[nodiscard]] const std::vector<std::string>& fallbacks(std::string_view model) const;

  // Provider::post / post_stream / post_raw over the route's candidates. On return the route names
  // the candidate that answered (or the last that failed): its entry, model and key. A candidate
  // serving another model gets the body with its `model` rewritten (JSON bodies only: post_raw with
  // another content type tries only the requested model's deployments).
  boost::asio::awaitable<Result<provider::ProviderResponse>> post(Route& route, std::string_view path,
                                                                  std::string body);
  boost::asio::awaitable<Result<provider::StreamOutcome>> post_stream(Route& route, std::string_view path,
                                                                      std::string body,
                                                                      provider::EventSink sink);
  boost::asio::awaitable<Result<provider::ProviderResponse>> post_raw(Route& route, std::string_view path,
                                                                      std::string body,
                                                                      std::string content_type);

  // parley_provider_fallbacks_total, parley_deployment_cooldowns_total, parley_deployments_cooling.
  void render_metrics(std::string& out) const;

 private:
  // Points the route at candidate `i` for an attempt.
  void use(Route& route, std::size_t i, bool last, provider::CallFailure* failure) const;
  // After candidate `i` failed: cools it when at fault; true when the request moves on.
  bool fall_over(Route& route, std::size_t i, bool last, const provider::CallFailure& failure,
                 const Error& error, bool events_reached_client);
  void answered(const Route& route, std::size_t i);

  const provider::ProviderRegistry& providers_;
  RoutingOptions options_;
  DeploymentHealth health_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> cooldowns_;  // per entry
  std::size_t count_;
  mutable std::mutex fallbacks_mutex_;
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t, std::less<>> fallbacks_total_;
};

}  // namespace parley::services
