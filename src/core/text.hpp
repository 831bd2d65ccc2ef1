// Small ASCII text helpers shared by the HTTP layer and the parsers: header names and tokens are
// compared without regard to case, values trimmed of blanks (space and tab, RFC 9110 OWS).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string_view>

namespace parley {

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// `s` without leading and trailing spaces and tabs.
inline std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// UTF-8 code points in `s` (continuation bytes are not counted; `s` is not validated).
inline std::size_t utf8_chars(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

}  // namespace parley
