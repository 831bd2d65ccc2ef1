#include "services/usage_recorder.hpp"

#include <spdlog/spdlog.h>

namespace parley::services {

void UsageRecorder::record(store::UsageEvent event) {
  event.created_at = clock_.now_ms();
  recorded_.fetch_add(1, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->record(event);
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
