#include "services/conversation_context.hpp"

#include <algorithm>

#include "provider/provider.hpp"

namespace parley::services {

std::int64_t estimate_tokens(std::string_view content) {
  return static_cast<std::int64_t>((content.size() + 3) / 4) + kMessageOverheadTokens;
}

std::int64_t ContextBudgets::for_model(std::string_view model) const {
  for (const auto& [pattern, tokens] : by_model) {
    if (provider::model_matches(pattern, model)) return tokens;
  }
  return fallback;
}

std::vector<ChatMessage> build_context(const std::optional<std::string>& system,
                                       std::span<const store::MessageRecord> newest_first,
                                       std::int64_t budget) {
  std::vector<ChatMessage> history;  // newest first while collecting
  std::int64_t used = system ? estimate_tokens(*system) : 0;
  for (std::size_t i = 0; i < newest_first.size(); ++i) {
    const store::MessageRecord& m = newest_first[i];
    if (m.role == "assistant" && m.content.empty()) continue;
    if (m.role != "user" && m.role != "assistant") continue;
    const std::int64_t cost = estimate_tokens(m.content);
    if (i > 0 && used + cost > budget) break;
    used += cost;
    history.push_back({m.role, m.content});
  }
  while (!history.empty() && history.back().role != "user") history.pop_back();
  std::vector<ChatMessage> out;
  out.reserve(history.size() + 1);
  if (system) out.push_back({"system", *system});
  std::reverse_copy(history.begin(), history.end(), std::back_inserter(out));
  return out;
}

}  // namespace parley::services
