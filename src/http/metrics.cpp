#include "http/metrics.hpp"

#include <fmt/format.h>

namespace parley::http {

Metrics::Metrics(std::size_t shards, std::string version) : version_(std::move(version)) {
  for (std::size_t i = 0; i < std::max<std::size_t>(shards, 1); ++i)
    shards_.push_back(std::make_unique<Shard>());
}

void Metrics::request_finished(std::size_t shard, std::string_view route, std::string_view method,
                               unsigned status, double seconds) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  Shard& s = *shards_[shard % shards_.size()];
  std::lock_guard lock(s.mutex);
  auto key = std::make_tuple(std::string(route), std::string(method), status);
  ++s.requests[key];
  auto it = s.durations.find(route);
  if (it == s.durations.end()) it = s.durations.emplace(std::string(route), Histogram{}).first;
  Histogram& h = it->second;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

void Metrics::add_collector(Collector collector) {
  std::lock_guard lock(collectors_mutex_);
  collectors_.push_back(std::move(collector));
}

namespace {
std::string escape_label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}
}  // namespace

std::string Metrics::render() const {
  std::map<std::tuple<std::string, std::string, unsigned>, std::uint64_t> requests;
  std::map<std::string, Histogram> durations;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mutex);
    for (const auto& [k, v] : shard->requests) requests[k] += v;
    for (const auto& [route, h] : shard->durations) {
      Histogram& total = durations[route];
      for (std::size_t i = 0; i < kBuckets.size(); ++i) total.buckets[i] += h.buckets[i];
      total.count += h.count;
      total.sum += h.sum;
    }
  }
  std::string out;
  out += "# HELP parley_build_info Build information.\n# TYPE parley_build_info gauge\n";
  out += fmt::format("parley_build_info{{version=\"{}\"}} 1\n", escape_label(version_));
  out += "# HELP parley_http_requests_total HTTP requests by route template, method and status.\n";
  out += "# TYPE parley_http_requests_total counter\n";
  for (const auto& [k, v] : requests) {
    out += fmt::format("parley_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                       escape_label(std::get<0>(k)), std::get<1>(k), std::get<2>(k), v);
  }
  out += "# HELP parley_http_request_duration_seconds Time from request head to response sent.\n";
  out += "# TYPE parley_http_request_duration_seconds histogram\n";
  for (const auto& [route, h] : durations) {
    std::string r = escape_label(route);
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      out += fmt::format("parley_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n", r,
                         kBuckets[i], h.buckets[i]);
    }
    out += fmt::format("parley_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n", r,
                       h.count);
    out += fmt::format("parley_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", r, h.sum);
    out += fmt::format("parley_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", r, h.count);
  }
  out += "# HELP parley_http_requests_in_flight Requests being handled now.\n";
  out += "# TYPE parley_http_requests_in_flight gauge\n";
  out += fmt::format("parley_http_requests_in_flight {}\n", in_flight_.load());
  out += "# HELP parley_http_open_connections Client connections open now.\n";
  out += "# TYPE parley_http_open_connections gauge\n";
  out += fmt::format("parley_http_open_connections {}\n", open_connections_.load());
  std::lock_guard lock(collectors_mutex_);
  for (const auto& c : collectors_) c(out);
  return out;
}

}  // namespace parley::http
