// Realtime chat over WebSocket (docs/REALTIME.md):
//   GET /ws/chat/{user_id}  — authenticated: the token in Authorization, Sec-WebSocket-Protocol
//                             ("bearer.<token>" beside "parley.chat") or ?token=
//   GET /ws/chat            — anonymous, when realtime.anonymous is on; conversations in memory only
// The upgrade is refused with an HTTP status and the error envelope (bad token, another user's id,
// a foreign Origin, too many connections); once open, JSON text messages drive the same
// conversations, messages and resumable answers as the REST routes (api/conversations.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/conversations.hpp"
#include "http/metrics.hpp"
#include "services/anonymous_chat.hpp"

namespace parley::api {

struct RealtimeLimits {
  std::size_t messages_per_minute = 60;  // per connection (GCRA: steady rate, this much burst)
  std::size_t max_generations = 2;       // answers streaming to one connection at once
};

struct RealtimeOptions {
  bool anonymous = false;
  RealtimeLimits user;                       // authenticated connections
  RealtimeLimits guest{10, 1};               // anonymous connections
  std::size_t connections_per_user = 20;     // more → 429 before the upgrade
  std::size_t max_connections = 10'000;      // all realtime connections; more → 503
  std::size_t anonymous_connections = 200;   // all anonymous connections; more → 503
  std::size_t anonymous_per_address = 5;     // anonymous connections from one client address; more → 429
  std::vector<std::string> allowed_origins;  // the CORS origins ("*" allows any)
  std::size_t max_message_bytes = std::size_t{64} * 1024;  // told to clients (the server enforces it)
};

// Connection counts, shared by every loop.
class RealtimeCounters {
 public:
  enum class Admission { kAdmitted, kKeyFull, kTotalFull };
  // Takes a slot for `key` (a user id, or "anon:<address>") within `per_key`, and one of the totals
  // in `options`; nothing is taken unless admitted.
  Admission acquire(const std::string& key, std::size_t per_key, bool anonymous,
                    const RealtimeOptions& options);
  void release(const std::string& key, bool anonymous);

  std::atomic<std::size_t> all{0};
  std::atomic<std::size_t> anonymous{0};
  std::atomic<std::uint64_t> opened{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> errors{0};

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> per_key_;
};

struct RealtimeDeps {
  ConversationDeps& conversations;
  services::AnonymousChat& anonymous;
  RealtimeOptions options;
  RealtimeCounters counters;
};

void register_realtime_routes(http::Router& router, RealtimeDeps& deps);
// parley_websocket_* families for /metrics.
void add_realtime_metrics(http::Metrics& metrics, RealtimeDeps& deps);

}  // namespace parley::api
