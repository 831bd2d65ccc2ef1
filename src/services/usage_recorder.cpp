#include "services/usage_recorder.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "crypto/random.hpp"

namespace parley::services {

namespace {

// Ids that sort by time: 12 hex digits of unix ms, this process's random tag, a counter. Rows are
// then appended at the end of the primary-key index instead of all over it (random ids made each
// batch rewrite a page per row), and ids from several instances still never collide.
std::string time_ordered_id(std::int64_t now_ms) {
  static const std::string tag = crypto::random_base62(8);
  static std::atomic<std::uint32_t> counter{0};
  return fmt::format("{:012x}{}{:08x}", static_cast<std::uint64_t>(now_ms), tag,
                     counter.fetch_add(1, std::memory_order_relaxed));
}

}  // namespace

void UsageRecorder::record(store::UsageEvent event) {
  event.created_at = clock_.now_ms();
  event.id = time_ordered_id(event.created_at);
  recorded_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (pending_.size() >= max_pending_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  pending_.push_back(std::move(event));
}

Status UsageRecorder::flush() {
  std::vector<store::UsageEvent> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(pending_);
  }
  if (batch.empty()) return {};
  store::UsageStore usage(db_);
  Status s = usage.append(batch);
  if (!s) {
    std::lock_guard lock(mutex_);
    std::size_t room = max_pending_ > pending_.size() ? max_pending_ - pending_.size() : 0;
    if (batch.size() > room) {
      dropped_.fetch_add(batch.size() - room, std::memory_order_relaxed);
      spdlog::error("usage accounting: dropped {} events the database did not accept", batch.size() - room);
      batch.resize(room);
    }
    pending_.insert(pending_.begin(), std::make_move_iterator(batch.begin()),
                    std::make_move_iterator(batch.end()));
  }
  return s;
}

}  // namespace parley::services
