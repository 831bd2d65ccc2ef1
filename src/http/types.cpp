#include "http/types.hpp"

#include <fmt/format.h>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <limits>

namespace parley::http {

namespace {

namespace bj = boost::json;
using boost::system::error_code;

// basic_parser handler that only adds up the members of every object as written, duplicates
// included (boost::json::parse keeps the last of a repeated key without a word).
class MemberCounter {
 public:
  // Names fixed by boost::json's handler interface.
  // NOLINTBEGIN(readability-identifier-naming)
  static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();
  // NOLINTEND(readability-identifier-naming)

  explicit MemberCounter(std::size_t& members) : members_(members) {}
  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) { return true; }
  bool on_object_end(std::size_t n, error_code&) {
    members_ += n;
    return true;
  }
  bool on_array_begin(error_code&) { return true; }
  bool on_array_end(std::size_t, error_code&) { return true; }
  bool on_key_part(bj::string_view, std::size_t, error_code&) { return true; }
  bool on_key(bj::string_view, std::size_t, error_code&) { return true; }
  bool on_string_part(bj::string_view, std::size_t, error_code&) { return true; }
  bool on_string(bj::string_view, std::size_t, error_code&) { return true; }
  bool on_number_part(bj::string_view, error_code&) { return true; }
  bool on_int64(std::int64_t, bj::string_view, error_code&) { return true; }
  bool on_uint64(std::uint64_t, bj::string_view, error_code&) { return true; }
  bool on_double(double, bj::string_view, error_code&) { return true; }
  bool on_bool(bool, error_code&) { return true; }
  bool on_null(error_code&) { return true; }
  bool on_comment_part(bj::string_view, error_code&) { return true; }
  bool on_comment(bj::string_view, error_code&) { return true; }

 private:
  std::size_t& members_;
};

std::size_t members_in(const bj::value& v) {
  std::size_t n = 0;
  if (const auto* o = v.if_object()) {
    n += o->size();
    for (const auto& member : *o) n += members_in(member.value());
  } else if (const auto* a = v.if_array()) {
    for (const auto& element : *a) n += members_in(element);
  }
  return n;
}

// Does the document repeat a key within one object? Counted, not compared: the members written
// against the members the parsed document kept.
bool repeats_a_key(std::string_view text, const bj::value& parsed) {
  std::size_t written = 0;
  bj::basic_parser<MemberCounter> counter(bj::parse_options{}, written);
  error_code ec;
  counter.write_some(false, text.data(), text.size(), ec);
  return !ec && written != members_in(parsed);
}

}  // namespace

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

Response json_response(StatusCode status, const boost::json::object& body) {
  return text_response(status, boost::json::serialize(body), "application/json");
}

Response json_response(StatusCode status, const boost::json::array& body) {
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
  count_error(error.kind);
  Response res = text_response(static_cast<StatusCode>(error.status()), error_body(error, request_id),
                               "application/json");
  if (error.rate) set_rate_limit_headers(res, *error.rate);
  return res;
}

namespace {

std::string ceil_seconds(std::int64_t ms) {
  return std::to_string(ms <= 0 ? 0 : (ms + 999) / 1000);
}

// One OpenAI window (kind "requests" or "tokens"), unless the provider's own headers already on
// the response say less is left: the stricter of the two wins.
void set_window(Response& res, std::string_view kind, const RateWindow& w) {
  const std::string remaining_name = fmt::format("x-ratelimit-remaining-{}", kind);
  if (auto it = res.find(remaining_name); it != res.end()) {
    std::int64_t theirs = 0;
    std::string_view v = it->value();
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), theirs);
    if (ec == std::errc() && p == v.data() + v.size() && theirs < w.remaining) return;
  }
  res.set(fmt::format("x-ratelimit-limit-{}", kind), std::to_string(w.limit));
  res.set(remaining_name, std::to_string(w.remaining));
  res.set(fmt::format("x-ratelimit-reset-{}", kind), go_duration(w.reset_ms));
}

}  // namespace

void set_rate_limit_headers(Response& res, const RateLimitInfo& info) {
  if (info.retry_after_ms > 0) {
    res.set(beast_http::field::retry_after, ceil_seconds(info.retry_after_ms));
    res.set("retry-after-ms", std::to_string(info.retry_after_ms));
  }
  if (info.requests) set_window(res, "requests", *info.requests);
  if (info.tokens) set_window(res, "tokens", *info.tokens);
  // The seed's names: the requests window, else the tokens window.
  const std::optional<RateWindow>& main = info.requests ? info.requests : info.tokens;
  if (main) {
    res.set("X-RateLimit-Limit", std::to_string(main->limit));
    res.set("X-RateLimit-Remaining", std::to_string(main->remaining));
    // Seconds until one more request is available: 0 while some are left.
    res.set("X-RateLimit-Reset", main->remaining > 0 ? std::string("0") : ceil_seconds(main->reset_ms));
  }
}

Result<boost::json::value> parse_json_body(const RequestContext& ctx, boost::json::storage_ptr sp) {
  std::string_view type = ctx.header("Content-Type");
  if (!type.empty()) {
    std::string_view base = type.substr(0, type.find(';'));
    while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
    if (base != "application/json" && !base.ends_with("+json")) {
      return fail(ErrorKind::kUnsupportedMediaType, "Content-Type must be application/json");
    }
  }
  return parse_json_text(ctx.request.body(), "Request body", std::move(sp));
}

Result<boost::json::value> parse_json_text(std::string_view text, std::string_view what,
                                           boost::json::storage_ptr sp) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text, ec, std::move(sp));
  if (ec) return fail(ErrorKind::kInvalidJson, fmt::format("{} is not valid JSON", what));
  if (repeats_a_key(text, value)) {
    return fail(ErrorKind::kInvalidJson, fmt::format("{} repeats a key within one object", what));
  }
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
