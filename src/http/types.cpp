#include "http/types.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace parley::http {

std::string_view RequestContext::path() const {
  std::string_view target = request.target();
  return target.substr(0, target.find('?'));
}

std::string_view RequestContext::query_string() const {
  std::string_view target = request.target();
  std::size_t q = target.find('?');
  return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
}

std::optional<std::string> RequestContext::query(std::string_view name) const {
  std::string_view qs = query_string();
  while (!qs.empty()) {
    std::size_t amp = qs.find('&');
    std::string_view pair = qs.substr(0, amp);
    std::size_t eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq), true);
    if (key == name) {
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    qs.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::string_view RequestContext::header(std::string_view name) const {
  auto it = request.find(name);
  return it == request.end() ? std::string_view{} : std::string_view(it->value());
}

Response json_response(StatusCode status, const boost::json::value& body) {
  return text_response(status, boost::json::serialize(body), "application/json");
}

Response text_response(StatusCode status, std::string body, std::string_view content_type) {
  Response res{status, 11};
  res.set(beast_http::field::content_type, content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

std::string error_body(const Error& error, std::string_view request_id) {
  const ErrorInfo& info = error.info();
  boost::json::object e;
  e["code"] = info.code;
  e["message"] = error.message;
  e["type"] = info.type;
  if (error.param) {
    e["param"] = *error.param;
  } else {
    e["param"] = nullptr;
  }
  e["request_id"] = request_id;
  boost::json::object root;
  root["error"] = std::move(e);
  return boost::json::serialize(root);
}

Response client_closed_response() {
  Response res;
  res.result(kClientClosedStatus);
  res.keep_alive(false);
  return res;
}

Response error_response(const Error& error, std::string_view request_id) {
  return text_response(static_cast<StatusCode>(error.status()), error_body(error, request_id),
                       "application/json");
}

Result<boost::json::value> parse_json_body(const RequestContext& ctx) {
  std::string_view type = ctx.header("Content-Type");
  if (!type.empty()) {
    std::string_view base = type.substr(0, type.find(';'));
    while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
    if (base != "application/json" && !base.ends_with("+json")) {
      return fail(ErrorKind::kUnsupportedMediaType, "Content-Type must be application/json");
    }
  }
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(ctx.request.body(), ec);
  if (ec) return fail(ErrorKind::kInvalidJson, "Request body is not valid JSON");
  return value;
}

std::string percent_decode(std::string_view text, bool plus_as_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      int hi = hex(text[i + 1]);
      int lo = hex(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(c == '+' && plus_as_space ? ' ' : c);
  }
  return out;
}

}  // namespace parley::http
