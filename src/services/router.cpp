#include "services/router.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <cmath>
#include <random>

namespace parley::services {

namespace asio = boost::asio;
namespace bj = boost::json;

namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double uniform() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

std::string label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// The body with its top-level "model" set to `model`; unchanged when it is not a JSON object.
std::string with_model(std::string_view body, std::string_view model) {
  boost::system::error_code ec;
  bj::value doc = bj::parse(body, ec);
  if (ec || !doc.is_object()) return std::string(body);
  doc.as_object()["model"] = model;
  return bj::serialize(doc);
}

// The body for an attempt on candidate `i`: the last attempt takes the body itself, others a copy;
// a candidate serving another model than the one the body names gets it rewritten.
std::string body_for(const Route& route, std::size_t i, std::string_view asked, std::string& body,
                     bool last) {
  if (i < route.candidates.size() && route.candidates[i].model != asked) {
    return with_model(body, route.candidates[i].model);
  }
  if (last) return std::move(body);
  return body;
}

// A call whose client left (http::CloseWatch cancels the handler's coroutine) tries no other candidate.
asio::awaitable<bool> stop_requested() {
  asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  co_return state.cancelled() != asio::cancellation_type::none;
}

const std::string& asked_model(const Route& route) {
  return route.requested_model.empty() ? route.model : route.requested_model;
}

}  // namespace

std::vector<std::size_t> order_deployments(const std::vector<DeploymentState>& deployments,
                                           std::int64_t now_ms, const upstream::Rng& rng) {
  std::vector<std::pair<double, std::size_t>> weighted;  // (race time, position)
  std::vector<std::size_t> standby;
  std::vector<std::size_t> cooling;
  for (std::size_t i = 0; i < deployments.size(); ++i) {
    const DeploymentState& d = deployments[i];
    if (d.cooled_until_ms > now_ms) {
      cooling.push_back(i);
    } else if (d.weight == 0) {
      standby.push_back(i);
    } else {
      // Exponential races: the smallest -ln(u) / weight wins with probability weight / total, and
      // sorting by it gives a weighted random order without replacement.
      double u = rng ? rng() : 0.5;
      u = std::clamp(u, 1e-12, 1.0 - 1e-12);
      weighted.emplace_back(-std::log(u) / static_cast<double>(d.weight), i);
    }
  }
  std::sort(weighted.begin(), weighted.end());
  std::stable_sort(cooling.begin(), cooling.end(), [&deployments](std::size_t a, std::size_t b) {
    return deployments[a].cooled_until_ms < deployments[b].cooled_until_ms;
  });
  std::vector<std::size_t> out;
  out.reserve(deployments.size());
  for (const auto& w : weighted) out.push_back(w.second);
  out.insert(out.end(), standby.begin(), standby.end());
  out.insert(out.end(), cooling.begin(), cooling.end());
  return out;
}

DeploymentHealth::DeploymentHealth(std::size_t count)
    : count_(count), until_(std::make_unique<std::atomic<std::int64_t>[]>(count)) {
  for (std::size_t i = 0; i < count; ++i) until_[i].store(0);
}

std::int64_t DeploymentHealth::cooled_until(std::size_t id) const {
  return id < count_ ? until_[id].load(std::memory_order_relaxed) : 0;
}

bool DeploymentHealth::cool(std::size_t id, std::int64_t until_ms, std::int64_t now_ms) {
  if (id >= count_) return false;
  std::int64_t current = until_[id].load(std::memory_order_relaxed);
  while (current < until_ms) {
    if (until_[id].compare_exchange_weak(current, until_ms, std::memory_order_relaxed))
      return current <= now_ms;
  }
  return false;
}

void DeploymentHealth::recover(std::size_t id, std::int64_t seen) {
  if (id >= count_ || seen == 0) return;
  until_[id].compare_exchange_strong(seen, 0, std::memory_order_relaxed);
}

std::size_t DeploymentHealth::cooling(std::int64_t now_ms) const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < count_; ++i) {
    if (until_[i].load(std::memory_order_relaxed) > now_ms) ++n;
  }
  return n;
}

std::chrono::milliseconds cooldown_for(const provider::CallFailure& failure,
                                       std::chrono::milliseconds cooldown) {
  if (failure.retry_after && (failure.status == 429 || failure.status == 503)) return *failure.retry_after;
  return cooldown;
}

std::string_view fault_reason(const provider::CallFailure& noted, const Error& error,
                              bool events_reached_client) {
  if (events_reached_client) return {};
  if (!noted.reason.empty()) return noted.reason;
  if (noted.status != 0) return {};  // the provider noted a failure that is not the deployment's
  switch (error.kind) {
    case ErrorKind::kOpenAiRateLimit:
      return "rate_limited";
    case ErrorKind::kOpenAiTimeout:
      return "timeout";
    case ErrorKind::kOpenAiConnection:
      return "connect";
    default:
      return {};
  }
}

Router::Router(const provider::ProviderRegistry& providers, RoutingOptions options)
    : providers_(providers),
      options_(std::move(options)),
      health_(providers.entries().size()),
      cooldowns_(std::make_unique<std::atomic<std::uint64_t>[]>(providers.entries().size())),
      count_(providers.entries().size()) {
  for (std::size_t i = 0; i < count_; ++i) cooldowns_[i].store(0);
}

std::vector<Candidate> Router::deployments(std::string_view model) const {
  const auto& entries = providers_.entries();
  std::vector<DeploymentState> states;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const bool serves =
        std::any_of(entries[i].models.begin(), entries[i].models.end(),
                    [model](const std::string& p) { return provider::model_matches(p, model); });
    if (serves) states.push_back({i, entries[i].weight, health_.cooled_until(i)});
  }
  std::vector<Candidate> out;
  if (states.empty()) return out;
  const std::int64_t now = steady_ms();
  std::vector<std::size_t> order{0};
  if (states.size() > 1) order = order_deployments(states, now, uniform);
  for (std::size_t pos : order) {
    Candidate c;
    c.id = states[pos].id;
    c.entry = &entries[c.id];
    c.model = std::string(model);
    c.cooled_until_ms = states[pos].cooled_until_ms > now ? states[pos].cooled_until_ms : 0;
    out.push_back(std::move(c));
  }
  return out;
}

const std::vector<std::string>& Router::fallbacks(std::string_view model) const {
  static const std::vector<std::string> none;
  for (const auto& [from, to] : options_.fallbacks) {
    if (from == model) return to;
  }
  return none;
}

void Router::use(Route& route, std::size_t i, bool last, provider::CallFailure* failure) const {
  if (i < route.candidates.size()) {
    const Candidate& c = route.candidates[i];
    route.entry = c.entry;
    route.model = c.model;
    route.call.api_key = c.api_key;
  }
  route.call.max_retries = last ? std::nullopt : std::optional<int>(0);
  route.call.failure = failure;
}

void Router::answered(const Route& route, std::size_t i) {
  if (i < route.candidates.size())
    health_.recover(route.candidates[i].id, route.candidates[i].cooled_until_ms);
}

bool Router::fall_over(Route& route, std::size_t i, bool last, const provider::CallFailure& failure,
                       const Error& error, bool events_reached_client) {
  const std::string_view reason = fault_reason(failure, error, events_reached_client);
  if (reason.empty()) return false;
  const std::string& provider_name = route.entry->provider->name();
  const std::chrono::milliseconds cooldown = cooldown_for(failure, options_.cooldown);
  if (i < route.candidates.size() && cooldown.count() > 0) {
    const std::size_t id = route.candidates[i].id;
    const std::int64_t now = steady_ms();
    if (health_.cool(id, now + cooldown.count(), now)) {
      if (id < count_) cooldowns_[id].fetch_add(1, std::memory_order_relaxed);
      spdlog::warn(
          "routing: deployment cooled: provider={} model={} reason={} status={} cooldown_ms={} "
          "request_id={}",
          provider_name, route.model, reason, failure.status, cooldown.count(), route.call.request_id);
    }
  }
  if (last) return false;
  const Candidate& next = route.candidates[i + 1];
  const std::string& next_name = next.entry->provider->name();
  spdlog::warn(
      "routing: fallback: provider={} model={} reason={} status={} next_provider={} next_model={} "
      "request_id={}",
      provider_name, route.model, reason, failure.status, next_name, next.model, route.call.request_id);
  {
    std::lock_guard lock(fallbacks_mutex_);
    ++fallbacks_total_[std::make_tuple(provider_name, next_name, std::string(reason))];
  }
  return true;
}

asio::awaitable<Result<provider::ProviderResponse>> Router::post(Route& route, std::string_view path,
                                                                 std::string body) {
  const std::size_t n = std::max<std::size_t>(route.candidates.size(), 1);
  const std::string asked = asked_model(route);
  for (std::size_t i = 0;; ++i) {
    const bool last = i + 1 >= n;
    provider::CallFailure failure;
    std::string attempt = body_for(route, i, asked, body, last);
    use(route, i, last, &failure);
    auto res = co_await route.entry->provider->post(route.call, path, std::move(attempt));
    route.call.failure = nullptr;
    if (res) {
      answered(route, i);
      co_return res;
    }
    const bool stopped = co_await stop_requested();
    if (stopped || !fall_over(route, i, last, failure, res.error(), false)) co_return res;
  }
}

asio::awaitable<Result<provider::StreamOutcome>> Router::post_stream(Route& route, std::string_view path,
                                                                     std::string body,
                                                                     provider::EventSink sink) {
  const std::size_t n = std::max<std::size_t>(route.candidates.size(), 1);
  const std::string asked = asked_model(route);
  std::size_t delivered = 0;
  provider::EventSink counted;
  if (n > 1) {
    counted = [&delivered, &sink](std::string_view data) -> asio::awaitable<bool> {
      ++delivered;
      co_return co_await sink(data);
    };
  }
  for (std::size_t i = 0;; ++i) {
    const bool last = i + 1 >= n;
    provider::CallFailure failure;
    std::string attempt = body_for(route, i, asked, body, last);
    use(route, i, last, &failure);
    provider::EventSink attempt_sink = n > 1 ? counted : sink;
    auto res = co_await route.entry->provider->post_stream(route.call, path, std::move(attempt),
                                                           std::move(attempt_sink));
    route.call.failure = nullptr;
    if (res) {
      answered(route, i);
      co_return res;
    }
    const bool stopped = co_await stop_requested();
    if (stopped || !fall_over(route, i, last, failure, res.error(), delivered > 0)) co_return res;
  }
}

asio::awaitable<Result<provider::ProviderResponse>> Router::post_raw(Route& route, std::string_view path,
                                                                     std::string body,
                                                                     std::string content_type) {
  const std::string asked = asked_model(route);
  // A body that is not JSON cannot have its model rewritten: only the asked model's deployments.
  if (!content_type.starts_with("application/json")) {
    std::erase_if(route.candidates, [&asked](const Candidate& c) { return c.model != asked; });
  }
  const std::size_t n = std::max<std::size_t>(route.candidates.size(), 1);
  for (std::size_t i = 0;; ++i) {
    const bool last = i + 1 >= n;
    provider::CallFailure failure;
    std::string attempt = body_for(route, i, asked, body, last);
    use(route, i, last, &failure);
    auto res = co_await route.entry->provider->post_raw(route.call, path, std::move(attempt), content_type);
    route.call.failure = nullptr;
    if (res) {
      answered(route, i);
      co_return res;
    }
    const bool stopped = co_await stop_requested();
    if (stopped || !fall_over(route, i, last, failure, res.error(), false)) co_return res;
  }
}

void Router::render_metrics(std::string& out) const {
  out +=
      "# HELP parley_provider_fallbacks_total Requests moved from a failed deployment to the next "
      "candidate.\n";
  out += "# TYPE parley_provider_fallbacks_total counter\n";
  {
    std::lock_guard lock(fallbacks_mutex_);
    for (const auto& [k, v] : fallbacks_total_) {
      out += fmt::format("parley_provider_fallbacks_total{{from=\"{}\",to=\"{}\",reason=\"{}\"}} {}\n",
                         label(std::get<0>(k)), label(std::get<1>(k)), std::get<2>(k), v);
    }
  }
  const auto& entries = providers_.entries();
  out += "# HELP parley_deployment_cooldowns_total Times a deployment was taken out of rotation.\n";
  out += "# TYPE parley_deployment_cooldowns_total counter\n";
  for (std::size_t i = 0; i < count_ && i < entries.size(); ++i) {
    out += fmt::format("parley_deployment_cooldowns_total{{provider=\"{}\"}} {}\n",
                       label(entries[i].provider->name()), cooldowns_[i].load(std::memory_order_relaxed));
  }
  out += "# HELP parley_deployments_cooling Deployments out of rotation now (this instance).\n";
  out += "# TYPE parley_deployments_cooling gauge\n";
  out += fmt::format("parley_deployments_cooling {}\n", health_.cooling(steady_ms()));
}

}  // namespace parley::services
