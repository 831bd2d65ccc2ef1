#include "api/json_input.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace parley::api {

Result<bj::object> read_object(const http::RequestContext& ctx) {
  auto value = http::parse_json_body(ctx);
  if (!value) return std::unexpected(value.error());
  if (!value->is_object()) return validation("body", "Request body must be a JSON object");
  return std::move(value->as_object());
}

Status only_fields(const bj::object& object, std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object) {
    bool ok = false;
    for (auto a : allowed) ok = ok || a == std::string_view(key);
    if (!ok)
      return validation(std::string(key),
                        fmt::format("Unknown or read-only field \"{}\"", std::string_view(key)));
  }
  return {};
}

std::optional<std::size_t> utf8_length(std::string_view text) {
  // RFC 3629: the shortest form only, no UTF-16 surrogates, nothing past U+10FFFF.
  static constexpr char32_t kSmallest[5] = {0, 0, 0x80, 0x800, 0x10000};
  std::size_t count = 0;
  for (std::size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > text.size()) return std::nullopt;
    char32_t code = n == 1 ? c : c & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next >> 6) != 0x2) return std::nullopt;
      code = code << 6 | (next & 0x3F);
    }
    if (code < kSmallest[n] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return std::nullopt;
    i += n;
    ++count;
  }
  return count;
}

namespace {
const bj::value* find(const bj::object& o, std::string_view name) {
  auto it = o.find(name);
  if (it == o.end() || it->value().is_null()) return nullptr;
  return &it->value();
}
std::unexpected<Error> missing(std::string_view name) {
  return validation(std::string(name), fmt::format("{} is required", name));
}
}  // namespace

Result<std::optional<std::string>> get_string(const bj::object& o, std::string_view name, bool required,
                                              StringRule rule) {
  const bj::value* v = find(o, name);
  if (v == nullptr) {
    if (required) return missing(name);
    return std::optional<std::string>{};
  }
  if (!v->is_string()) return validation(std::string(name), fmt::format("{} must be a string", name));
  std::string s(v->as_string());
  if (rule.trim) {
    auto b = s.find_first_not_of(" \t\r\n");
    auto e = s.find_last_not_of(" \t\r\n");
    s = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  }
  auto len = utf8_length(s);
  if (!len) return validation(std::string(name), fmt::format("{} must be valid UTF-8", name));
  if (rule.one_line) {
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7F) {
        return validation(std::string(name), fmt::format("{} must not contain control characters", name));
      }
    }
  }
  if (*len < rule.min || *len > rule.max) {
    if (rule.min > 0 && *len == 0)
      return validation(std::string(name), fmt::format("{} must not be empty", name));
    return validation(std::string(name),
                      fmt::format("{} must be between {} and {} characters long", name, rule.min, rule.max));
  }
  return std::optional<std::string>(std::move(s));
}

Result<std::optional<std::int64_t>> get_int(const bj::object& o, std::string_view name, bool required,
                                            std::int64_t min, std::int64_t max) {
  const bj::value* v = find(o, name);
  if (v == nullptr) {
    if (required) return missing(name);
    return std::optional<std::int64_t>{};
  }
  std::int64_t n = 0;
  if (v->is_int64()) {
    n = v->as_int64();
  } else if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    n = static_cast<std::int64_t>(v->as_uint64());
  } else if (v->is_double() && std::trunc(v->as_double()) == v->as_double() &&
             std::abs(v->as_double()) < 9e15) {
    n = static_cast<std::int64_t>(v->as_double());
  } else {
    return validation(std::string(name), fmt::format("{} must be an integer", name));
  }
  if (n < min || n > max)
    return validation(std::string(name), fmt::format("{} must be between {} and {}", name, min, max));
  return std::optional<std::int64_t>(n);
}

std::optional<std::int64_t> to_int(std::string_view text) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

Result<LimitsPatch> read_limits_patch(const bj::object& o) {
  LimitsPatch patch;
  // A present field: null removes the limit, a whole number in range sets it.
  auto whole = [&](std::string_view name, std::int64_t max,
                   std::optional<std::optional<std::int64_t>>& out) -> Status {
    const bj::value* v = find(o, name);
    if (v == nullptr) {
      if (o.contains(name)) out = std::optional<std::int64_t>{};  // explicit null
      return {};
    }
    auto n = get_int(o, name, true, 0, max);
    if (!n) return std::unexpected(n.error());
    out = *n;
    return {};
  };
  if (auto s = whole("rate_limit_per_minute", 100'000'000, patch.rate_limit_per_minute); !s) {
    return std::unexpected(s.error());
  }
  if (auto s = whole("tokens_per_minute", std::int64_t{1} << 40, patch.tokens_per_minute); !s) {
    return std::unexpected(s.error());
  }
  if (auto s = whole("token_budget", std::int64_t{1} << 50, patch.token_budget); !s) {
    return std::unexpected(s.error());
  }
  if (find(o, "spend_budget_usd") == nullptr) {
    if (o.contains("spend_budget_usd")) patch.spend_budget_nanos = std::optional<std::int64_t>{};
  } else {
    auto usd = get_number(o, "spend_budget_usd", true, 0.0, 1e7);
    if (!usd) return std::unexpected(usd.error());
    patch.spend_budget_nanos = static_cast<std::int64_t>(std::llround(**usd * 1e9));
    if (*patch.spend_budget_nanos == 0) patch.spend_budget_nanos = std::optional<std::int64_t>{};
  }
  auto period = get_string(o, "budget_period", false, {1, 16});
  if (!period) return std::unexpected(period.error());
  if (*period) {
    patch.budget_period = parse_budget_period(**period);
    if (!patch.budget_period) return validation("budget_period", "budget_period must be day, month or total");
  }
  return patch;
}

Result<std::optional<double>> get_number(const bj::object& o, std::string_view name, bool required,
                                         double min, double max) {
  const bj::value* v = find(o, name);
  if (v == nullptr) {
    if (required) return missing(name);
    return std::optional<double>{};
  }
  if (!v->is_number()) return validation(std::string(name), fmt::format("{} must be a number", name));
  double d = v->to_number<double>();
  if (!(d >= min && d <= max))
    return validation(std::string(name), fmt::format("{} must be between {} and {}", name, min, max));
  return std::optional<double>(d);
}

Result<std::optional<bool>> get_bool(const bj::object& o, std::string_view name, bool required) {
  const bj::value* v = find(o, name);
  if (v == nullptr) {
    if (required) return missing(name);
    return std::optional<bool>{};
  }
  if (!v->is_bool()) return validation(std::string(name), fmt::format("{} must be true or false", name));
  return std::optional<bool>(v->as_bool());
}

Result<Page> read_page(const http::RequestContext& ctx, std::int64_t default_limit, std::int64_t max_limit) {
  Page page{default_limit, 0};
  auto parse = [](const std::string& text, std::int64_t& out) {
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && p == text.data() + text.size() && !text.empty();
  };
  if (auto l = ctx.query("limit")) {
    if (!parse(*l, page.limit) || page.limit < 1 || page.limit > max_limit) {
      return validation("limit", fmt::format("limit must be between 1 and {}", max_limit));
    }
  }
  if (auto o = ctx.query("offset")) {
    if (!parse(*o, page.offset) || page.offset < 0 || page.offset > 1'000'000'000) {
      return validation("offset", "offset must be a non-negative integer");
    }
  }
  return page;
}

}  // namespace parley::api
