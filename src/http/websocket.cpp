#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "http/websocket_connection.hpp"

namespace parley::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace std::chrono_literals;

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// A read buffer grown past this by a large message is given back once the message is handled.
constexpr std::size_t kKeptReadBuffer = std::size_t{16} * 1024;
}  // namespace

WsConnection::WsConnection(asio::ip::tcp::socket socket, const WebSocketOptions& options)
    : ws_(std::move(socket)), executor_(ws_.get_executor()), options_(options) {}

WsConnection::~WsConnection() = default;

bool WsConnection::send(std::string frame) {
  if (state_ != State::kOpen) return false;
  // The bound is on frames waiting behind the one being written: a single frame larger than the
  // bound still goes to a client that keeps up.
  if (waiting() > 0 && waiting() + frame.size() > options_.send_queue_bytes) {
    // The peer reads slower than it is sent to: what waits is dropped (the frame being written
    // finishes), then the close.
    while (queue_.size() > (writing_ ? 1U : 0U)) {
      queued_ -= queue_.back().size();
      queue_.pop_back();
    }
    close(close_code::kSlowReader, "send queue full: the client reads too slowly");
    return false;
  }
  queued_ += frame.size();
  queue_.push_back(std::move(frame));
  if (!writing_) write_next();
  return true;
}

void WsConnection::write_next() {
  if (state_ == State::kClosed) {
    queue_.clear();
    queued_ = 0;
  }
  if (queue_.empty()) {
    writing_ = false;
    write_deadline_ = Clock::time_point::max();
    if (state_ == State::kClosing && !close_started_) start_close();
    return;
  }
  writing_ = true;
  write_deadline_ = Clock::now() + options_.write_timeout;
  ws_.async_write(asio::buffer(queue_.front()),
                  [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                    self->write_deadline_ = Clock::time_point::max();
                    if (self->queue_.empty()) return;  // cleared by the read loop's end
                    self->queued_ -= self->queue_.front().size();
                    self->queue_.pop_front();
                    ++self->frames_out_;
                    if (ec) {
                      self->writing_ = false;
                      self->abort();
                      return;
                    }
                    self->write_next();
                    self->wake_writers();  // each checks whether its frame fits now
                  });
}

std::size_t WsConnection::waiting() const {
  return queued_ - (writing_ && !queue_.empty() ? queue_.front().size() : 0);
}

asio::awaitable<bool> WsConnection::writable(std::size_t frame_bytes) {
  while (state_ == State::kOpen && waiting() > 0 && waiting() + frame_bytes > options_.send_queue_bytes / 2) {
    asio::steady_timer timer(executor_, Clock::time_point::max());
    writers_.push_back(&timer);
    co_await timer.async_wait(kTuple);
    std::erase(writers_, &timer);
  }
  co_return state_ == State::kOpen;
}

void WsConnection::wake_writers() {
  for (asio::steady_timer* t : writers_) t->cancel();
}

void WsConnection::close(std::uint16_t code, std::string reason) {
  if (state_ != State::kOpen) return;
  state_ = State::kClosing;
  close_code_ = code;
  close_reason_ = std::move(reason);
  wake_writers();
  if (!writing_) start_close();
}

void WsConnection::start_close() {
  close_started_ = true;
  sent_code_ = close_code_;
  close_deadline_ = Clock::now() + options_.close_timeout;
  websocket::close_reason reason(static_cast<websocket::close_code>(close_code_), close_reason_);
  ws_.async_close(reason, [self = shared_from_this()](const boost::system::error_code& ec) {
    self->close_deadline_ = Clock::time_point::max();
    if (ec) self->abort();
  });
}

void WsConnection::close_at(Clock::time_point when, std::uint16_t code, std::string reason) {
  scheduled_at_ = when;
  scheduled_code_ = code;
  scheduled_reason_ = std::move(reason);
}

void WsConnection::touch() {
  if (options_.idle_timeout.count() > 0) idle_deadline_ = Clock::now() + options_.idle_timeout;
}

void WsConnection::sweep(Clock::time_point now) {
  if (write_deadline_ <= now || close_deadline_ <= now) {
    abort();
    return;
  }
  if (state_ != State::kOpen) return;
  if (scheduled_at_ <= now) {
    scheduled_at_ = Clock::time_point::max();
    close(scheduled_code_, scheduled_reason_);
  } else if (idle_deadline_ <= now) {
    close(close_code::kIdle, "idle timeout");
  }
}

void WsConnection::drain() {
  if (state_ == State::kOpen && handler_ != nullptr) handler_->on_drain();
}

void WsConnection::abort() {
  write_deadline_ = close_deadline_ = Clock::time_point::max();
  if (state_ == State::kOpen) state_ = State::kClosing;
  wake_writers();
  boost::system::error_code ignored;
  beast::get_lowest_layer(ws_).close(ignored);
}

asio::awaitable<void> WsConnection::run(const Request& request, WebSocketHandler& handler,
                                        std::string protocol, std::string request_id) {
  // Heartbeats: Beast pings a peer silent for half of idle_timeout and fails the read of one silent
  // for all of it; handshake_timeout bounds the closing handshake too.
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = options_.close_timeout;
  timeouts.idle_timeout = options_.heartbeat * 2;
  timeouts.keep_alive_pings = true;
  ws_.set_option(timeouts);
  ws_.set_option(websocket::stream_base::decorator(
      [protocol = std::move(protocol), request_id = std::move(request_id)](websocket::response_type& res) {
        res.set(beast::http::field::server, "parley");
        if (!protocol.empty()) res.set(beast::http::field::sec_websocket_protocol, protocol);
        res.set("X-Request-ID", request_id);
      }));
  ws_.read_message_max(options_.max_message_bytes);
  ws_.auto_fragment(false);
  auto [ec] = co_await ws_.async_accept(request, kTuple);
  // The decorator's captures are not needed past the handshake.
  ws_.set_option(websocket::stream_base::decorator([](websocket::response_type&) {}));
  if (ec) {
    state_ = State::kClosed;
    co_return;
  }
  ws_.text(true);
  handler_ = &handler;
  touch();
  handler.on_open(shared_from_this());
  beast::flat_buffer buffer;
  for (;;) {
    auto [rec, n] = co_await ws_.async_read(buffer, kTuple);
    if (rec) {
      if (rec == websocket::error::message_too_big) sent_code_ = close_code::kTooBig;
      if (rec == websocket::error::bad_frame_payload) sent_code_ = close_code::kInvalidPayload;
      break;
    }
    ++messages_in_;
    touch();
    const auto* bytes = static_cast<const char*>(buffer.data().data());
    try {
      co_await handler.on_message(std::string_view(bytes, buffer.size()), ws_.got_binary());
    } catch (const std::exception& e) {
      spdlog::error("websocket handler failed: {}", e.what());
      close(close_code::kInternal, "internal error");
    }
    buffer.consume(buffer.size());
    if (buffer.capacity() > kKeptReadBuffer) buffer.shrink_to_fit();
  }
  state_ = State::kClosed;
  handler_ = nullptr;
  wake_writers();
  handler.on_close();
  // Frames still queued have nowhere to go.
  if (!writing_) {
    queue_.clear();
    queued_ = 0;
  }
}

}  // namespace parley::http
