// Reads a few members of a JSON document without building it. The gateway forwards request and
// answer bodies untouched and only needs `model`, `stream`, `usage`…: building a boost::json
// document for that cost more than everything else parley does with a small answer. outline()
// runs boost::json's validating parser with a handler that keeps only the asked-for members, so
// the whole text is still checked (syntax, depth, UTF-8 of strings) and nothing is allocated for
// what is skipped.
//
// Paths name a member of the root object ("model") or a member of an object that is itself a
// member of the root ("usage.total_tokens"); two levels at most. A member given twice counts as
// its last occurrence, and JsonOutline::repeated says so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parley::upstream {

enum class JsonKind : std::uint8_t { kAbsent, kNull, kBool, kInt, kDouble, kString, kArray, kObject };

struct JsonMember {
  JsonKind kind = JsonKind::kAbsent;
  bool boolean = false;      // kBool
  std::int64_t integer = 0;  // kInt (an unsigned value above INT64_MAX is a kDouble)
  std::string text;          // kString, unescaped
  std::size_t size = 0;      // kArray: elements; kObject: members
};

struct JsonOutline {
  JsonKind root = JsonKind::kAbsent;
  std::vector<JsonMember> members;  // one per requested path, in the order asked
  // A root member that a path names appeared more than once ({"model":"a","model":"b"}). The
  // values above are the last occurrence's; a reader that forwards the text should refuse it,
  // since the next reader may take the first.
  bool repeated = false;
};

// nullopt when `text` is not exactly one valid JSON document (surrounding whitespace allowed).
std::optional<JsonOutline> outline(std::string_view text, std::span<const std::string_view> paths);

}  // namespace parley::upstream
