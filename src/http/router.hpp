// Method + path-template routing. Templates are literal segments and `{name}` parameters:
// "/api/v1/users/{user_id}/preferences". Literal segments win over parameters. Built once at start,
// then read-only: match() is safe from any thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/types.hpp"

namespace parley::http {

struct RouteInfo {
  Method method;
  std::string path_template;
  std::string summary;
};

class Router {
 public:
  Router();
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers a handler; a template+method pair registered twice is a programming error (asserts).
  void add(Method method, std::string_view path_template, Handler handler, std::string_view summary = {});

  struct Match {
    const Handler* handler = nullptr;  // null: no route for this method
    std::string_view route;            // template of the matched path
    std::vector<PathParam> params;
    std::vector<Method> allowed;  // methods the path supports (for 405 Allow)
  };
  // nullopt when no template matches the path at all (404).
  [[nodiscard]] std::optional<Match> match(Method method, std::string_view path) const;

  [[nodiscard]] const std::vector<RouteInfo>& routes() const { return routes_; }

 private:
  struct Node;
  std::unique_ptr<Node> root_;
  std::vector<RouteInfo> routes_;
};

// "GET, POST" for an Allow header.
std::string allow_header(const std::vector<Method>& methods);

}  // namespace parley::http
