#include "store/database.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "store/detail.hpp"

namespace parley::store {

namespace {

bool parse_whole_int(std::string_view text, std::int64_t& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && !text.empty();
}

bool parse_whole_double(std::string_view text, double& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && !text.empty();
}

std::int64_t double_to_int(double d) {
  // Out-of-range conversion is undefined behaviour; clamp instead.
  if (std::isnan(d)) return 0;
  if (d >= 9.2233720368547758e18) return std::numeric_limits<std::int64_t>::max();
  if (d <= -9.2233720368547758e18) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(d);
}

std::string format_double(double d) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return ec == std::errc() ? std::string(buf, ptr) : std::string();
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Byte ranges [begin, end) of the secrets in a URL: the user-info password and the values of
// query parameters whose key ends in "password".
std::vector<std::pair<std::size_t, std::size_t>> secret_ranges(std::string_view url) {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  const std::size_t scheme_end = url.find("://");
  std::size_t query_start = url.find('?');
  if (scheme_end != std::string_view::npos &&
      (query_start == std::string_view::npos || scheme_end < query_start)) {
    const std::size_t auth_start = scheme_end + 3;
    std::size_t auth_end = url.find_first_of("/?#", auth_start);
    if (auth_end == std::string_view::npos) auth_end = url.size();
    const std::string_view authority = url.substr(auth_start, auth_end - auth_start);
    const std::size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
      const std::size_t colon = authority.find(':');
      if (colon != std::string_view::npos && colon < at) {
        ranges.emplace_back(auth_start + colon + 1, auth_start + at);
      }
    }
  }
  if (query_start != std::string_view::npos) {
    std::size_t pos = query_start + 1;
    while (pos <= url.size()) {
      std::size_t end = url.find_first_of("&#", pos);
      if (end == std::string_view::npos) end = url.size();
      const std::string_view param = url.substr(pos, end - pos);
      const std::size_t eq = param.find('=');
      if (eq != std::string_view::npos) {
        std::string key(param.substr(0, eq));
        std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
        if (key.size() >= 8 && key.ends_with("password")) ranges.emplace_back(pos + eq + 1, end);
      }
      if (end >= url.size() || url[end] == '#') break;
      pos = end + 1;
    }
  }
  return ranges;
}

}  // namespace

std::string_view dialect_name(Dialect dialect) noexcept {
  switch (dialect) {
    case Dialect::kSqlite:
      return "sqlite";
    case Dialect::kPostgres:
      return "postgresql";
  }
  return "unknown";
}

// ---- Row ------------------------------------------------------------------------------------

const Value& Row::at(std::size_t column) const noexcept {
  static const Value null_value;
  return column < values_.size() ? values_[column] : null_value;
}

std::int64_t Row::get_int(std::size_t column) const {
  const Value& v = at(column);
  if (const auto* i = v.if_int()) return *i;
  if (const auto* d = v.if_double()) return double_to_int(*d);
  if (const auto* t = v.if_text()) {
    std::int64_t i = 0;
    if (parse_whole_int(*t, i)) return i;
    double d = 0;
    if (parse_whole_double(*t, d)) return double_to_int(d);
  }
  return 0;
}

double Row::get_double(std::size_t column) const {
  const Value& v = at(column);
  if (const auto* d = v.if_double()) return *d;
  if (const auto* i = v.if_int()) return static_cast<double>(*i);
  if (const auto* t = v.if_text()) {
    double d = 0;
    if (parse_whole_double(*t, d)) return d;
  }
  return 0;
}

std::string Row::get_string(std::size_t column) const {
  const Value& v = at(column);
  if (const auto* t = v.if_text()) return *t;
  if (const auto* b = v.if_bytes()) return b->data;
  if (const auto* i = v.if_int()) return std::to_string(*i);
  if (const auto* d = v.if_double()) return format_double(*d);
  return {};
}

std::optional<std::int64_t> Row::get_optional_int(std::size_t column) const {
  if (is_null(column)) return std::nullopt;
  return get_int(column);
}

std::optional<bool> Row::get_optional_bool(std::size_t column) const {
  if (is_null(column)) return std::nullopt;
  return get_bool(column);
}

std::optional<std::string> Row::get_optional_string(std::size_t column) const {
  if (is_null(column)) return std::nullopt;
  return get_string(column);
}

// ---- Connection -----------------------------------------------------------------------------

Status Connection::transaction(const std::function<Status(Connection&)>& body) {
  const std::string name = fmt::format("parley_sp_{}", savepoint_depth_ + 1);
  if (Status st = execute_script("SAVEPOINT " + name); !st) return st;
  ++savepoint_depth_;
  Status outcome = detail::guarded("transaction body", [&]() -> Status { return body(*this); });
  --savepoint_depth_;
  if (outcome) return execute_script("RELEASE SAVEPOINT " + name);
  (void)execute_script("ROLLBACK TO SAVEPOINT " + name);
  (void)execute_script("RELEASE SAVEPOINT " + name);
  return outcome;
}

// ---- URLs -----------------------------------------------------------------------------------

Result<ParsedDatabaseUrl> parse_database_url(std::string_view url) {
  if (url.empty()) return fail(ErrorKind::kValidation, "database URL is empty", "url");
  if (starts_with(url, "postgresql://") || starts_with(url, "postgres://")) {
    return ParsedDatabaseUrl{Dialect::kPostgres, std::string(url)};
  }
  if (starts_with(url, "sqlite:")) {
    std::string_view rest = url.substr(7);
    if (starts_with(rest, "//")) rest.remove_prefix(2);
    if (rest.empty()) return fail(ErrorKind::kValidation, "sqlite database URL has no path", "url");
    return ParsedDatabaseUrl{Dialect::kSqlite, std::string(rest)};
  }
  if (const std::size_t scheme_end = url.find("://"); scheme_end != std::string_view::npos) {
    return fail(ErrorKind::kValidation,
                fmt::format("unsupported database URL scheme '{}' (use sqlite:// or postgresql://)",
                            url.substr(0, scheme_end)),
                "url");
  }
  return ParsedDatabaseUrl{Dialect::kSqlite, std::string(url)};
}

std::string redact_database_url(std::string_view url) {
  std::string out;
  std::size_t copied = 0;
  for (const auto& [begin, end] : secret_ranges(url)) {
    out.append(url.substr(copied, begin - copied));
    out += "***";
    copied = end;
  }
  out.append(url.substr(copied));
  return out;
}

namespace {

// Splits SQL text into plain runs and $N placeholders, skipping '...' strings, "..." and `...`
// identifiers, -- and /* */ comments, and a '$' that continues an identifier (a$1).
template <class OnText, class OnPlaceholder>
void scan_sql(std::string_view sql, OnText on_text, OnPlaceholder on_placeholder) {
  auto continues_identifier = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || static_cast<unsigned char>(c) >= 0x80;
  };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const std::size_t n = sql.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = sql[i];
    std::size_t j = i + 1;
    if (c == '\'' || c == '"' || c == '`') {
      // A doubled quote inside a quoted run is an escaped quote, not its end.
      while (j < n) {
        if (sql[j] == c) {
          if (j + 1 < n && sql[j + 1] == c) {
            j += 2;
            continue;
          }
          ++j;
          break;
        }
        ++j;
      }
    } else if (c == '-' && j < n && sql[j] == '-') {
      j = sql.find('\n', i);
      j = j == std::string_view::npos ? n : j + 1;
    } else if (c == '/' && j < n && sql[j] == '*') {
      j = sql.find("*/", i + 2);
      j = j == std::string_view::npos ? n : j + 2;
    } else if (c == '$' && j < n && is_digit(sql[j]) && (i == 0 || !continues_identifier(sql[i - 1]))) {
      while (j < n && is_digit(sql[j])) ++j;
      on_placeholder(sql.substr(i + 1, j - i - 1));
      i = j;
      continue;
    }
    on_text(sql.substr(i, j - i));
    i = j;
  }
}

}  // namespace

std::string to_sqlite_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  scan_sql(
      sql, [&](std::string_view text) { out.append(text); },
      [&](std::string_view digits) {
        out += '?';
        out.append(digits);
      });
  return out;
}

namespace detail {

int highest_placeholder(std::string_view sql) {
  int highest = 0;
  scan_sql(
      sql, [](std::string_view) {},
      [&](std::string_view digits) {
        int number = 0;
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
        if (ec != std::errc() || ptr != digits.data() + digits.size())
          number = std::numeric_limits<int>::max();
        highest = std::max(highest, number);
      });
  return highest;
}

}  // namespace detail

// ---- factory ----------------------------------------------------------------------------------

namespace detail {

std::vector<std::string> url_secrets(std::string_view url) {
  std::vector<std::string> secrets;
  for (const auto& [begin, end] : secret_ranges(url)) {
    if (end <= begin) continue;
    std::string raw(url.substr(begin, end - begin));
    std::string decoded = percent_decode(raw);
    if (decoded != raw && !decoded.empty()) secrets.push_back(std::move(decoded));
    secrets.push_back(std::move(raw));
  }
  return secrets;
}

std::string scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    for (std::size_t pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3)) {
      text.replace(pos, secret.size(), "***");
    }
  }
  return text;
}

}  // namespace detail

Result<std::unique_ptr<Database>> open_database(const DatabaseOptions& options) {
  return detail::guarded("open database", [&]() -> Result<std::unique_ptr<Database>> {
    Result<ParsedDatabaseUrl> parsed = parse_database_url(options.url);
    if (!parsed) return std::unexpected(std::move(parsed.error()));
    if (parsed->dialect == Dialect::kSqlite) return detail::open_sqlite(options, parsed->target);
    return detail::open_postgres(options);
  });
}

}  // namespace parley::store
