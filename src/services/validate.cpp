#include "services/validate.hpp"

#include <algorithm>
#include <cctype>

#include "core/text.hpp"

namespace parley::services {

std::string to_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Status check_username(std::string_view username) {
  if (username.size() < 3 || username.size() > 32) {
    return validation("username", "username must be 3 to 32 characters long");
  }
  bool ok = std::all_of(username.begin(), username.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-';
  });
  if (!ok) return validation("username", "username may contain only letters, digits, '_', '.' and '-'");
  return {};
}

Status check_email(std::string_view email) {
  auto bad = [] { return validation("email", "email must be a valid e-mail address"); };
  if (email.size() > 254 || email.size() < 3) return bad();
  auto at = email.find('@');
  if (at == std::string_view::npos || email.find('@', at + 1) != std::string_view::npos) return bad();
  std::string_view local = email.substr(0, at);
  std::string_view domain = email.substr(at + 1);
  if (local.empty() || local.size() > 64 || domain.size() < 3) return bad();
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) return bad();
  for (char c : local) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 &&
        std::string_view("!#$%&'*+/=?^_`{|}~.-").find(c) == std::string_view::npos) {
      return bad();
    }
  }
  if (domain.find('.') == std::string_view::npos) return bad();
  std::size_t start = 0;
  while (start <= domain.size()) {
    std::size_t dot = domain.find('.', start);
    std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return bad();
    for (char c : label) {
      if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-') return bad();
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return {};
}

Status check_phone(std::string_view phone) {
  if (phone.size() < 3 || phone.size() > 16 || phone[0] != '+' || phone[1] < '1' || phone[1] > '9' ||
      !std::all_of(phone.begin() + 1, phone.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return validation("phone_number", "phone_number must be in E.164 form, e.g. +14155550123");
  }
  return {};
}

Status check_password(std::string_view password) {
  const std::size_t chars = utf8_chars(password);
  if (chars < 8 || chars > 1024) return validation("password", "password must be 8 to 1024 characters long");
  return {};
}

}  // namespace parley::services
