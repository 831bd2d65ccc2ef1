#include "api/answer_feed.hpp"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <chrono>

namespace parley::api {

namespace asio = boost::asio;
using services::Generation;

namespace {
constexpr std::chrono::milliseconds kKeepAlive{15'000};  // sink.idle() when nothing else was sent
constexpr std::chrono::milliseconds kStorePoll{500};     // following an answer generated elsewhere

// Turns watching on for a scope.
class Watching {
 public:
  explicit Watching(AnswerSink& sink) : sink_(sink) { sink_.watch(true); }
  Watching(const Watching&) = delete;
  Watching& operator=(const Watching&) = delete;
  ~Watching() { stop(); }
  void stop() {
    if (on_) sink_.watch(false);
    on_ = false;
  }

 private:
  AnswerSink& sink_;
  bool on_ = true;
};
}  // namespace

asio::awaitable<void> follow_live(AnswerSink& sink, AnswerSource& source,
                                  services::GenerationRegistry& registry, std::shared_ptr<Generation> g,
                                  std::uint64_t seen) {
  Watching watching(sink);
  for (;;) {
    Generation::Slice slice = g->after(seen);
    if (slice.behind) {
      // Saved and forgotten (a memory bound, or the answer is over): read what is kept.
      auto m = co_await source.read(g->conversation_id(), g->message_id());
      if (!m) co_return;
      std::vector<std::string> pieces = services::replay_pieces(m->content, m->event_lengths);
      if (m->status != "generating") {
        watching.stop();
        co_await follow_stored(sink, source, registry, std::move(*m), seen);
        co_return;
      }
      if (pieces.size() > seen) {
        std::span<const std::string> fresh(pieces.begin() + static_cast<std::ptrdiff_t>(seen), pieces.end());
        if (!co_await sink.deliver(g->message_id(), seen + 1, fresh, nullptr, 0)) co_return;
        seen = pieces.size();
      }
      continue;
    }
    const std::uint64_t count = slice.pieces.size();
    if (count > 0 || slice.end) {
      const store::MessageRecord* end = slice.end ? &slice.end->message : nullptr;
      if (!co_await sink.deliver(g->message_id(), slice.first, slice.pieces, end, slice.end_number))
        co_return;
    }
    seen += count;
    if (slice.end || sink.gone()) co_return;
    if (g->finished() && seen > g->pieces()) co_return;  // the client had the terminal event already
    if (count == 0) {
      const std::uint64_t before = seen;
      co_await g->wait(seen, kKeepAlive);
      if (sink.gone()) co_return;
      if (g->pieces() == before && !g->finished() && !co_await sink.idle()) co_return;
    }
  }
}

asio::awaitable<void> follow_stored(AnswerSink& sink, AnswerSource& source,
                                    services::GenerationRegistry& registry, store::MessageRecord m,
                                    std::uint64_t seen) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto idle = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<std::string> pieces = services::replay_pieces(m.content, m.event_lengths);
    const bool over = m.status != "generating";
    std::span<const std::string> fresh;
    if (pieces.size() > seen) fresh = {pieces.begin() + static_cast<std::ptrdiff_t>(seen), pieces.end()};
    const bool ends = over && seen <= pieces.size();
    if (!fresh.empty() || ends) {
      idle = std::chrono::steady_clock::now();
      const store::MessageRecord* end = ends ? &m : nullptr;
      if (!co_await sink.deliver(m.id, seen + 1, fresh, end, pieces.size() + 1)) co_return;
    }
    if (pieces.size() > seen) seen = pieces.size();
    if (over) co_return;
    // Generated here after all (the local log appeared meanwhile): follow it live.
    if (auto g = registry.find(m.id)) {
      co_await follow_live(sink, source, registry, g, seen);
      co_return;
    }
    timer.expires_after(kStorePoll);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (sink.gone()) co_return;
    if (std::chrono::steady_clock::now() - idle >= kKeepAlive) {
      idle = std::chrono::steady_clock::now();
      if (!co_await sink.idle()) co_return;
    }
    auto fresh_message = co_await source.read(m.conversation_id, m.id);
    if (!fresh_message) co_return;  // deleted meanwhile (or no longer readable): nothing more will come
    m = std::move(*fresh_message);
  }
}

Result<std::uint64_t> parse_resume_point(std::string_view text, std::string_view message_id,
                                         std::string_view param) {
  std::string_view v = text;
  if (const std::size_t colon = v.rfind(':'); colon != std::string_view::npos) {
    if (v.substr(0, colon) != message_id) {
      return validation(std::string(param), fmt::format("{} names an event of another message", param));
    }
    v = v.substr(colon + 1);
  }
  std::uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) {
    return validation(std::string(param),
                      fmt::format("{} must be an event number (a non-negative integer)", param));
  }
  return n;
}

}  // namespace parley::api
