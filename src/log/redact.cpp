#include "log/redact.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace parley::log {
namespace {

constexpr std::string_view kMask = "[REDACTED]";

bool is_key_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}
bool is_b64url_char(char c) {
  return is_key_char(c) || c == '=';
}
bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' || c == '~' ||
         c == '+' || c == '/' || c == '=';
}

bool starts_with_ci(std::string_view text, std::size_t pos, std::string_view prefix) {
  if (text.size() - pos < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[pos + i])) != prefix[i]) return false;
  }
  return true;
}

bool word_boundary_before(std::string_view text, std::size_t pos) {
  return pos == 0 || !std::isalnum(static_cast<unsigned char>(text[pos - 1]));
}

std::size_t span_of(std::string_view text, std::size_t pos, bool (*pred)(char)) {
  std::size_t end = pos;
  while (end < text.size() && pred(text[end])) ++end;
  return end - pos;
}

// Field names whose values are secrets wherever they appear as k=v, k: v or "k":"v".
// (Authorization headers are caught by the Bearer/Basic rule, which keeps the scheme readable.)
constexpr std::array<std::string_view, 8> kSecretFields{
    "password", "api_key", "apikey", "secret", "access_token", "refresh_token", "token", "x-api-key"};

// If a secret field name starts at `pos`, returns the length of "name<sep>" including quotes and the
// separator, and sets value_quoted when the value is inside double quotes.
std::size_t secret_field_prefix(std::string_view text, std::size_t pos, bool& value_quoted) {
  bool quoted_name = text[pos] == '"';
  std::size_t name_pos = quoted_name ? pos + 1 : pos;
  if (!quoted_name && !word_boundary_before(text, pos)) return 0;
  for (std::string_view field : kSecretFields) {
    if (!starts_with_ci(text, name_pos, field)) continue;
    std::size_t i = name_pos + field.size();
    if (quoted_name) {
      if (i >= text.size() || text[i] != '"') continue;
      ++i;
    } else if (i < text.size() &&
               (std::isalnum(static_cast<unsigned char>(text[i])) != 0 || text[i] == '_')) {
      continue;
    }
    while (i < text.size() && text[i] == ' ') ++i;
    if (i >= text.size() || (text[i] != '=' && text[i] != ':')) continue;
    ++i;
    while (i < text.size() && text[i] == ' ') ++i;
    value_quoted = i < text.size() && text[i] == '"';
    if (value_quoted) ++i;
    return i - pos;
  }
  return 0;
}

// Length of a match starting at pos for value-shaped secrets, 0 when none.
std::size_t secret_value_at(std::string_view text, std::size_t pos) {
  char c = text[pos];
  if ((c == 's' || c == 'a') && word_boundary_before(text, pos)) {
    if (text.substr(pos, 3) == "sk-" || text.substr(pos, 3) == "ai_") {
      std::size_t n = span_of(text, pos + 3, is_key_char);
      if (n >= 8) return 3 + n;
    }
  }
  if (c == 'e' && text.substr(pos, 3) == "eyJ" && word_boundary_before(text, pos)) {
    std::size_t n = span_of(text, pos, [](char ch) { return is_key_char(ch) || ch == '.'; });
    std::string_view token = text.substr(pos, n);
    if (std::count(token.begin(), token.end(), '.') >= 2 && n >= 20) return n;
  }
  if (c == 'g' && text.substr(pos, 6) == "gAAAAA" && word_boundary_before(text, pos)) {
    std::size_t n = span_of(text, pos, is_b64url_char);
    if (n >= 40) return n;
  }
  return 0;
}

}  // namespace

std::string redact(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    // Bearer / Basic credentials.
    if ((starts_with_ci(text, i, "bearer ") || starts_with_ci(text, i, "basic ")) &&
        word_boundary_before(text, i)) {
      std::size_t word = starts_with_ci(text, i, "bearer ") ? 7 : 6;
      std::size_t n = span_of(text, i + word, is_token_char);
      if (n > 0) {
        out.append(text.substr(i, word));
        out.append(kMask);
        i += word + n;
        continue;
      }
    }
    // URL credentials: scheme://user:password@
    if (text.substr(i, 3) == "://") {
      std::size_t at = text.find('@', i + 3);
      std::size_t stop = text.find_first_of(" /\"'\n", i + 3);
      if (at != std::string_view::npos && (stop == std::string_view::npos || at < stop)) {
        std::size_t colon = text.find(':', i + 3);
        if (colon != std::string_view::npos && colon < at) {
          out.append(text.substr(i, colon + 1 - i));
          out.append(kMask);
          i = at;
          continue;
        }
      }
    }
    bool value_quoted = false;
    if (std::size_t prefix = secret_field_prefix(text, i, value_quoted); prefix > 0) {
      out.append(text.substr(i, prefix));
      std::size_t v = i + prefix;
      std::size_t end = v;
      if (value_quoted) {
        while (end < text.size() && text[end] != '"') {
          end += (text[end] == '\\' && end + 1 < text.size()) ? 2 : 1;
        }
      } else {
        while (end < text.size() && text[end] != ' ' && text[end] != ',' && text[end] != '&' &&
               text[end] != '\n' && text[end] != '}') {
          ++end;
        }
      }
      if (end > v) out.append(kMask);
      i = end;
      continue;
    }
    if (std::size_t n = secret_value_at(text, i); n > 0) {
      out.append(kMask);
      i += n;
      continue;
    }
    out.push_back(text[i]);
    ++i;
  }
  return out;
}

bool needs_redaction(std::string_view text) {
  return redact(text) != text;
}

}  // namespace parley::log
