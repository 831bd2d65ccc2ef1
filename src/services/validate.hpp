// Field rules shared by the HTTP handlers and the command line (admin create). Each returns a 422
// naming the field on failure.
#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"

namespace parley::services {

// 3–32 characters of [A-Za-z0-9_.-].
Status check_username(std::string_view username);
// A practical RFC 5321 subset: local@domain.tld, at most 254 characters, no spaces.
Status check_email(std::string_view email);
// E.164: '+' then 2–15 digits, the first not 0.
Status check_phone(std::string_view phone);
// 8–1024 characters (code points).
Status check_password(std::string_view password);

std::string to_lower(std::string_view text);

}  // namespace parley::services
