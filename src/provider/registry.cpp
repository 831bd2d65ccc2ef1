#include "provider/provider.hpp"

namespace parley::provider {

bool model_matches(std::string_view pattern, std::string_view model) {
  if (!pattern.empty() && pattern.back() == '*')
    return model.starts_with(pattern.substr(0, pattern.size() - 1));
  return pattern == model;
}

std::atomic<std::uint64_t>& retries_total() {
  static std::atomic<std::uint64_t> retries{0};
  return retries;
}

std::int64_t ProviderEntry::cost_nanos(std::string_view model, std::int64_t prompt_tokens,
                                       std::int64_t completion_tokens) const {
  for (const auto& p : prices) {
    if (!model_matches(p.pattern, model)) continue;
    // USD per 1M tokens = 1e3 nano-USD per token.
    const double nanos = (static_cast<double>(prompt_tokens) * p.input_per_m +
                          static_cast<double>(completion_tokens) * p.output_per_m) *
                         1e3;
    return static_cast<std::int64_t>(nanos + 0.5);
  }
  return 0;
}

const ProviderEntry* ProviderRegistry::find_by_model(std::string_view model) const {
  for (const auto& e : entries_) {
    for (const auto& m : e.models) {
      if (model_matches(m, model)) return &e;
    }
  }
  return nullptr;
}

const ProviderEntry* ProviderRegistry::find_by_name(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.provider->name() == name) return &e;
  }
  return nullptr;
}

std::string ProviderRegistry::allowed_models() const {
  std::string out;
  for (const auto& e : entries_) {
    for (const auto& m : e.models) {
      if (!out.empty()) out += ", ";
      out += m;
    }
  }
  return out;
}

}  // namespace parley::provider
