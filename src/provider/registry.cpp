#include "provider/provider.hpp"

namespace parley::provider {

bool model_matches(std::string_view pattern, std::string_view model) {
  if (!pattern.empty() && pattern.back() == '*')
    return model.starts_with(pattern.substr(0, pattern.size() - 1));
  return pattern == model;
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
