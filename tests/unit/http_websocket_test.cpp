// The server side of a WebSocket (http/websocket_connection.hpp) against a Beast client over
// loopback: message delivery, the bounded send queue and its backpressure, scheduled and idle
// closes, the message size limit and the drain.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/websocket.hpp>
#include <functional>

#include "http/websocket_connection.hpp"

namespace parley::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

class RecordingHandler final : public WebSocketHandler {
 public:
  void on_open(std::shared_ptr<WebSocket> opened_socket) override {
    socket = std::move(opened_socket);
    if (opened) opened(*this->socket);
  }
  asio::awaitable<void> on_message(std::string_view data, bool binary) override {
    messages.emplace_back(std::string(data), binary);
    co_return;
  }
  void on_drain() override {
    drained = true;
    socket->close(close_code::kGoingAway, "shutting down");
  }
  void on_close() override { closed = true; }

  std::function<void(WebSocket&)> opened;
  std::shared_ptr<WebSocket> socket;
  std::vector<std::pair<std::string, bool>> messages;
  bool drained = false;
  bool closed = false;
};

// One server connection and one client on a private loop.
class WebSocketTest : public ::testing::Test {
 protected:
  WebSocketTest() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}

  // Runs the server side, `client` on the client side, and a sweeper (as the server's worker
  // does) until both sides are done.
  void exchange(const std::function<asio::awaitable<void>(websocket::stream<tcp::socket>&)>& client) {
    asio::co_spawn(io_, serve(), asio::detached);
    asio::co_spawn(io_, run_client(client), asio::detached);
    asio::co_spawn(io_, sweep(), asio::detached);
    io_.run_for(10s);
  }

  asio::awaitable<void> serve() {
    auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
    if (ec) co_return;
    beast::flat_buffer buffer;
    Request request;
    auto [rec, n] = co_await beast::http::async_read(socket, buffer, request, kTuple);
    if (rec) co_return;
    connection_ = std::make_shared<WsConnection>(std::move(socket), options_);
    co_await connection_->run(request, handler_, "", "req-test");
    connection_->abort();
    server_done_ = true;
  }

  asio::awaitable<void> run_client(
      std::function<asio::awaitable<void>(websocket::stream<tcp::socket>&)> client) {
    websocket::stream<tcp::socket> ws(io_);
    co_await ws.next_layer().async_connect(acceptor_.local_endpoint(), kTuple);
    auto [ec] = co_await ws.async_handshake("127.0.0.1", "/ws", kTuple);
    EXPECT_FALSE(ec) << ec.message();
    if (!ec) co_await client(ws);
    client_done_ = true;
  }

  asio::awaitable<void> sweep() {
    asio::steady_timer timer(io_);
    while (!(server_done_ && client_done_)) {
      timer.expires_after(10ms);
      co_await timer.async_wait(kTuple);
      if (connection_) connection_->sweep(std::chrono::steady_clock::now());
    }
  }

  // Reads until the connection ends; returns the texts read and the close code received.
  static asio::awaitable<std::pair<std::vector<std::string>, int>> read_all(
      websocket::stream<tcp::socket>& ws) {
    std::vector<std::string> texts;
    for (;;) {
      beast::flat_buffer buffer;
      auto [ec, n] = co_await ws.async_read(buffer, kTuple);
      if (ec) break;
      texts.push_back(beast::buffers_to_string(buffer.data()));
    }
    co_return std::pair{texts, static_cast<int>(ws.reason().code)};
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  WebSocketOptions options_;
  RecordingHandler handler_;
  std::shared_ptr<WsConnection> connection_;
  bool server_done_ = false;
  bool client_done_ = false;
};

TEST_F(WebSocketTest, FramesGoOutInOrderAndMessagesReachTheHandler) {
  handler_.opened = [](WebSocket& s) {
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(s.send("frame " + std::to_string(i)));
  };
  std::vector<std::string> got;
  exchange([&](websocket::stream<tcp::socket>& ws) -> asio::awaitable<void> {
    for (int i = 0; i < 3; ++i) {
      beast::flat_buffer buffer;
      co_await ws.async_read(buffer, kTuple);
      got.push_back(beast::buffers_to_string(buffer.data()));
    }
    ws.text(true);
    co_await ws.async_write(asio::buffer(std::string("hello")), kTuple);
    ws.binary(true);
    co_await ws.async_write(asio::buffer(std::string("\x01\x02", 2)), kTuple);
    co_await ws.async_close(websocket::close_code::normal, kTuple);
  });
  EXPECT_EQ(got, (std::vector<std::string>{"frame 0", "frame 1", "frame 2"}));
  ASSERT_EQ(handler_.messages.size(), 2U);
  EXPECT_EQ(handler_.messages[0], (std::pair<std::string, bool>{"hello", false}));
  EXPECT_EQ(handler_.messages[1], (std::pair<std::string, bool>{std::string("\x01\x02", 2), true}));
  EXPECT_TRUE(handler_.closed);
  EXPECT_FALSE(handler_.socket->open());
  EXPECT_FALSE(handler_.socket->send("late")) << "nothing is sent once the connection is over";
}

TEST_F(WebSocketTest, AQueuePastItsBoundIsDroppedAndClosedWith4002) {
  options_.send_queue_bytes = 4096;
  int accepted = 0;
  handler_.opened = [&](WebSocket& s) {
    // Queued back to back, before any write can complete: the first is being written, the
    // sixth would take the four waiting behind it past the bound.
    for (int i = 0; i < 10; ++i) accepted += s.send(std::string(1000, 'x')) ? 1 : 0;
    EXPECT_FALSE(s.open());
    EXPECT_LE(s.queued_bytes(), 1000U) << "only the frame being written stays";
  };
  int code = 0;
  std::size_t frames = 0;
  exchange([&](websocket::stream<tcp::socket>& ws) -> asio::awaitable<void> {
    auto [texts, c] = co_await read_all(ws);
    frames = texts.size();
    code = c;
  });
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(frames, 1U);
  EXPECT_EQ(code, close_code::kSlowReader);
  EXPECT_EQ(connection_->close_code_sent(), close_code::kSlowReader);
}

TEST_F(WebSocketTest, OneFrameLargerThanTheBoundGoesToAReaderThatKeepsUp) {
  options_.send_queue_bytes = 4096;
  handler_.opened = [](WebSocket& s) {
    EXPECT_TRUE(s.send(std::string(10'000, 'a')));
    s.close(close_code::kNormal, "done");
  };
  std::vector<std::string> texts;
  int code = 0;
  exchange([&](websocket::stream<tcp::socket>& ws) -> asio::awaitable<void> {
    std::tie(texts, code) = co_await read_all(ws);
  });
  ASSERT_EQ(texts.size(), 1U);
  EXPECT_EQ(texts[0].size(), 10'000U);
  EXPECT_EQ(code, close_code::kNormal);
}

TEST_F(WebSocketTest, WritableWaitsUntilTheQueueIsHalfEmpty) {
  options_.send_queue_bytes = 4096;
  std::size_t queued_after_wait = 99999;
  bool writable = false;
  handler_.opened = [&](WebSocket& s) {
    asio::co_spawn(
        s.executor(),
        [&s, &queued_after_wait, &writable]() -> asio::awaitable<void> {
          for (int i = 0; i < 3; ++i) s.send(std::string(1000, 'y'));
          EXPECT_GT(s.queued_bytes(), 2048U);  // 2000 wait behind the first: a 1000-byte frame does not fit
          writable = co_await s.writable(1000);
          queued_after_wait = s.queued_bytes();
          s.close(close_code::kNormal, "done");
        },
        asio::detached);
  };
  std::size_t frames = 0;
  exchange([&](websocket::stream<tcp::socket>& ws) -> asio::awaitable<void> {
    auto [texts, c] = co_await read_all(ws);
    frames = texts.size();
    EXPECT_EQ(c, close_code::kNormal);
  });
  EXPECT_TRUE(writable);
  EXPECT_LE(queued_after_wait, 2000U) << "at most the frame being written and one waiting";
  EXPECT_EQ(frames, 3U) << "frames queued before a close are sent before it";
}

TEST_F(WebSocketTest, AScheduledCloseSendsItsCode) {
  handler_.opened = [](WebSocket& s) {
    s.close_at(std::chrono::steady_clock::now() + 50ms, close_code::kTokenExpired, "access token expired");
  };
  int code = 0;
  std::string reason;
  exchange([&](websocket::stream<tcp::socket>& ws) -> asio::awaitable<void> {
    auto [texts, c] = co_await read_all(ws);
    code = c;
    reason = std::string(ws.reason().reason.data(), ws.reason().reason.size());
  });
  EXPECT_EQ(code, close_code::kTokenExpired);
  EXPECT_EQ(reason, "access token expired");
}

TEST_F(WebSocketTest, AnIdleConnectionIsClosedWith4003) {
  options_.idle_timeout = 100ms;
  int code = 0;
  exchange([&](websocket::stream<tcp::socket>& ws) -> asio::awaitable<void> {
    auto [texts, c] = co_await read_all(ws);
    code = c;
  });
  EXPECT_EQ(code, close_code::kIdle);
}

TEST_F(WebSocketTest, AMessageOverTheLimitIsClosedWith1009) {
  options_.max_message_bytes = 256;
  int code = 0;
  exchange([&](websocket::stream<tcp::socket>& ws) -> asio::awaitable<void> {
    co_await ws.async_write(asio::buffer(std::string(1000, 'z')), kTuple);
    auto [texts, c] = co_await read_all(ws);
    code = c;
  });
  EXPECT_EQ(code, close_code::kTooBig);
  EXPECT_TRUE(handler_.messages.empty());
}

TEST_F(WebSocketTest, DrainAsksTheHandlerWhichClosesWith1001) {
  handler_.opened = [this](WebSocket&) { asio::post(io_, [this] { connection_->drain(); }); };
  int code = 0;
  exchange([&](websocket::stream<tcp::socket>& ws) -> asio::awaitable<void> {
    auto [texts, c] = co_await read_all(ws);
    code = c;
  });
  EXPECT_TRUE(handler_.drained);
  EXPECT_EQ(code, close_code::kGoingAway);
}

}  // namespace
}  // namespace parley::http
