// Small text helpers for HTTP header values, shared by the server, the request reader and the
// handlers that read headers themselves.
#pragma once

#include <string_view>

namespace parley::http {

// ASCII case-insensitive equality (header names, tokens, schemes).
bool iequals(std::string_view a, std::string_view b);
// Without the spaces and tabs around it (optional whitespace, RFC 9110 §5.6.3).
std::string_view trim_ows(std::string_view s);

}  // namespace parley::http
