// Internal to the store module: small helpers the domain stores share.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "store/database.hpp"
#include "store/page.hpp"

namespace parley::store::detail {

template <class T>
std::unexpected<Error> forward_error(Result<T>& result) {
  return std::unexpected(std::move(result.error()));
}

// ASCII lower-casing: usernames are ASCII by rule; e-mail domains and the usual local parts are.
inline std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A LIKE pattern matching `needle` anywhere, lower-cased, with %, _ and \ escaped (use with
// ESCAPE '\').
inline std::string like_contains(std::string_view needle) {
  std::string out = "%";
  for (char c : lower_ascii(needle)) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  out += '%';
  return out;
}

inline PageRequest clamp_page(PageRequest page) {
  page.limit = std::clamp<std::int64_t>(page.limit, 0, kMaxPageLimit);
  page.offset = std::max<std::int64_t>(page.offset, 0);
  return page;
}

// Collects parameters for SQL assembled from fixed fragments; add() returns the placeholder.
class Params {
 public:
  std::string add(Value v) {
    values_.push_back(std::move(v));
    return "$" + std::to_string(values_.size());
  }
  [[nodiscard]] std::span<const Value> span() const noexcept { return values_; }
  [[nodiscard]] bool empty() const noexcept { return values_.empty(); }

 private:
  std::vector<Value> values_;
};

// For kConflict errors, names the field whose unique index was violated: the first marker found
// in the driver's message (SQLite names the columns, PostgreSQL the index) sets Error::param.
inline Error name_conflict(Error error,
                           std::initializer_list<std::pair<std::string_view, std::string_view>> markers) {
  if (error.kind != ErrorKind::kConflict) return error;
  for (const auto& [marker, field] : markers) {
    if (error.message.find(marker) != std::string::npos) {
      error.param = std::string(field);
      break;
    }
  }
  return error;
}

}  // namespace parley::store::detail
