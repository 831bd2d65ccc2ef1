// Prometheus figures of the provider calls made for clients, fed by every usage event: requests,
// tokens and cost by provider and model, errors (status ≥ 400) by provider, and a latency
// histogram by provider. Label cardinality is bounded: models past the first kMaxModels seen are
// counted as model="other"; no key or user id is ever a label. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "store/usage_store.hpp"

namespace parley::services {

class UsageMetrics {
 public:
  static constexpr std::size_t kMaxModels = 100;
  static constexpr std::array<double, 11> kBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

  void record(const store::UsageEvent& event);
  // Appends the exposition text.
  void render(std::string& out) const;

 private:
  struct ModelSums {
    std::uint64_t requests = 0;
    std::uint64_t prompt_tokens = 0;
    std::uint64_t completion_tokens = 0;
    std::int64_t cost_nanos = 0;
  };
  struct ProviderSums {
    std::uint64_t errors = 0;
    std::array<std::uint64_t, kBuckets.size()> buckets{};
    std::uint64_t count = 0;
    double seconds = 0;
  };
  // (provider, model), looked up without copying the event's strings.
  struct Less {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      using View = std::pair<std::string_view, std::string_view>;
      return View(a.first, a.second) < View(b.first, b.second);
    }
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, ModelSums, Less> models_;
  std::map<std::string, ProviderSums> providers_;
};

}  // namespace parley::services
