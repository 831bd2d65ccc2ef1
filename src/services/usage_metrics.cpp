#include "services/usage_metrics.hpp"

#include <fmt/format.h>

namespace parley::services {

namespace {

// A label value as Prometheus's text format wants it.
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

}  // namespace

void UsageMetrics::record(const store::UsageEvent& e) {
  std::lock_guard lock(mutex_);
  auto it = models_.find(std::pair<std::string_view, std::string_view>(e.provider, e.model));
  if (it == models_.end()) {
    std::pair<std::string, std::string> key{e.provider, models_.size() >= kMaxModels ? "other" : e.model};
    it = models_.try_emplace(std::move(key)).first;
  }
  ModelSums& m = it->second;
  m.requests += 1;
  m.prompt_tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(e.prompt_tokens, 0));
  m.completion_tokens += static_cast<std::uint64_t>(std::max<std::int64_t>(e.completion_tokens, 0));
  m.cost_nanos += e.cost_nanos;
  ProviderSums& p = providers_[e.provider];
  if (e.status >= 400) p.errors += 1;
  const double seconds = static_cast<double>(e.latency_ms) / 1000.0;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) p.buckets[i] += 1;
  }
  p.count += 1;
  p.seconds += seconds;
}

void UsageMetrics::render(std::string& out) const {
  std::lock_guard lock(mutex_);
  out += "# HELP parley_provider_requests_total Provider calls made for clients.\n";
  out += "# TYPE parley_provider_requests_total counter\n";
  for (const auto& [k, m] : models_) {
    out += fmt::format("parley_provider_requests_total{{provider=\"{}\",model=\"{}\"}} {}\n", label(k.first),
                       label(k.second), m.requests);
  }
  out += "# HELP parley_tokens_total Tokens the providers counted, by kind (prompt, completion).\n";
  out += "# TYPE parley_tokens_total counter\n";
  for (const auto& [k, m] : models_) {
    out += fmt::format("parley_tokens_total{{provider=\"{}\",model=\"{}\",kind=\"prompt\"}} {}\n",
                       label(k.first), label(k.second), m.prompt_tokens);
    out += fmt::format("parley_tokens_total{{provider=\"{}\",model=\"{}\",kind=\"completion\"}} {}\n",
                       label(k.first), label(k.second), m.completion_tokens);
  }
  out += "# HELP parley_cost_usd_total Cost of the calls at the configured model prices.\n";
  out += "# TYPE parley_cost_usd_total counter\n";
  for (const auto& [k, m] : models_) {
    out += fmt::format("parley_cost_usd_total{{provider=\"{}\",model=\"{}\"}} {:.9f}\n", label(k.first),
                       label(k.second), static_cast<double>(m.cost_nanos) / 1e9);
  }
  out += "# HELP parley_provider_errors_total Provider calls that ended in an error status.\n";
  out += "# TYPE parley_provider_errors_total counter\n";
  for (const auto& [name, p] : providers_) {
    out += fmt::format("parley_provider_errors_total{{provider=\"{}\"}} {}\n", label(name), p.errors);
  }
  out += "# HELP parley_provider_duration_seconds Time from the request to the call's end, by provider.\n";
  out += "# TYPE parley_provider_duration_seconds histogram\n";
  for (const auto& [name, p] : providers_) {
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      out += fmt::format("parley_provider_duration_seconds_bucket{{provider=\"{}\",le=\"{}\"}} {}\n",
                         label(name), kBuckets[i], p.buckets[i]);
    }
    out += fmt::format("parley_provider_duration_seconds_bucket{{provider=\"{}\",le=\"+Inf\"}} {}\n",
                       label(name), p.count);
    out += fmt::format("parley_provider_duration_seconds_sum{{provider=\"{}\"}} {:.3f}\n", label(name),
                       p.seconds);
    out +=
        fmt::format("parley_provider_duration_seconds_count{{provider=\"{}\"}} {}\n", label(name), p.count);
  }
}

}  // namespace parley::services
