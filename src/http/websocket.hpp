// WebSockets (RFC 6455) on the HTTP server: a route handler that accepts an upgrade sets
// RequestContext::upgrade to a WebSocketHandler; the server then completes the handshake and runs
// the connection — frames in, a bounded queue of frames out, heartbeats, deadlines and a graceful
// close at shutdown. Close codes are listed in docs/REALTIME.md.
//
// Threads: a connection lives on one event loop. Every WebSocket call, and every handler callback,
// happens on that loop (post to executor() from elsewhere).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace parley::http {

// Close codes parley sends (1000–1011 are RFC 6455's; 4000–4999 are the application's).
namespace close_code {
inline constexpr std::uint16_t kNormal = 1000;
inline constexpr std::uint16_t kGoingAway = 1001;       // server shutting down
inline constexpr std::uint16_t kInvalidPayload = 1007;  // a text frame that is not UTF-8
inline constexpr std::uint16_t kPolicy = 1008;          // kept sending over a limit
inline constexpr std::uint16_t kTooBig = 1009;          // a message over realtime.max_message_bytes
inline constexpr std::uint16_t kInternal = 1011;
inline constexpr std::uint16_t kTokenExpired = 4001;        // the access token expired (send reauth before)
inline constexpr std::uint16_t kSlowReader = 4002;          // the send queue passed realtime.send_queue_bytes
inline constexpr std::uint16_t kIdle = 4003;                // nothing asked for realtime.idle_timeout_ms
inline constexpr std::uint16_t kCredentialsRevoked = 4004;  // user deactivated or deleted, key revoked
}  // namespace close_code

struct WebSocketOptions {
  std::size_t max_message_bytes = std::size_t{64} * 1024;  // larger → close 1009
  std::size_t send_queue_bytes = std::size_t{1}
                                 << 20;  // frames waiting behind the one being written; more → close 4002
  std::chrono::milliseconds heartbeat{20'000};  // a silent peer is pinged; silent twice as long → closed
  std::chrono::milliseconds idle_timeout{600'000};  // no message and no answer in flight → close 4003
  std::chrono::milliseconds write_timeout{
      30'000};  // a frame the peer takes no byte of for this long → dropped
  std::chrono::milliseconds close_timeout{5'000};  // the closing handshake
};

// One open WebSocket, as a handler sees it.
class WebSocket {
 public:
  virtual ~WebSocket() = default;

  // Queues a text frame (sent in order). False when the connection is closing or closed; a frame
  // that takes the frames waiting behind the one being written past send_queue_bytes is dropped
  // and the connection closed with 4002 (one frame alone always goes, however large).
  virtual bool send(std::string frame) = 0;
  // Waits until a frame of `frame_bytes` fits: nothing waits behind the frame being written, or
  // what waits plus it stays within half of send_queue_bytes. A producer that awaits this before
  // each send keeps pace with the reader and never fills the queue (4002 is for one that does not).
  // False once the connection is closing.
  virtual boost::asio::awaitable<bool> writable(std::size_t frame_bytes) = 0;
  // Sends a close frame after the frames already queued; the connection ends when the peer answers
  // (or after close_timeout).
  virtual void close(std::uint16_t code, std::string reason) = 0;
  // Closes with `code` at `when` unless called again (a token's expiry); time_point::max() clears.
  virtual void close_at(std::chrono::steady_clock::time_point when, std::uint16_t code,
                        std::string reason) = 0;
  // Something is going on (a message handled, an answer streaming): the idle timeout restarts.
  virtual void touch() = 0;

  [[nodiscard]] virtual bool open() const = 0;
  [[nodiscard]] virtual boost::asio::any_io_executor executor() const = 0;
  [[nodiscard]] virtual std::size_t queued_bytes() const = 0;
};

// What a route puts behind an accepted upgrade. One per connection.
class WebSocketHandler {
 public:
  virtual ~WebSocketHandler() = default;
  // The handshake is done. `socket` stays valid (and may be kept) for the connection's life; its
  // calls fail once it closed.
  virtual void on_open(std::shared_ptr<WebSocket> socket) = 0;
  // One whole message (fragments joined). Awaited before the next one is read; `data` is valid
  // until the returned awaitable completes.
  virtual boost::asio::awaitable<void> on_message(std::string_view data, bool binary) = 0;
  // The server is shutting down: finish what is in flight, then close(kGoingAway). The server
  // closes whatever is still open at its drain deadline.
  virtual void on_drain() = 0;
  // The connection is over; nothing more can be sent.
  virtual void on_close() = 0;
};

}  // namespace parley::http
