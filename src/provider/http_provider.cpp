#include "provider/http_provider.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

namespace parley::provider {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using upstream::FailureKind;
using Clock = std::chrono::steady_clock;

namespace {

double jitter_sample() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

FailureKind failure_of(const TransportError& e) {
  switch (e.kind) {
    case TransportFailure::kConnect:
      return FailureKind::kConnect;
    case TransportFailure::kTimeout:
      return FailureKind::kTimeout;
    case TransportFailure::kProtocol:
      return FailureKind::kMalformed;
    case TransportFailure::kReset:
    case TransportFailure::kCancelled:
      return FailureKind::kReset;
  }
  return FailureKind::kReset;
}

std::vector<Header> passthrough_headers(const std::vector<Header>& headers) {
  std::vector<Header> out;
  for (const auto& [k, v] : headers) {
    if (k.starts_with("x-ratelimit-") || k.starts_with("anthropic-ratelimit-") || k == "retry-after" ||
        k == "openai-processing-ms")
      out.emplace_back(k, v);
  }
  return out;
}

// A call whose coroutine was cancelled (its client left; see http::CloseWatch) ends at once: no
// retry, no further attempt after a back-off sleep the cancellation cut short.
asio::awaitable<bool> stop_requested() {
  asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  co_return state.cancelled() != asio::cancellation_type::none;
}

Error cancelled_error() {
  return {ErrorKind::kOpenAiConnection, "The call was cancelled: the client left"};
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::chrono::milliseconds time_left(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
}

// The retry policy of one call: the provider's, with at most the retries the call allows.
upstream::RetryConfig retry_for(const CallContext& ctx, upstream::RetryConfig retry) {
  if (ctx.max_retries) retry.max_retries = std::min(retry.max_retries, std::max(0, *ctx.max_retries));
  return retry;
}

// Notes for routing why the call failed (see CallFailure).
void note_failure(const CallContext& ctx, FailureKind kind, unsigned status,
                  std::optional<std::chrono::milliseconds> retry_after, bool reached_client,
                  std::chrono::milliseconds retry_after_cap) {
  if (ctx.failure == nullptr) return;
  CallFailure f;
  f.status = status;
  if (!reached_client) {
    if (kind == FailureKind::kConnect || kind == FailureKind::kReset) {
      f.reason = "connect";
    } else if (kind == FailureKind::kTimeout) {
      f.reason = "timeout";
    } else if (kind == FailureKind::kHttpStatus && status == 429) {
      f.reason = "rate_limited";
    } else if (kind == FailureKind::kHttpStatus && status >= 500 && status <= 599) {
      f.reason = "server_error";
    }
  }
  if (retry_after)
    f.retry_after = std::min(*retry_after, std::max(retry_after_cap, std::chrono::milliseconds(0)));
  *ctx.failure = f;
}

}  // namespace

HttpProvider::HttpProvider(std::string name, Endpoint endpoint, HttpClient& client,
                           upstream::RetryConfig retry, Timeouts timeouts)
    : name_(std::move(name)),
      endpoint_(std::move(endpoint)),
      client_(client),
      retry_(retry),
      timeouts_(timeouts) {}

HttpRequest HttpProvider::make_request(const CallContext& ctx, bhttp::verb method, std::string_view path,
                                       std::string body, std::string_view content_type) const {
  HttpRequest req;
  req.method = method;
  req.target = endpoint_.base_path + std::string(path);
  req.body = std::move(body);
  if (!req.body.empty()) req.headers.emplace_back("Content-Type", std::string(content_type));
  req.headers.emplace_back("Accept", content_type == "application/json" ? "application/json" : "*/*");
  add_credentials(req, ctx);
  if (!ctx.request_id.empty()) req.headers.emplace_back("X-Request-ID", ctx.request_id);
  return req;
}

Error HttpProvider::final_error(FailureKind kind, unsigned status) const {
  ErrorKind k = upstream::error_kind_for(kind, static_cast<int>(status));
  switch (k) {
    case ErrorKind::kOpenAiRateLimit:
      return {k, "The provider's rate limit was reached; retry later"};
    case ErrorKind::kInvalidApiKey:
      return {k, "The provider rejected the API key; check or set it again"};
    case ErrorKind::kOpenAiConnection:
      return {k, "Could not reach the provider"};
    case ErrorKind::kOpenAiTimeout:
      return {k, "The provider did not answer in time"};
    default:
      return {k, status != 0 ? fmt::format("The provider failed (HTTP {})", status)
                             : std::string("The provider returned an invalid response")};
  }
}

asio::awaitable<Result<ProviderResponse>> HttpProvider::exchange(const CallContext& ctx,
                                                                 std::string_view path, std::string body,
                                                                 std::string_view content_type,
                                                                 bool json_answer) {
  Clock::time_point deadline = Clock::now() + timeouts_.total;
  const upstream::RetryConfig retry = retry_for(ctx, retry_);
  for (int attempt = 0;; ++attempt) {
    Timeouts t = timeouts_;
    t.total = std::max(std::chrono::milliseconds(1), time_left(deadline));
    auto res =
        co_await client_.send(endpoint_, make_request(ctx, bhttp::verb::post, path, body, content_type), t);
    FailureKind kind = FailureKind::kHttpStatus;
    unsigned status = 0;
    std::optional<std::chrono::milliseconds> retry_after;
    if (res) {
      status = res->status;
      if (status >= 200 && status < 300) {
        if (!json_answer) {
          ProviderResponse raw{status, std::move(res->body), passthrough_headers(res->headers), {}, {}};
          raw.content_type = std::string(res->header("content-type").value_or("application/octet-stream"));
          co_return raw;
        }
        if (std::optional<AnswerFacts> facts = inspect_answer(res->body)) {
          co_return ProviderResponse{
              status, std::move(res->body), passthrough_headers(res->headers), facts->usage, {}};
        }
        kind = FailureKind::kMalformed;
      } else if (is_relayable_rejection(status)) {
        spdlog::info("provider {} rejected the request: status={} attempt={} request_id={}", name_, status,
                     attempt + 1, ctx.request_id);
        ProviderResponse rejected{status, std::move(res->body), passthrough_headers(res->headers), {}, {}};
        rejected.content_type = std::string(res->header("content-type").value_or("application/json"));
        co_return rejected;
      } else if (auto ra = res->header("retry-after")) {
        retry_after = upstream::parse_retry_after(*ra, std::chrono::system_clock::now());
      }
    } else {
      if (res.error().kind == TransportFailure::kCancelled) co_return std::unexpected(cancelled_error());
      kind = failure_of(res.error());
    }
    auto decision = upstream::decide(retry, attempt, kind, static_cast<int>(status), retry_after, false,
                                     time_left(deadline), jitter_sample);
    if (!decision.retry) {
      note_failure(ctx, kind, status, retry_after, false, retry_.retry_after_cap);
      spdlog::warn("provider {} failed: status={} attempt={} reason={} request_id={}", name_, status,
                   attempt + 1, decision.reason, ctx.request_id);
      co_return std::unexpected(final_error(kind, status));
    }
    retries_total().fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("provider {} retry: status={} attempt={} delay_ms={} request_id={}", name_, status,
                 attempt + 1, decision.delay.count(), ctx.request_id);
    co_await sleep_for(decision.delay);
    if (co_await stop_requested()) co_return std::unexpected(cancelled_error());
  }
}

asio::awaitable<Result<StreamOutcome>> HttpProvider::exchange_stream(const CallContext& ctx,
                                                                     std::string_view path, std::string body,
                                                                     EventSink sink,
                                                                     upstream::StreamFraming framing) {
  Clock::time_point deadline = Clock::now() + timeouts_.total;
  const upstream::RetryConfig retry = retry_for(ctx, retry_);
  StreamOutcome outcome;
  for (int attempt = 0;; ++attempt) {
    Timeouts t = timeouts_;
    t.total = std::max(std::chrono::milliseconds(1), time_left(deadline));
    upstream::StreamRelay relay(framing);
    std::vector<std::string> batch;  // the events of one read (or of the body's end) to send on
    bool consumer_gone = false;
    unsigned head_status = 0;
    std::string error_body;
    HeadSink on_head = [&](const HttpResponse& head) -> asio::awaitable<void> {
      head_status = head.status;
      outcome.headers = passthrough_headers(head.headers);
      if (ctx.on_stream_head && head.status >= 200 && head.status < 300) ctx.on_stream_head(outcome.headers);
      co_return;
    };
    BodySink on_body = [&](std::string_view bytes) -> asio::awaitable<bool> {
      if (head_status < 200 || head_status >= 300) {
        if (error_body.size() < std::size_t{64} * 1024) error_body.append(bytes);
        co_return true;
      }
      batch.clear();
      const bool read_on = relay.feed(bytes, batch);
      for (const std::string& data : batch) {
        if (!co_await sink(data)) {
          consumer_gone = true;
          co_return false;
        }
        ++outcome.events;
      }
      if (!batch.empty() && ctx.on_stream_batch_end && !co_await ctx.on_stream_batch_end()) {
        consumer_gone = true;
        co_return false;
      }
      co_return read_on;
    };
    auto res = co_await client_.send(endpoint_, make_request(ctx, bhttp::verb::post, path, body), t, on_head,
                                     on_body);
    if (consumer_gone) co_return outcome;
    if (res && is_relayable_rejection(head_status)) {
      spdlog::info("provider {} rejected the request: status={} attempt={} request_id={}", name_, head_status,
                   attempt + 1, ctx.request_id);
      outcome.status = head_status;
      outcome.error_body = std::move(error_body);
      co_return outcome;
    }
    if (relay.done() || relay.broken() || (res && head_status >= 200 && head_status < 300)) {
      if (res && !relay.done() && !relay.broken()) {
        batch.clear();
        relay.finish(batch);
        for (const std::string& data : batch) {
          if (!co_await sink(data)) co_return outcome;
          ++outcome.events;
        }
        if (!batch.empty() && ctx.on_stream_batch_end) co_await ctx.on_stream_batch_end();
      }
      // A 2xx that held no event (a JSON body, an HTML page, a truncated answer), that ended
      // without [DONE] and without any finish_reason, or whose events broke the size limit is not
      // an answer: it must not reach the client as a successful, empty or cut-off stream.
      const upstream::StreamVerdict verdict = relay.verdict();
      if (verdict != upstream::StreamVerdict::kComplete) {
        spdlog::warn("provider {} stream ended without a terminal event: events={} broken={} request_id={}",
                     name_, outcome.events, relay.broken(), ctx.request_id);
        std::string message = "The provider's stream ended before the answer did";
        if (verdict == upstream::StreamVerdict::kNoEvent) message = "The provider's stream held no event";
        if (verdict == upstream::StreamVerdict::kBroken)
          message = "The provider's stream held an event over the size limit";
        co_return std::unexpected(Error(ErrorKind::kOpenAiApiError, std::move(message)));
      }
      co_return outcome;
    }
    FailureKind kind = FailureKind::kHttpStatus;
    unsigned status = head_status;
    std::optional<std::chrono::milliseconds> retry_after;
    if (!res) {
      if (res.error().kind == TransportFailure::kCancelled) co_return std::unexpected(cancelled_error());
      kind = failure_of(res.error());
      if (head_status >= 200 && head_status < 300) status = 0;
    } else if (auto ra = res->header("retry-after")) {
      retry_after = upstream::parse_retry_after(*ra, std::chrono::system_clock::now());
    }
    bool reached_client = outcome.events > 0;
    auto decision = upstream::decide(retry, attempt, kind, static_cast<int>(status), retry_after,
                                     reached_client, time_left(deadline), jitter_sample);
    if (!decision.retry) {
      note_failure(ctx, kind, status, retry_after, reached_client, retry_.retry_after_cap);
      spdlog::warn("provider {} stream failed: status={} attempt={} events={} reason={} request_id={}", name_,
                   status, attempt + 1, outcome.events, decision.reason, ctx.request_id);
      co_return std::unexpected(final_error(kind, status));
    }
    retries_total().fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("provider {} retry: status={} attempt={} delay_ms={} request_id={}", name_, status,
                 attempt + 1, decision.delay.count(), ctx.request_id);
    co_await sleep_for(decision.delay);
    if (co_await stop_requested()) co_return std::unexpected(cancelled_error());
  }
}

asio::awaitable<Status> HttpProvider::check_key(const CallContext& ctx) {
  Timeouts t = timeouts_;
  t.total = std::min(t.total, std::chrono::milliseconds(15'000));
  auto res = co_await client_.send(endpoint_, make_request(ctx, bhttp::verb::get, "/models", {}), t);
  if (!res) co_return std::unexpected(final_error(failure_of(res.error()), 0));
  if (res->status == 401 || res->status == 403) {
    co_return fail(ErrorKind::kInvalidApiKey, "The provider rejected this API key");
  }
  if (res->status >= 400) co_return std::unexpected(final_error(FailureKind::kHttpStatus, res->status));
  co_return Status{};
}

}  // namespace parley::provider
