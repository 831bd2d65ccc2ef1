// The server's side of a WebSocket (see http/websocket.hpp): the Beast stream, the send queue and
// the deadlines the worker's sweeper checks. Internal to the http module.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <deque>
#include <vector>

#include "http/types.hpp"
#include "http/websocket.hpp"

namespace parley::http {

class WsConnection final : public WebSocket, public std::enable_shared_from_this<WsConnection> {
 public:
  using Clock = std::chrono::steady_clock;

  WsConnection(boost::asio::ip::tcp::socket socket, const WebSocketOptions& options);
  WsConnection(const WsConnection&) = delete;
  WsConnection& operator=(const WsConnection&) = delete;
  ~WsConnection() override;

  bool send(std::string frame) override;
  boost::asio::awaitable<bool> writable(std::size_t frame_bytes) override;
  void close(std::uint16_t code, std::string reason) override;
  void close_at(Clock::time_point when, std::uint16_t code, std::string reason) override;
  void touch() override;
  [[nodiscard]] bool open() const override { return state_ == State::kOpen; }
  [[nodiscard]] boost::asio::any_io_executor executor() const override { return executor_; }
  [[nodiscard]] std::size_t queued_bytes() const override { return queued_; }

  // Completes the handshake for `request`, answering with `protocol` (when set) and the request id,
  // then reads messages into `handler` until the connection ends. Once per connection.
  boost::asio::awaitable<void> run(const Request& request, WebSocketHandler& handler, std::string protocol,
                                   std::string request_id);

  // Server side: the sweeper's deadlines (every ~100 ms), the drain at shutdown, the hard stop at
  // the drain deadline.
  void sweep(Clock::time_point now);
  void drain();
  void abort();

  // For the server's log line when the connection ends.
  [[nodiscard]] std::uint16_t close_code_sent() const { return sent_code_; }
  [[nodiscard]] std::uint16_t close_code_received() const { return ws_.reason().code; }
  [[nodiscard]] std::uint64_t messages_in() const { return messages_in_; }
  [[nodiscard]] std::uint64_t frames_out() const { return frames_out_; }

 private:
  enum class State { kOpen, kClosing, kClosed };
  void write_next();
  void start_close();
  void wake_writers();
  [[nodiscard]] std::size_t waiting() const;  // bytes queued behind the frame being written

  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws_;
  boost::asio::any_io_executor executor_;
  const WebSocketOptions& options_;
  WebSocketHandler* handler_ = nullptr;  // while run() runs
  State state_ = State::kOpen;
  std::deque<std::string> queue_;
  std::size_t queued_ = 0;
  bool writing_ = false;
  bool close_started_ = false;
  std::uint16_t close_code_ = close_code::kNormal;
  std::string close_reason_;
  std::uint16_t sent_code_ = 0;
  Clock::time_point write_deadline_ = Clock::time_point::max();
  Clock::time_point close_deadline_ = Clock::time_point::max();
  Clock::time_point idle_deadline_ = Clock::time_point::max();
  Clock::time_point scheduled_at_ = Clock::time_point::max();
  std::uint16_t scheduled_code_ = 0;
  std::string scheduled_reason_;
  std::vector<boost::asio::steady_timer*> writers_;  // writable() callers waiting
  std::uint64_t messages_in_ = 0;
  std::uint64_t frames_out_ = 0;
};

}  // namespace parley::http
