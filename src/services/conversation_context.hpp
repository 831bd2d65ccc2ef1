// The model context of a stored conversation (docs/CONVERSATIONS.md, "Model context"): the system
// message, then the newest messages that fit a token budget, oldest first. Pure functions, no I/O.
//
// Tokens are estimated, not counted: no tokenizer for the providers' models is packaged for C++ on
// Debian, so a message costs ceil(UTF-8 bytes / 4) + 4 tokens (the per-message overhead of the chat
// format). The estimate overcounts text in most scripts other than Latin, so a budget errs on the
// side of sending less.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "services/chat_service.hpp"
#include "store/conversation_store.hpp"

namespace parley::services {

inline constexpr std::int64_t kMessageOverheadTokens = 4;

// Estimated tokens of one message with this content.
std::int64_t estimate_tokens(std::string_view content);

// Context budgets: a default, and per-model budgets matched in order (exact name, or a prefix
// ending in '*').
struct ContextBudgets {
  std::int64_t fallback = 4096;
  std::vector<std::pair<std::string, std::int64_t>> by_model;
  [[nodiscard]] std::int64_t for_model(std::string_view model) const;
};

// Builds the messages sent to the model.
// - `system`: the conversation's system message, else the user's system_prompt preference; always
//   first when set, whatever its size.
// - `newest_first`: stored messages, newest first; the first one is the message being answered
//   and is always included. Older ones are added while the running estimate stays within
//   `budget`; the first that does not fit ends the history (messages are dropped whole, never cut,
//   and never skipped to fit an older one in). Answers without content (failed before any token)
//   are left out. A history that would begin with an answer begins at the next user message.
std::vector<ChatMessage> build_context(const std::optional<std::string>& system,
                                       std::span<const store::MessageRecord> newest_first,
                                       std::int64_t budget);

}  // namespace parley::services
