// Prometheus metrics for the HTTP server: requests by route template, method and status, a latency
// histogram by route, requests in flight, open connections, build info. Recording is lock-free on
// the hot path for gauges and takes one uncontended mutex per request for the labelled series
// (sharded by worker). render() may run on any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace parley::http {

class Metrics {
 public:
  explicit Metrics(std::size_t shards, std::string version);

  void connection_opened() { open_connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() { open_connections_.fetch_sub(1, std::memory_order_relaxed); }
  void request_started() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void request_finished(std::size_t shard, std::string_view route, std::string_view method, unsigned status,
                        double seconds);

  [[nodiscard]] std::int64_t open_connections() const { return open_connections_.load(); }
  [[nodiscard]] std::int64_t in_flight() const { return in_flight_.load(); }

  // Extra text appended by other subsystems (provider calls, usage, ...), each a complete family.
  using Collector = std::function<void(std::string&)>;
  void add_collector(Collector collector);

  [[nodiscard]] std::string render() const;

  static constexpr std::array<double, 14> kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> buckets{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  struct Shard {
    std::mutex mutex;
    std::map<std::tuple<std::string, std::string, unsigned>, std::uint64_t, std::less<>> requests;
    std::map<std::string, Histogram, std::less<>> durations;
  };
  std::vector<std::unique_ptr<Shard>> shards_;
  std::string version_;
  std::atomic<std::int64_t> open_connections_{0};
  std::atomic<std::int64_t> in_flight_{0};
  mutable std::mutex collectors_mutex_;
  std::vector<Collector> collectors_;
};

}  // namespace parley::http
