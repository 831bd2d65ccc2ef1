#include "api/usage.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <ctime>
#include <tuple>

#include "api/json_input.hpp"

namespace parley::api {

namespace asio = boost::asio;
namespace bj = boost::json;
using http::Method;
using http::RequestContext;
using http::Response;
using http::StatusCode;
using services::UsageScope;

namespace {

constexpr std::int64_t kDefaultPage = 50;
constexpr std::int64_t kMaxPage = 500;
constexpr std::int64_t kMaxCsvRows = 100'000;
constexpr std::int64_t kCsvPage = 5000;
constexpr int kDefaultDays = 30;
constexpr std::size_t kMaxIdLength = 64;
constexpr std::string_view kCsvHeader =
    "id,created_at,request_id,user_id,api_key_id,provider,model,endpoint,status,streamed,prompt_tokens,"
    "completion_tokens,total_tokens,latency_ms,cost_usd\r\n";

// A records cursor: "<created_at>.<id>" of the last record of the previous page.
std::string make_cursor(const store::UsageCursor& c) {
  return fmt::format("{}.{}", c.created_at, c.id);
}
store::UsageCursor cursor_of(const store::UsageRecord& r) {
  return {r.created_at, r.id};
}

Result<store::UsageCursor> parse_cursor(std::string_view text) {
  const std::size_t dot = text.find('.');
  if (dot != std::string_view::npos && text.size() < 64) {
    auto at = to_int(text.substr(0, dot));
    auto id = to_int(text.substr(dot + 1));
    if (at && id) return store::UsageCursor{*at, *id};
  }
  return validation("cursor", "cursor must be a next_cursor value from an earlier page");
}

// RFC 3339, or a date (YYYY-MM-DD: its UTC midnight).
Result<std::optional<std::int64_t>> read_time(const RequestContext& ctx, std::string_view name) {
  auto text = ctx.query(name);
  if (!text) return std::optional<std::int64_t>();
  std::optional<std::int64_t> at;
  if (text->size() == 10) {
    at = parse_iso8601(*text + "T00:00:00Z");
  } else if (text->size() <= 64) {
    at = parse_iso8601(*text);
  }
  if (!at) {
    return validation(std::string(name),
                      fmt::format("{} must be an RFC 3339 timestamp or a date (YYYY-MM-DD)", name));
  }
  return at;
}

// ?format=csv|json, else Accept: text/csv.
Result<bool> wants_csv(const RequestContext& ctx) {
  if (auto format = ctx.query("format")) {
    if (*format == "csv") return true;
    if (*format == "json") return false;
    return validation("format", "format must be json or csv");
  }
  return ctx.header("Accept").find("text/csv") != std::string_view::npos;
}

struct RecordsRequest {
  store::UsageRecordQuery query;
  bool csv = false;
  std::int64_t limit = kDefaultPage;
};

Result<RecordsRequest> read_records_request(const RequestContext& ctx) {
  RecordsRequest r;
  auto csv = wants_csv(ctx);
  if (!csv) return std::unexpected(csv.error());
  r.csv = *csv;
  const std::int64_t max = r.csv ? kMaxCsvRows : kMaxPage;
  r.limit = r.csv ? kMaxCsvRows : kDefaultPage;
  if (auto l = ctx.query("limit")) {
    auto v = to_int(*l);
    if (!v || *v < 1 || *v > max)
      return validation("limit", fmt::format("limit must be between 1 and {}", max));
    r.limit = *v;
  }
  if (auto c = ctx.query("cursor")) {
    auto after = parse_cursor(*c);
    if (!after) return std::unexpected(after.error());
    r.query.after = *after;
  }
  auto since = read_time(ctx, "since");
  if (!since) return std::unexpected(since.error());
  auto until = read_time(ctx, "until");
  if (!until) return std::unexpected(until.error());
  if (*since && *until && **until <= **since) return validation("until", "until must be later than since");
  r.query.since_ms = *since;
  r.query.until_ms = *until;
  r.query.limit = std::min(r.limit, store::kMaxUsagePage);
  return r;
}

// ?user_id= and ?api_key_id= of the deployment-wide routes.
Result<UsageScope> read_deployment_scope(const RequestContext& ctx) {
  UsageScope scope;
  scope.kind = UsageScope::Kind::kAll;
  for (auto [name, target] :
       {std::pair{"user_id", &scope.user_id}, std::pair{"api_key_id", &scope.api_key_id}}) {
    if (auto v = ctx.query(name)) {
      if (v->empty() || v->size() > kMaxIdLength) {
        return validation(name, fmt::format("{} must be 1 to {} characters", name, kMaxIdLength));
      }
      *target = *v;
    }
  }
  return scope;
}

double cost_usd(std::int64_t nanos) {
  return static_cast<double>(nanos) / 1e9;
}

// Exact decimal dollars: "0.000012500".
std::string cost_text(std::int64_t nanos) {
  if (nanos < 0) return "-" + cost_text(-nanos);
  return fmt::format("{}.{:09}", nanos / 1'000'000'000, nanos % 1'000'000'000);
}

std::string date_of(std::int64_t day_ms) {
  std::time_t secs = static_cast<std::time_t>(day_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

bj::object render_record(const store::UsageRecord& r) {
  return bj::object{{"id", r.id},
                    {"created_at", iso8601(r.created_at)},
                    {"request_id", r.request_id ? bj::value(*r.request_id) : bj::value(nullptr)},
                    {"user_id", r.user_id},
                    {"api_key_id", r.api_key_id ? bj::value(*r.api_key_id) : bj::value(nullptr)},
                    {"provider", r.provider},
                    {"model", r.model},
                    {"endpoint", r.endpoint},
                    {"status", r.status},
                    {"streamed", r.streamed},
                    {"prompt_tokens", r.prompt_tokens},
                    {"completion_tokens", r.completion_tokens},
                    {"total_tokens", r.total_tokens},
                    {"latency_ms", r.latency_ms},
                    {"cost_usd", cost_usd(r.cost_nanos)}};
}

// One text field, RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled.
// Text a client chose (a model name) that a spreadsheet would read as a formula (=, +, -, @, tab,
// CR first) gets a leading apostrophe (OWASP, "CSV injection").
void append_csv_field(std::string& out, std::string_view field) {
  const bool formula =
      !field.empty() && std::string_view("=+-@\t\r").find(field.front()) != std::string_view::npos;
  if (!formula && field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += field;
    return;
  }
  out += '"';
  if (formula) out += '\'';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void append_csv_row(std::string& out, const store::UsageRecord& r) {
  fmt::format_to(std::back_inserter(out), "{},{},", r.id, iso8601(r.created_at));
  append_csv_field(out, r.request_id.value_or(""));
  out += ',';
  append_csv_field(out, r.user_id);
  out += ',';
  append_csv_field(out, r.api_key_id.value_or(""));
  out += ',';
  append_csv_field(out, r.provider);
  out += ',';
  append_csv_field(out, r.model);
  out += ',';
  append_csv_field(out, r.endpoint);
  fmt::format_to(std::back_inserter(out), ",{},{},{},{},{},{},{}\r\n", r.status,
                 r.streamed ? "true" : "false", r.prompt_tokens, r.completion_tokens, r.total_tokens,
                 r.latency_ms, cost_text(r.cost_nanos));
}

void add_amounts(bj::object& o, const store::UsageAmounts& a) {
  o["requests"] = a.requests;
  o["errors"] = a.errors;
  o["prompt_tokens"] = a.prompt_tokens;
  o["completion_tokens"] = a.completion_tokens;
  o["total_tokens"] = a.total_tokens;
  o["cost_usd"] = cost_usd(a.cost_nanos);
  o["avg_latency_ms"] =
      a.requests == 0 ? 0.0 : static_cast<double>(a.latency_ms_sum) / static_cast<double>(a.requests);
}

bj::object render_summary(const services::UsageSummaryReport& s, const UsageScope& scope, int days) {
  bj::array by_day;
  for (const store::UsageDay& d : s.by_day) {
    bj::object o{{"date", date_of(d.day)}};
    add_amounts(o, d.amounts);
    by_day.push_back(std::move(o));
  }
  bj::array by_model;
  for (const store::UsageModel& m : s.by_model) {
    bj::object o{{"model", m.model}, {"provider", m.provider}};
    add_amounts(o, m.amounts);
    by_model.push_back(std::move(o));
  }
  bj::object out{{"period_start", iso8601(s.period_start)},
                 {"period_end", iso8601(s.period_end)},
                 {"days", days},
                 {"total_requests", s.totals.requests},
                 {"total_tokens", s.totals.total_tokens},
                 {"total_prompt_tokens", s.totals.prompt_tokens},
                 {"total_completion_tokens", s.totals.completion_tokens},
                 {"total_cost_usd", cost_usd(s.totals.cost_nanos)},
                 {"total_errors", s.totals.errors},
                 {"by_day", std::move(by_day)},
                 {"by_model", std::move(by_model)}};
  if (scope.kind == UsageScope::Kind::kKey) out["api_key_id"] = scope.id;
  if (scope.kind == UsageScope::Kind::kUser) out["user_id"] = scope.id;
  return out;
}

Response csv_response(std::string body, const std::optional<store::UsageCursor>& next) {
  Response res = http::text_response(StatusCode::ok, std::move(body), "text/csv; charset=utf-8");
  res.set(boost::beast::http::field::content_disposition, "attachment; filename=\"usage.csv\"");
  res.set(boost::beast::http::field::cache_control, "no-store");
  if (next) res.set("X-Next-Cursor", make_cursor(*next));
  return res;
}

bool before(const store::UsageRecord& r, const store::UsageCursor& bound) {
  return std::tie(r.created_at, r.id) < std::tie(bound.created_at, bound.id);
}

// Up to `limit` records as CSV. One page is answered at once; more are streamed page by page, the
// export bounded beforehand (UsageService::positions) so that X-Next-Cursor can go in the head.
asio::awaitable<Response> csv_export(UsageDeps& d, RequestContext& ctx, services::AuthorizedRecords& q,
                                     std::int64_t limit) {
  const std::int64_t first_size = std::min(limit, kCsvPage);
  q.set_limit(first_size);
  auto first = co_await d.pool.run([&] { return d.usage.records(q); });
  if (!first) co_return error_of(first.error(), ctx);
  std::string body(kCsvHeader);
  for (const store::UsageRecord& r : first->items) append_csv_row(body, r);
  if (!first->has_more || limit <= first_size || ctx.stream == nullptr) {
    std::optional<store::UsageCursor> next;
    if (first->has_more && !first->items.empty()) next = cursor_of(first->items.back());
    co_return csv_response(std::move(body), next);
  }
  // Where this export ends (the record at position limit - 1) and whether more follow it.
  auto bound = co_await d.pool.run([&] { return d.usage.positions(q, limit - 1); });
  if (!bound) co_return error_of(bound.error(), ctx);
  std::optional<store::UsageCursor> last;
  if (bound->size() == 2) last = bound->front();
  Response head{StatusCode::ok, 11};
  head.set(boost::beast::http::field::content_type, "text/csv; charset=utf-8");
  head.set(boost::beast::http::field::content_disposition, "attachment; filename=\"usage.csv\"");
  head.set(boost::beast::http::field::cache_control, "no-store");
  if (last) head.set("X-Next-Cursor", make_cursor(*last));
  http::StreamWriter& stream = *ctx.stream;
  const bool begun = co_await stream.begin(std::move(head));
  if (!begun) co_return Response{};
  std::int64_t written = static_cast<std::int64_t>(first->items.size());
  std::optional<store::UsageCursor> after = cursor_of(first->items.back());
  bool more = true;
  while (more) {
    const bool sent = co_await stream.write(body);
    if (!sent) co_return Response{};
    body.clear();
    q.set_after(after);
    q.set_limit(std::min(kCsvPage, limit - written));
    auto page = co_await d.pool.run([&] { return d.usage.records(q); });
    if (!page) {
      // The head is sent: the export ends short, without its remaining rows.
      spdlog::warn("usage export {} ended early: {}", ctx.request_id, page.error().message);
      co_return Response{};
    }
    more = page->has_more;
    for (const store::UsageRecord& r : page->items) {
      if (last && before(r, *last)) {
        more = false;
        break;
      }
      append_csv_row(body, r);
      ++written;
    }
    if (written >= limit || page->items.empty()) more = false;
    if (!page->items.empty()) after = cursor_of(page->items.back());
  }
  if (!body.empty()) co_await stream.write(body);
  co_return Response{};
}

asio::awaitable<Response> records_route(UsageDeps& d, RequestContext& ctx, const UsageScope& scope) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  auto request = read_records_request(ctx);
  if (!request) co_return error_of(request.error(), ctx);
  auto authorized =
      co_await d.pool.run([&] { return d.usage.authorize_records(*who, scope, request->query); });
  if (!authorized) co_return error_of(authorized.error(), ctx);
  if (request->csv) {
    Response res = co_await csv_export(d, ctx, *authorized, request->limit);
    co_return res;
  }
  auto page = co_await d.pool.run([&] { return d.usage.records(*authorized); });
  if (!page) co_return error_of(page.error(), ctx);
  bj::array items;
  for (const store::UsageRecord& r : page->items) items.push_back(render_record(r));
  bj::value next = nullptr;
  if (page->has_more && !page->items.empty()) next = bj::value(make_cursor(cursor_of(page->items.back())));
  bj::object body{{"items", std::move(items)},
                  {"has_more", page->has_more},
                  {"next_cursor", std::move(next)},
                  {"limit", request->limit}};
  co_return http::json_response(StatusCode::ok, body);
}

asio::awaitable<Response> summary_route(UsageDeps& d, RequestContext& ctx, const UsageScope& scope) {
  auto who = co_await d.authenticator.authenticate(ctx);
  if (!who) co_return error_of(who.error(), ctx);
  int days = kDefaultDays;
  if (auto text = ctx.query("days")) {
    auto v = to_int(*text);
    if (!v || *v < 1 || *v > services::kMaxUsageSummaryDays) {
      co_return error_of(
          validation("days", fmt::format("days must be between 1 and {}", services::kMaxUsageSummaryDays))
              .error(),
          ctx);
    }
    days = static_cast<int>(*v);
  }
  auto report = co_await d.pool.run([&] { return d.usage.summary(*who, scope, days); });
  if (!report) co_return error_of(report.error(), ctx);
  co_return http::json_response(StatusCode::ok, render_summary(*report, scope, days));
}

UsageScope scope_of(UsageScope::Kind kind, std::string_view id) {
  UsageScope scope;
  scope.kind = kind;
  scope.id = std::string(id);
  return scope;
}

}  // namespace

void register_usage_routes(http::Router& router, UsageDeps& d) {
  router.add(Method::get, "/api/v1/usage", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto scope = read_deployment_scope(ctx);
    if (!scope) co_return error_of(scope.error(), ctx);
    Response res = co_await records_route(d, ctx, *scope);
    co_return res;
  });
  router.add(Method::get, "/api/v1/usage/summary", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    auto scope = read_deployment_scope(ctx);
    if (!scope) co_return error_of(scope.error(), ctx);
    Response res = co_await summary_route(d, ctx, *scope);
    co_return res;
  });
  router.add(Method::get, "/api/v1/usage/{key_id}", [&d](RequestContext& ctx) -> asio::awaitable<Response> {
    const UsageScope scope = scope_of(UsageScope::Kind::kKey, ctx.param("key_id"));
    Response res = co_await records_route(d, ctx, scope);
    co_return res;
  });
  router.add(Method::get, "/api/v1/usage/{key_id}/summary",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               const UsageScope scope = scope_of(UsageScope::Kind::kKey, ctx.param("key_id"));
               Response res = co_await summary_route(d, ctx, scope);
               co_return res;
             });
  router.add(Method::get, "/api/v1/users/{user_id}/usage",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               const UsageScope scope = scope_of(UsageScope::Kind::kUser, ctx.param("user_id"));
               Response res = co_await records_route(d, ctx, scope);
               co_return res;
             });
  router.add(Method::get, "/api/v1/users/{user_id}/usage/summary",
             [&d](RequestContext& ctx) -> asio::awaitable<Response> {
               const UsageScope scope = scope_of(UsageScope::Kind::kUser, ctx.param("user_id"));
               Response res = co_await summary_route(d, ctx, scope);
               co_return res;
             });
}

}  // namespace parley::api
