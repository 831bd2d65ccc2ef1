#include "http/router.hpp"

#include <algorithm>
#include <cassert>

namespace parley::http {

struct Router::Node {
  std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
  std::unique_ptr<Node> param_child;
  std::string param_name;
  std::string path_template;  // set on nodes that end a template
  std::vector<std::pair<Method, Handler>> handlers;
};

namespace {

// Splits "/a/b/c" into {"a","b","c"}; "/" gives {}. Empty segments ("//") are kept so they never match.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') return {std::string_view("\x01")};  // never matches
  path.remove_prefix(1);
  if (path.empty()) return out;
  std::size_t start = 0;
  while (true) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(path.substr(start));
      break;
    }
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

}  // namespace

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;

void Router::add(Method method, std::string_view path_template, Handler handler, std::string_view summary) {
  Node* node = root_.get();
  for (std::string_view seg : split_path(path_template)) {
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      std::string name(seg.substr(1, seg.size() - 2));
      if (!node->param_child) {
        node->param_child = std::make_unique<Node>();
        node->param_child->param_name = name;
      }
      assert(node->param_child->param_name == name && "one parameter name per position");
      node = node->param_child.get();
    } else {
      auto it = node->literals.find(seg);
      if (it == node->literals.end())
        it = node->literals.emplace(std::string(seg), std::make_unique<Node>()).first;
      node = it->second.get();
    }
  }
  node->path_template = std::string(path_template);
  for ([[maybe_unused]] const auto& [m, h] : node->handlers) assert(m != method && "route registered twice");
  node->handlers.emplace_back(method, std::move(handler));
  routes_.push_back({method, std::string(path_template), std::string(summary)});
}

std::optional<Router::Match> Router::match(Method method, std::string_view path) const {
  std::vector<std::string_view> segments = split_path(path);
  // Depth-first: literal first, then parameter, so "/users/me" beats "/users/{id}".
  std::vector<PathParam> params;
  const Node* found = nullptr;
  auto walk = [&](auto& self, const Node* node, std::size_t i) -> bool {
    if (i == segments.size()) {
      if (node->handlers.empty()) return false;
      found = node;
      return true;
    }
    std::string_view seg = segments[i];
    if (auto it = node->literals.find(seg); it != node->literals.end()) {
      if (self(self, it->second.get(), i + 1)) return true;
    }
    if (node->param_child && !seg.empty()) {
      params.push_back({node->param_child->param_name, percent_decode(seg)});
      if (self(self, node->param_child.get(), i + 1)) return true;
      params.pop_back();
    }
    return false;
  };
  if (!walk(walk, root_.get(), 0)) return std::nullopt;

  Match m;
  m.route = found->path_template;
  m.params = std::move(params);
  for (const auto& [mm, h] : found->handlers) {
    m.allowed.push_back(mm);
    if (mm == method) m.handler = &h;
  }
  // HEAD is served by GET when no HEAD route exists.
  if (m.handler == nullptr && method == Method::head) {
    for (const auto& [mm, h] : found->handlers) {
      if (mm == Method::get) m.handler = &h;
    }
  }
  return m;
}

std::string allow_header(const std::vector<Method>& methods) {
  std::vector<std::string_view> names;
  names.reserve(methods.size() + 1);
  for (Method m : methods) names.push_back(beast_http::to_string(m));
  if (std::find(methods.begin(), methods.end(), Method::get) != methods.end() &&
      std::find(methods.begin(), methods.end(), Method::head) == methods.end()) {
    names.push_back("HEAD");
  }
  std::sort(names.begin(), names.end());
  std::string out;
  for (auto n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

}  // namespace parley::http
