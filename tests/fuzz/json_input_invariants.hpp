// The properties of reading JSON request bodies that the libFuzzer target `json_input_fuzz` and
// the unit test `api_json_input_property_test.cpp` check: http::parse_json_body, the strict field
// readers of api/json_input.hpp, and upstream::outline (the /v1 body reader).
//
//   - nothing crashes or trips ASan/UBSan, whatever the body, Content-Type and rules;
//   - every failure is a 4xx: 415 for a Content-Type that is not JSON, 400 INVALID_JSON for a body
//     that is not JSON or repeats a key within one object, 422 VALIDATION_ERROR naming the field;
//   - parse_json_body accepts exactly the bodies that are JSON without a repeated key (checked
//     against boost::json::parse and a key-set reading of their own), with a JSON Content-Type;
//     read_object exactly those that are objects; only_fields names the first unknown field;
//   - get_string returns valid UTF-8 (checked by a decoder of its own) within the rule's length
//     in code points, trimmed when asked, and without control characters for one_line; it refuses
//     only what breaks the rule; get_int, get_number and get_bool return values of their type
//     within bounds, equal to the document's;
//   - utf8_length counts like a strict decoder of its own (RFC 3629: no overlong forms, no
//     surrogates, nothing past U+10FFFF), on the raw body and on every string;
//   - outline agrees with boost::json::parse on whether the text is one JSON document, on the
//     root's kind and on every requested member (kind, value, size; the last of a repeated key),
//     and sets `repeated` exactly when a requested root member is given twice.
//
// Input layout: byte 0 picks the Content-Type (bits 0-2) and the string rule's bounds (bits 3-5),
// byte 1 the rule's flags (bit 0 trim, bit 1 one_line, bit 2 required) and the integer and number
// bounds (bits 3-5); the rest is the body.
#pragma once

#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/json_input.hpp"
#include "http/types.hpp"
#include "upstream/json_outline.hpp"

namespace parley::api::fuzz {

namespace bj = boost::json;

// Strict UTF-8 (RFC 3629, Unicode table 3-7): code points, or nullopt for ill-formed text.
inline std::optional<std::size_t> strict_utf8_length(std::string_view text) {
  std::size_t count = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b0 <= 0x7F) {
      n = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      n = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      n = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      return std::nullopt;
    }
    if (text.size() - i < n) return std::nullopt;
    for (std::size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      const unsigned char low = k == 1 ? lo : 0x80;
      const unsigned char high = k == 1 ? hi : 0xBF;
      if (b < low || b > high) return std::nullopt;
    }
    i += n;
    ++count;
  }
  return count;
}

// basic_parser handler: does some object repeat a key (after unescaping)? And the root object's
// keys with how often each appears.
class KeyRecorder {
 public:
  // Names fixed by boost::json's handler interface.
  // NOLINTBEGIN(readability-identifier-naming)
  static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();
  // NOLINTEND(readability-identifier-naming)
  using ec = boost::system::error_code;
  using sv = bj::string_view;

  struct Result {
    bool repeats = false;
    std::map<std::string, int> root_keys;
  };
  explicit KeyRecorder(Result& out) : out_(out) {}
  bool on_document_begin(ec&) { return true; }
  bool on_document_end(ec&) { return true; }
  bool on_object_begin(ec&) {
    open_.emplace_back(true);
    return true;
  }
  bool on_object_end(std::size_t, ec&) {
    open_.pop_back();
    return true;
  }
  bool on_array_begin(ec&) {
    open_.emplace_back(false);
    return true;
  }
  bool on_array_end(std::size_t, ec&) {
    open_.pop_back();
    return true;
  }
  bool on_key_part(sv s, std::size_t, ec&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(sv s, std::size_t, ec&) {
    key_.append(s.data(), s.size());
    if (!open_.back().keys.insert(key_).second) out_.repeats = true;
    if (open_.size() == 1) ++out_.root_keys[key_];
    key_.clear();
    return true;
  }
  bool on_string_part(sv, std::size_t, ec&) { return true; }
  bool on_string(sv, std::size_t, ec&) { return true; }
  bool on_number_part(sv, ec&) { return true; }
  bool on_int64(std::int64_t, sv, ec&) { return true; }
  bool on_uint64(std::uint64_t, sv, ec&) { return true; }
  bool on_double(double, sv, ec&) { return true; }
  bool on_bool(bool, ec&) { return true; }
  bool on_null(ec&) { return true; }
  bool on_comment_part(sv, ec&) { return true; }
  bool on_comment(sv, ec&) { return true; }

 private:
  struct Level {
    explicit Level(bool object) : is_object(object) {}
    bool is_object;
    std::set<std::string> keys;
  };
  Result& out_;
  std::vector<Level> open_;
  std::string key_;
};

inline std::optional<KeyRecorder::Result> record_keys(std::string_view text) {
  KeyRecorder::Result out;
  bj::basic_parser<KeyRecorder> parser(bj::parse_options{}, out);
  boost::system::error_code ec;
  const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec || used != text.size() || !parser.done()) return std::nullopt;
  return out;
}

inline std::optional<std::string> check_error(const Error& e, const char* where) {
  if (e.status() < 400 || e.status() > 499) {
    return std::string(where) + " failed with status " + std::to_string(e.status());
  }
  return std::nullopt;
}

struct Rules {
  StringRule string;
  bool required = false;
  std::int64_t int_min = 0;
  std::int64_t int_max = 0;
  double number_min = 0;
  double number_max = 0;
};

inline std::optional<std::string> check_fields(const bj::object& object, const Rules& rules) {
  std::vector<std::string> names{"absent", "name", "n", "x", ""};
  for (const auto& member : object) {
    if (names.size() >= 12) break;
    names.emplace_back(member.key());
  }
  for (const std::string& name : names) {
    const bj::value* v = object.if_contains(name);
    const bool missing = v == nullptr || v->is_null();
    auto bad_error = [&](const Error& e, const char* reader) -> std::optional<std::string> {
      if (auto wrong = check_error(e, reader)) return wrong;
      if (e.kind != ErrorKind::kValidation || e.param != name) {
        return std::string(reader) + " failed without naming field \"" + name + "\"";
      }
      if (missing && !rules.required)
        return std::string(reader) + " refused an optional field that is absent";
      return std::nullopt;
    };

    // get_string: accepted exactly when the (trimmed) string keeps the rule.
    auto s = get_string(object, name, rules.required, rules.string);
    std::optional<std::string> expected;
    bool acceptable = missing && !rules.required;
    if (!missing && v->is_string()) {
      std::string text(v->as_string());
      if (rules.string.trim) {
        auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
        std::size_t b = 0;
        std::size_t e = text.size();
        while (b < e && ws(text[b])) ++b;
        while (e > b && ws(text[e - 1])) --e;
        text = text.substr(b, e - b);
      }
      const std::optional<std::size_t> length = strict_utf8_length(text);
      bool control = false;
      for (const char c : text) control = control || static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
      acceptable = length && *length >= rules.string.min && *length <= rules.string.max &&
                   !(rules.string.one_line && control);
      expected = std::move(text);
    }
    if (!s) {
      if (auto wrong = bad_error(s.error(), "get_string")) return wrong;
      if (acceptable) return "get_string refused \"" + name + "\", which keeps the rule";
    } else {
      if (!acceptable) return "get_string accepted \"" + name + "\", which breaks the rule";
      if (s->has_value() != expected.has_value() || (expected && **s != *expected)) {
        return "get_string returned another value for \"" + name + "\"";
      }
      if (*s) {
        const std::optional<std::size_t> length = strict_utf8_length(**s);
        if (!length) return "get_string returned invalid UTF-8";
        if (*length < rules.string.min || *length > rules.string.max)
          return std::string("get_string out of bounds");
        if (rules.string.one_line) {
          for (const char c : **s) {
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F)
              return std::string("one_line with a control char");
          }
        }
      }
    }

    auto i = get_int(object, name, rules.required, rules.int_min, rules.int_max);
    if (!i) {
      if (auto wrong = bad_error(i.error(), "get_int")) return wrong;
    } else if (*i) {
      if (missing) return std::string("get_int invented a value");
      if (**i < rules.int_min || **i > rules.int_max) return std::string("get_int out of bounds");
      const bool same = (v->is_int64() && v->as_int64() == **i) ||
                        (v->is_uint64() && v->as_uint64() == static_cast<std::uint64_t>(**i)) ||
                        (v->is_double() && v->as_double() == static_cast<double>(**i));
      if (!same) return "get_int returned another value for \"" + name + "\"";
    } else if (!missing) {
      return std::string("get_int lost a value");
    }

    auto d = get_number(object, name, rules.required, rules.number_min, rules.number_max);
    if (!d) {
      if (auto wrong = bad_error(d.error(), "get_number")) return wrong;
    } else if (*d) {
      if (missing || !v->is_number()) return std::string("get_number accepted a non-number");
      if (!(**d >= rules.number_min && **d <= rules.number_max))
        return std::string("get_number out of bounds");
    } else if (!missing) {
      return std::string("get_number lost a value");
    }

    auto b = get_bool(object, name, rules.required);
    if (!b) {
      if (auto wrong = bad_error(b.error(), "get_bool")) return wrong;
      if (!missing && v->is_bool()) return std::string("get_bool refused a boolean");
    } else if (*b) {
      if (missing || !v->is_bool() || v->as_bool() != **b)
        return std::string("get_bool returned another value");
    } else if (!missing) {
      return std::string("get_bool lost a value");
    }
  }
  return std::nullopt;
}

// The member a path names in a parsed document, as outline() describes it.
inline upstream::JsonMember expected_member(const bj::value& root, std::string_view path) {
  upstream::JsonMember m;
  const std::size_t dot = path.find('.');
  const bj::object* o = root.if_object();
  const bj::value* v = o != nullptr ? o->if_contains(path.substr(0, dot)) : nullptr;
  if (v != nullptr && dot != std::string_view::npos) {
    const bj::object* inner = v->if_object();
    v = inner != nullptr ? inner->if_contains(path.substr(dot + 1)) : nullptr;
  }
  if (v == nullptr) return m;
  using upstream::JsonKind;
  if (v->is_null()) m.kind = JsonKind::kNull;
  if (v->is_bool()) {
    m.kind = JsonKind::kBool;
    m.boolean = v->as_bool();
  }
  if (v->is_int64()) {
    m.kind = JsonKind::kInt;
    m.integer = v->as_int64();
  }
  if (v->is_uint64()) {
    if (v->as_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      m.kind = JsonKind::kInt;
      m.integer = static_cast<std::int64_t>(v->as_uint64());
    } else {
      m.kind = JsonKind::kDouble;
    }
  }
  if (v->is_double()) m.kind = JsonKind::kDouble;
  if (v->is_string()) {
    m.kind = JsonKind::kString;
    m.text = std::string(v->as_string());
  }
  if (v->is_array()) {
    m.kind = JsonKind::kArray;
    m.size = v->as_array().size();
  }
  if (v->is_object()) {
    m.kind = JsonKind::kObject;
    m.size = v->as_object().size();
  }
  return m;
}

inline upstream::JsonKind kind_of(const bj::value& v) {
  using upstream::JsonKind;
  if (v.is_null()) return JsonKind::kNull;
  if (v.is_bool()) return JsonKind::kBool;
  if (v.is_int64()) return JsonKind::kInt;
  if (v.is_uint64()) {
    return v.as_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
               ? JsonKind::kInt
               : JsonKind::kDouble;
  }
  if (v.is_double()) return JsonKind::kDouble;
  if (v.is_string()) return JsonKind::kString;
  if (v.is_array()) return JsonKind::kArray;
  return JsonKind::kObject;
}

inline std::optional<std::string> check_outline(std::string_view body, const std::optional<bj::value>& parsed,
                                                const std::optional<KeyRecorder::Result>& keys) {
  static constexpr std::string_view kPaths[] = {"model", "stream", "usage", "usage.total_tokens",
                                                "n",     "a.b",    "a.b.c", ""};
  const std::optional<upstream::JsonOutline> out = upstream::outline(body, kPaths);
  if (out.has_value() != parsed.has_value()) {
    return std::string("outline ") + (out ? "accepted" : "refused") + " what boost::json::parse " +
           (parsed ? "accepted" : "refused");
  }
  if (!out) return std::nullopt;
  if (out->root != kind_of(*parsed)) return std::string("outline reports another root kind");
  if (out->members.size() != std::size(kPaths))
    return std::string("outline reports another number of members");
  bool repeated = false;
  for (std::size_t i = 0; i < std::size(kPaths); ++i) {
    const std::string_view path = kPaths[i];
    const upstream::JsonMember want = expected_member(*parsed, path);
    const upstream::JsonMember& got = out->members[i];
    using upstream::JsonKind;
    // With a key repeated in some object, boost::json keeps one member per key while the outline
    // counts members as written: container sizes and members below the root are compared only
    // when no object repeats a key (a body whose root repeats one is refused anyway: `repeated`).
    const bool repeats = !keys || keys->repeats;
    const bool nested = path.find('.') != std::string_view::npos;
    const bool same =
        (repeats && nested) ||
        (got.kind == want.kind && (want.kind != JsonKind::kBool || got.boolean == want.boolean) &&
         (want.kind != JsonKind::kInt || got.integer == want.integer) &&
         (want.kind != JsonKind::kString || got.text == want.text) &&
         ((want.kind != JsonKind::kArray && want.kind != JsonKind::kObject) || repeats ||
          got.size == want.size));
    if (!same) return "outline reports another value for \"" + std::string(path) + "\"";
    if (keys && parsed->is_object() && path.find('.') == std::string_view::npos) {
      auto it = keys->root_keys.find(std::string(path));
      repeated = repeated || (it != keys->root_keys.end() && it->second > 1);
    }
  }
  if (out->repeated != repeated) return std::string("outline's `repeated` is wrong");
  return std::nullopt;
}

inline std::optional<std::string> check_json_input(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return std::nullopt;
  struct ContentType {
    std::string_view value;
    bool json;
  };
  static constexpr ContentType kTypes[8] = {{"", true},
                                            {"application/json", true},
                                            {"application/json; charset=utf-8", true},
                                            {"application/merge-patch+json", true},
                                            {"text/plain", false},
                                            {"application/jsonx", false},
                                            {"application/json  ;q=1", true},
                                            {"application/x-www-form-urlencoded", false}};
  static constexpr std::size_t kMin[4] = {0, 1, 3, 0};
  static constexpr std::size_t kMax[8] = {0, 1, 5, 64, 4096, 2, 200, std::numeric_limits<std::size_t>::max()};
  static constexpr std::int64_t kIntBounds[8][2] = {
      {0, 0},
      {0, 100},
      {-5, 5},
      {1, 1000000},
      {std::numeric_limits<std::int64_t>::min(), 0},
      {0, std::numeric_limits<std::int64_t>::max()},
      {-9000000000000000, 9000000000000000},
      {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}};
  static constexpr double kNumberBounds[8][2] = {
      {0, 0},       {0, 1},
      {0, 2},       {-1e300, 1e300},
      {-1, -0.5},   {1e-9, 1e9},
      {-1e-300, 0}, {-std::numeric_limits<double>::max(), std::numeric_limits<double>::max()}};
  const ContentType type = kTypes[data[0] & 7u];
  Rules rules;
  rules.string.min = kMin[(data[0] >> 3) & 3u];
  rules.string.max = kMax[(data[0] >> 5) & 7u];
  rules.string.trim = (data[1] & 1u) != 0;
  rules.string.one_line = (data[1] & 2u) != 0;
  rules.required = (data[1] & 4u) != 0;
  rules.int_min = kIntBounds[(data[1] >> 3) & 7u][0];
  rules.int_max = kIntBounds[(data[1] >> 3) & 7u][1];
  rules.number_min = kNumberBounds[(data[1] >> 3) & 7u][0];
  rules.number_max = kNumberBounds[(data[1] >> 3) & 7u][1];
  const std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);

  if (strict_utf8_length(body) != utf8_length(body)) return std::string("utf8_length disagrees on the body");

  http::Request request{http::Method::post, "/api/v1/x", 11};
  if (!type.value.empty()) request.set(http::beast_http::field::content_type, type.value);
  request.body() = std::string(body);
  const http::RequestContext ctx{.request = request};

  boost::system::error_code ec;
  std::optional<bj::value> parsed;
  if (bj::value v = bj::parse(body, ec); !ec) parsed = std::move(v);
  const std::optional<KeyRecorder::Result> keys = record_keys(body);
  if (keys.has_value() != parsed.has_value()) return std::string("the key recorder and boost::json disagree");
  const bool acceptable = type.json && parsed && !keys->repeats;

  if (auto wrong = check_outline(body, parsed, keys)) return wrong;

  auto value = http::parse_json_body(ctx);
  if (!value) {
    if (auto wrong = check_error(value.error(), "parse_json_body")) return wrong;
    if (acceptable) return std::string("parse_json_body refused JSON without a repeated key");
    const ErrorKind want = type.json ? ErrorKind::kInvalidJson : ErrorKind::kUnsupportedMediaType;
    if (value.error().kind != want) return std::string("parse_json_body failed with the wrong kind");
  } else {
    if (!acceptable) return std::string("parse_json_body accepted a body it should refuse");
    // Compared as text: Boost.JSON 1.81 reads 0e400 as NaN, which equals nothing.
    if (bj::serialize(*value) != bj::serialize(*parsed))
      return std::string("parse_json_body returned another document");
  }

  auto object = read_object(ctx);
  if (!object) {
    if (auto wrong = check_error(object.error(), "read_object")) return wrong;
    if (value && value->is_object()) return std::string("read_object refused an object");
    return std::nullopt;
  }
  if (!value || !value->is_object()) return std::string("read_object accepted what is not an object");

  const std::initializer_list<std::string_view> allowed{"name", "n", "x", "model", "title"};
  auto only = only_fields(*object, allowed);
  std::optional<std::string> first_unknown;
  for (const auto& member : *object) {
    if (std::find(allowed.begin(), allowed.end(), std::string_view(member.key())) == allowed.end()) {
      first_unknown = std::string(member.key());
      break;
    }
  }
  if (only.has_value() == first_unknown.has_value()) return std::string("only_fields misjudged the fields");
  if (!only) {
    if (auto wrong = check_error(only.error(), "only_fields")) return wrong;
    if (only.error().param != first_unknown) return std::string("only_fields named another field");
  }

  for (const auto& member : *object) {
    if (const bj::string* s = member.value().if_string()) {
      if (strict_utf8_length(*s) != utf8_length(*s)) return std::string("utf8_length disagrees on a string");
    }
  }
  return check_fields(*object, rules);
}

}  // namespace parley::api::fuzz
