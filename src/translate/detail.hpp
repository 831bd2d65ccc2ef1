// Helpers shared by the translators' .cpp files; not part of the module's interface.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace parley::translate::detail {

namespace bj = boost::json;

// A field that cannot be translated: 400 naming it.
inline std::unexpected<Error> refuse(std::string param, std::string message) {
  return fail(ErrorKind::kBadRequest, std::move(message), std::move(param));
}
// A field of the wrong shape: 422 naming it.
inline std::unexpected<Error> invalid(std::string param, std::string message) {
  return fail(ErrorKind::kValidation, std::move(message), std::move(param));
}

inline std::string at(std::string_view base, std::size_t index) {
  std::string out;
  out.reserve(base.size() + 8);
  out.append(base);
  out.push_back('[');
  out.append(std::to_string(index));
  out.push_back(']');
  return out;
}

inline std::string dot(std::string_view base, std::string_view member) {
  std::string out;
  out.reserve(base.size() + 1 + member.size());
  out.append(base);
  out.push_back('.');
  out.append(member);
  return out;
}

// The member, or nullptr when it is absent or null (JSON null counts as "not given" everywhere).
inline const bj::value* given(const bj::object& object, std::string_view key) noexcept {
  const bj::value* v = object.if_contains(key);
  return (v == nullptr || v->is_null()) ? nullptr : v;
}

// A position as a JSON integer (int64, as clients read it back), not an unsigned size.
inline std::int64_t index(std::size_t position) noexcept {
  return static_cast<std::int64_t>(position);
}

inline bool is_number(const bj::value& v) noexcept {
  return v.is_int64() || v.is_uint64() || v.is_double();
}

// A whole number member (JSON integer, or a double with no fraction), else `fallback`.
inline std::int64_t integer_or(const bj::object& object, std::string_view key,
                               std::int64_t fallback) noexcept {
  const bj::value* v = object.if_contains(key);
  if (v == nullptr) return fallback;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return fallback;
}

inline std::string_view string_or(const bj::object& object, std::string_view key,
                                  std::string_view fallback = {}) noexcept {
  const bj::value* v = object.if_contains(key);
  if (v == nullptr || !v->is_string()) return fallback;
  return v->get_string();
}

inline const bj::object* object_member(const bj::object& object, std::string_view key) noexcept {
  const bj::value* v = object.if_contains(key);
  return v == nullptr ? nullptr : v->if_object();
}

inline const bj::array* array_member(const bj::object& object, std::string_view key) noexcept {
  const bj::value* v = object.if_contains(key);
  return v == nullptr ? nullptr : v->if_array();
}

// Appends `piece` to `out`, with `separator` between pieces.
// What choice 0 of a chat-completions stream chunk carries: text, refusal text, tool-call pieces,
// log probabilities of the text, the finish reason (empty views / null when absent).
struct ChoicePiece {
  std::string_view text;
  std::string_view refusal;
  const bj::array* tool_calls = nullptr;
  const bj::value* logprobs = nullptr;
  std::string_view finish_reason;
};

// Calls `on(piece)` for each choice 0 of a chat-completions stream chunk (the translators answer
// one choice).
template <class On>
void for_each_choice_piece(const bj::object& chunk, On&& on) {
  const bj::array* choices = array_member(chunk, "choices");
  if (choices == nullptr) return;
  for (const bj::value& c : *choices) {
    const bj::object* choice = c.if_object();
    if (choice == nullptr || integer_or(*choice, "index", 0) != 0) continue;
    ChoicePiece piece;
    if (const bj::object* delta = object_member(*choice, "delta")) {
      piece.text = string_or(*delta, "content");
      piece.refusal = string_or(*delta, "refusal");
      piece.tool_calls = array_member(*delta, "tool_calls");
      if (const bj::object* lp = object_member(*choice, "logprobs"))
        piece.logprobs = lp->if_contains("content");
    }
    piece.finish_reason = string_or(*choice, "finish_reason");
    on(piece);
  }
}

inline void join(std::string& out, std::string_view piece, std::string_view separator) {
  if (!out.empty()) out.append(separator);
  out.append(piece);
}

// The id's part after its prefix ("resp_abc" → "abc"), for deriving the ids of its items.
inline std::string_view id_suffix(std::string_view id, std::string_view prefix) noexcept {
  if (id.starts_with(prefix)) id.remove_prefix(prefix.size());
  return id;
}

// Chat-completions usage numbers, absent members read as 0.
struct ChatUsage {
  bool present = false;
  std::int64_t prompt = 0;
  std::int64_t completion = 0;
  std::int64_t total = 0;
  std::int64_t cached = 0;     // prompt_tokens_details.cached_tokens
  std::int64_t reasoning = 0;  // completion_tokens_details.reasoning_tokens
};

inline ChatUsage read_chat_usage(const bj::object* usage) noexcept {
  ChatUsage u;
  if (usage == nullptr) return u;
  u.present = true;
  u.prompt = integer_or(*usage, "prompt_tokens", 0);
  u.completion = integer_or(*usage, "completion_tokens", 0);
  u.total = integer_or(*usage, "total_tokens", u.prompt + u.completion);
  if (const bj::object* d = object_member(*usage, "prompt_tokens_details"))
    u.cached = integer_or(*d, "cached_tokens", 0);
  if (const bj::object* d = object_member(*usage, "completion_tokens_details")) {
    u.reasoning = integer_or(*d, "reasoning_tokens", 0);
  }
  return u;
}

}  // namespace parley::translate::detail
