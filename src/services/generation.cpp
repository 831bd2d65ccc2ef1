#include "services/generation.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>

namespace parley::services {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

struct Generation::Waiter {
  explicit Waiter(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;
};

Generation::Generation(std::string message_id, std::string conversation_id, asio::any_io_executor producer)
    : message_id_(std::move(message_id)),
      conversation_id_(std::move(conversation_id)),
      producer_(std::move(producer)) {}

void Generation::wake_locked() {
  // Each follower's timer belongs to its own loop: cancel it there.
  for (auto& waiter : waiters_) {
    asio::post(waiter->timer.get_executor(), [waiter] { waiter->timer.cancel(); });
  }
  waiters_.clear();
}

Generation::~Generation() {
  if (accounted_ != nullptr) accounted_->fetch_sub(accounted_bytes_, std::memory_order_relaxed);
}

void Generation::account_to(std::atomic<std::int64_t>* total) {
  std::lock_guard lock(mutex_);
  accounted_ = total;
}

void Generation::append(std::string_view piece) {
  std::lock_guard lock(mutex_);
  if (end_) return;
  content_.append(piece);
  ends_.push_back(static_cast<std::uint32_t>(content_.size()));
  const auto bytes = static_cast<std::int64_t>(piece.size() + sizeof(std::uint32_t));
  accounted_bytes_ += bytes;
  if (accounted_ != nullptr) accounted_->fetch_add(bytes, std::memory_order_relaxed);
  wake_locked();
}

void Generation::forget_locked(std::uint64_t through) {
  if (through < first_in_memory_) return;
  const std::size_t count = std::min<std::size_t>(through - first_in_memory_ + 1, ends_.size());
  if (count == 0) return;
  const std::uint32_t cut = ends_[count - 1];
  content_.erase(0, cut);
  ends_.erase(ends_.begin(), ends_.begin() + static_cast<std::ptrdiff_t>(count));
  for (auto& e : ends_) e -= cut;
  first_in_memory_ += count;
  content_.shrink_to_fit();
  ends_.shrink_to_fit();
  const auto bytes = static_cast<std::int64_t>(cut + count * sizeof(std::uint32_t));
  accounted_bytes_ -= bytes;
  if (accounted_ != nullptr) accounted_->fetch_sub(bytes, std::memory_order_relaxed);
}

void Generation::finish(AnswerEnd end) {
  std::lock_guard lock(mutex_);
  if (end_) return;
  end_ = std::move(end);
  finished_at_ = SteadyClock::now();
  forget_locked(first_in_memory_ + ends_.size() - 1);
  wake_locked();
}

bool Generation::request_cancel() {
  {
    std::lock_guard lock(mutex_);
    if (end_) return false;
    if (cancel_) return true;
    cancel_ = true;
  }
  asio::post(producer_,
             [self = shared_from_this()] { self->cancel_signal_.emit(asio::cancellation_type::terminal); });
  return true;
}

bool Generation::cancel_requested() const {
  std::lock_guard lock(mutex_);
  return cancel_;
}

Generation::Slice Generation::after(std::uint64_t seen, std::size_t max_pieces) const {
  std::lock_guard lock(mutex_);
  Slice slice;
  slice.first = seen + 1;
  const std::uint64_t total = first_in_memory_ - 1 + ends_.size();
  if (seen + 1 < first_in_memory_ && seen < total) {
    slice.behind = true;
    return slice;
  }
  std::uint64_t n = seen + 1;  // number of the next piece
  for (; n <= total && slice.pieces.size() < max_pieces; ++n) {
    const std::size_t i = n - first_in_memory_;
    const std::uint32_t begin = i == 0 ? 0 : ends_[i - 1];
    slice.pieces.emplace_back(content_.substr(begin, ends_[i] - begin));
  }
  if (end_ && n > total && seen <= total) {
    slice.end = end_;
    slice.end_number = total + 1;
  }
  return slice;
}

asio::awaitable<void> Generation::wait(std::uint64_t seen, std::chrono::milliseconds cap) {
  auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
  waiter->timer.expires_after(cap);
  {
    std::lock_guard lock(mutex_);
    if (first_in_memory_ - 1 + ends_.size() > seen || end_) co_return;
    // Followers that stopped waiting (timed out and left) hold no reference any more.
    std::erase_if(waiters_, [](const std::shared_ptr<Waiter>& w) { return w.use_count() == 1; });
    waiters_.push_back(waiter);
  }
  // No suspension between registering and waiting: a wake-up posted to this loop runs after the
  // wait has started.
  co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

Generation::Unsaved Generation::unsaved() const {
  std::lock_guard lock(mutex_);
  Unsaved out;
  out.through = first_in_memory_ - 1 + ends_.size();
  const std::uint64_t from = std::max(saved_ + 1, first_in_memory_);
  for (std::uint64_t n = from; n <= out.through; ++n) {
    const std::size_t i = n - first_in_memory_;
    const std::uint32_t begin = i == 0 ? 0 : ends_[i - 1];
    out.text.append(content_, begin, ends_[i] - begin);
    if (!out.lengths.empty()) out.lengths.push_back(',');
    out.lengths += std::to_string(ends_[i] - begin);
  }
  return out;
}

void Generation::saved(std::uint64_t through, bool forget) {
  std::lock_guard lock(mutex_);
  saved_ = std::max(saved_, through);
  if (forget) forget_locked(saved_);
}

std::uint64_t Generation::pieces() const {
  std::lock_guard lock(mutex_);
  return first_in_memory_ - 1 + ends_.size();
}

bool Generation::finished() const {
  std::lock_guard lock(mutex_);
  return end_.has_value();
}

std::size_t Generation::memory_bytes() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(accounted_bytes_);
}

std::optional<SteadyClock::time_point> Generation::finished_at() const {
  std::lock_guard lock(mutex_);
  return finished_at_;
}

std::vector<std::string> replay_pieces(const std::string& content, std::string_view event_lengths) {
  std::vector<std::string> pieces;
  std::size_t offset = 0;
  bool consistent = true;
  while (!event_lengths.empty()) {
    const std::size_t comma = event_lengths.find(',');
    std::string_view item = event_lengths.substr(0, comma);
    std::size_t length = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), length);
    if (ec != std::errc() || ptr != item.data() + item.size() || length > content.size() - offset) {
      consistent = false;
      break;
    }
    pieces.push_back(content.substr(offset, length));
    offset += length;
    if (comma == std::string_view::npos) break;
    event_lengths.remove_prefix(comma + 1);
  }
  if (!consistent || offset != content.size()) {
    pieces.clear();
    if (!content.empty()) pieces.push_back(content);
  }
  return pieces;
}

void GenerationRegistry::purge_locked(SteadyClock::time_point now) {
  // A sweep walks every generation kept: at most once a second, not on every lookup.
  if (now - last_purge_ < std::chrono::seconds(1) && by_message_.size() < kPurgeAtSize) return;
  last_purge_ = now;
  std::erase_if(by_message_, [&](const auto& item) {
    auto at = item.second->finished_at();
    return at && now - *at >= retention_;
  });
}

std::shared_ptr<Generation> GenerationRegistry::start(const std::string& message_id,
                                                      const std::string& conversation_id,
                                                      asio::any_io_executor producer) {
  std::lock_guard lock(mutex_);
  purge_locked(SteadyClock::now());
  if (running_by_conversation_.contains(conversation_id)) return nullptr;
  auto generation = std::make_shared<Generation>(message_id, conversation_id, std::move(producer));
  generation->account_to(&memory_);
  by_message_[message_id] = generation;
  running_by_conversation_[conversation_id] = message_id;
  return generation;
}

std::shared_ptr<Generation> GenerationRegistry::find(const std::string& message_id) {
  std::lock_guard lock(mutex_);
  purge_locked(SteadyClock::now());
  auto it = by_message_.find(message_id);
  return it == by_message_.end() ? nullptr : it->second;
}

std::shared_ptr<Generation> GenerationRegistry::running_in(const std::string& conversation_id) {
  std::lock_guard lock(mutex_);
  auto it = running_by_conversation_.find(conversation_id);
  if (it == running_by_conversation_.end()) return nullptr;
  auto g = by_message_.find(it->second);
  return g == by_message_.end() ? nullptr : g->second;
}

void GenerationRegistry::finished(const Generation& generation) {
  std::lock_guard lock(mutex_);
  auto it = running_by_conversation_.find(generation.conversation_id());
  if (it != running_by_conversation_.end() && it->second == generation.message_id()) {
    running_by_conversation_.erase(it);
  }
  if (retention_.count() == 0) by_message_.erase(generation.message_id());
}

std::vector<std::shared_ptr<Generation>> GenerationRegistry::running() {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Generation>> out;
  for (const auto& [conversation, message] : running_by_conversation_) {
    if (auto it = by_message_.find(message); it != by_message_.end()) out.push_back(it->second);
  }
  return out;
}

std::size_t GenerationRegistry::size() {
  std::lock_guard lock(mutex_);
  return by_message_.size();
}

}  // namespace parley::services
