// Reading request bodies strictly: a body must be a JSON object, may contain only the fields a
// route accepts (no mass assignment), and each field is type- and range-checked. Every failure is
// a 422 VALIDATION_ERROR whose `param` names the field.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/limits.hpp"
#include "http/types.hpp"

namespace parley::api {

namespace bj = boost::json;

// Parses the body as JSON and requires an object (400 INVALID_JSON / 422 otherwise).
Result<bj::object> read_object(const http::RequestContext& ctx);

// 422 naming the first field of `object` that is not in `allowed`.
Status only_fields(const bj::object& object, std::initializer_list<std::string_view> allowed);

struct StringRule {
  std::size_t min = 0;
  std::size_t max = 4096;  // in UTF-8 code points
  bool trim = false;       // strip surrounding whitespace before checking
  bool one_line = false;   // a name or title: no control characters (NUL, newlines, escapes, DEL)
};

// Absent or null → nullopt when optional, 422 "is required" otherwise.
Result<std::optional<std::string>> get_string(const bj::object& o, std::string_view name, bool required,
                                              StringRule rule = {});
Result<std::optional<std::int64_t>> get_int(const bj::object& o, std::string_view name, bool required,
                                            std::int64_t min, std::int64_t max);
// The limit fields of a key or a user (docs/LIMITS.md): rate_limit_per_minute, tokens_per_minute,
// token_budget (whole numbers ≥ 1), spend_budget_usd (a number ≥ 0), each null to remove it, and
// budget_period (day | month | total). Absent fields stay unset in the patch.
Result<LimitsPatch> read_limits_patch(const bj::object& o);

Result<std::optional<double>> get_number(const bj::object& o, std::string_view name, bool required,
                                         double min, double max);
Result<std::optional<bool>> get_bool(const bj::object& o, std::string_view name, bool required);

// A whole decimal number and nothing else ("12", "-3"), for query parameters and cursors.
std::optional<std::int64_t> to_int(std::string_view text);

// Counts UTF-8 code points; nullopt when `text` is not valid UTF-8.
std::optional<std::size_t> utf8_length(std::string_view text);

// Pagination from ?limit=&offset= with bounds (limit 1..max_limit, default default_limit).
struct Page {
  std::int64_t limit;
  std::int64_t offset;
};
Result<Page> read_page(const http::RequestContext& ctx, std::int64_t default_limit = 50,
                       std::int64_t max_limit = 200);

}  // namespace parley::api
