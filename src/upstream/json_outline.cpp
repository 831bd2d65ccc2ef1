#include "upstream/json_outline.hpp"

#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <limits>
#include <utility>

namespace parley::upstream {

namespace {

namespace bj = boost::json;
using boost::system::error_code;

struct Path {
  std::string_view first;
  std::string_view second;  // empty: a member of the root itself
};

// basic_parser handler: tracks the keys of the two outer levels and records the values the paths
// name. Levels are counted from the root container (level 0).
class OutlineHandler {
 public:
  // Names fixed by boost::json's handler interface.
  // NOLINTBEGIN(readability-identifier-naming)
  static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();
  // NOLINTEND(readability-identifier-naming)

  OutlineHandler(std::span<const std::string_view> paths, JsonOutline& out) : out_(out) {
    paths_.reserve(paths.size());
    for (std::string_view p : paths) {
      std::size_t dot = p.find('.');
      paths_.push_back(dot == std::string_view::npos ? Path{p, {}}
                                                     : Path{p.substr(0, dot), p.substr(dot + 1)});
    }
    out_.members.assign(paths.size(), JsonMember{});
    seen_.assign(paths.size(), false);
  }

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) { return open(JsonKind::kObject); }
  bool on_object_end(std::size_t n, error_code&) { return close(n); }
  bool on_array_begin(error_code&) { return open(JsonKind::kArray); }
  bool on_array_end(std::size_t n, error_code&) { return close(n); }

  bool on_key_part(bj::string_view s, std::size_t, error_code&) {
    if (depth_ <= kLevels) part_.append(s.data(), s.size());
    return true;
  }
  bool on_key(bj::string_view s, std::size_t, error_code&) {
    if (depth_ <= kLevels) {
      key_[depth_ - 1].assign(part_).append(s.data(), s.size());
      part_.clear();
    }
    return true;
  }
  bool on_string_part(bj::string_view s, std::size_t, error_code&) {
    if (target() >= 0) part_.append(s.data(), s.size());
    return true;
  }
  bool on_string(bj::string_view s, std::size_t, error_code&) {
    if (JsonMember* m = scalar(JsonKind::kString)) m->text.assign(part_).append(s.data(), s.size());
    part_.clear();
    return true;
  }
  bool on_number_part(bj::string_view, error_code&) { return true; }
  bool on_int64(std::int64_t i, bj::string_view, error_code&) {
    if (JsonMember* m = scalar(JsonKind::kInt)) m->integer = i;
    return true;
  }
  bool on_uint64(std::uint64_t u, bj::string_view, error_code&) {
    if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      if (JsonMember* m = scalar(JsonKind::kInt)) m->integer = static_cast<std::int64_t>(u);
    } else {
      scalar(JsonKind::kDouble);
    }
    return true;
  }
  bool on_double(double, bj::string_view, error_code&) {
    scalar(JsonKind::kDouble);
    return true;
  }
  bool on_bool(bool b, error_code&) {
    if (JsonMember* m = scalar(JsonKind::kBool)) m->boolean = b;
    return true;
  }
  bool on_null(error_code&) {
    scalar(JsonKind::kNull);
    return true;
  }
  bool on_comment_part(bj::string_view, error_code&) { return true; }
  bool on_comment(bj::string_view, error_code&) { return true; }

 private:
  static constexpr std::size_t kLevels = 2;

  // The path index the next value (at the current depth) is recorded under; -1 for none.
  [[nodiscard]] int target() const {
    if (depth_ == 0 || depth_ > kLevels || !is_object_[0]) return -1;
    if (depth_ == 2 && !is_object_[1]) return -1;
    for (std::size_t i = 0; i < paths_.size(); ++i) {
      const Path& p = paths_[i];
      if (p.first != key_[0]) continue;
      // A root path (no second part) names only the root member, never a member inside it
      // whose key is empty.
      if (depth_ == 1 ? p.second.empty() : !p.second.empty() && p.second == key_[1])
        return static_cast<int>(i);
    }
    return -1;
  }

  // A value of a root member replaces an earlier one of the same name, nested members included.
  void begin_value() {
    if (depth_ != 1 || !is_object_[0]) return;
    for (std::size_t i = 0; i < paths_.size(); ++i) {
      if (paths_[i].first != key_[0]) continue;
      out_.members[i] = JsonMember{};
      if (paths_[i].second.empty()) {
        if (seen_[i]) out_.repeated = true;
        seen_[i] = true;
      }
    }
  }

  JsonMember* scalar(JsonKind kind) {
    if (depth_ == 0) {
      out_.root = kind;
      return nullptr;
    }
    begin_value();
    int t = target();
    if (t < 0) return nullptr;
    JsonMember& m = out_.members[static_cast<std::size_t>(t)];
    m.kind = kind;
    return &m;
  }

  bool open(JsonKind kind) {
    int owner = -1;
    if (depth_ == 0) {
      out_.root = kind;
    } else {
      begin_value();
      owner = target();
      if (owner >= 0) out_.members[static_cast<std::size_t>(owner)].kind = kind;
    }
    if (depth_ <= kLevels) owner_[depth_] = owner;  // a container at the deepest level has an owner too
    if (depth_ < kLevels) is_object_[depth_] = kind == JsonKind::kObject;
    ++depth_;
    return true;
  }

  bool close(std::size_t n) {
    --depth_;
    if (depth_ <= kLevels && owner_[depth_] >= 0)
      out_.members[static_cast<std::size_t>(owner_[depth_])].size = n;
    return true;
  }

  JsonOutline& out_;
  std::vector<Path> paths_;
  std::vector<bool> seen_;  // per path: its root member has appeared
  std::size_t depth_ = 0;   // containers open
  std::array<bool, kLevels> is_object_{};
  std::array<int, kLevels + 1> owner_{-1, -1, -1};  // per level: the path its open container is the value of
  std::array<std::string, kLevels> key_;
  std::string part_;
};

}  // namespace

std::optional<JsonOutline> outline(std::string_view text, std::span<const std::string_view> paths) {
  JsonOutline out;
  bj::basic_parser<OutlineHandler> parser(bj::parse_options{}, paths, out);
  error_code ec;
  std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec || used != text.size() || !parser.done()) return std::nullopt;
  return out;
}

}  // namespace parley::upstream
