// The HTTP/1.1 server: one acceptor, N event-loop threads (one io_context each; connections are
// handed out round-robin and stay on their thread), keep-alive, the limits and timeouts of
// config::HttpLimits, the cross-cutting middleware (request id, Host check, CORS, security
// headers, access log, metrics) and graceful shutdown.
//
// Threads: construct, bind() and run() from one thread; shutdown() may be called from any thread
// or signal handler context (it only posts work).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/error.hpp"
#include "http/metrics.hpp"
#include "http/router.hpp"
#include "http/websocket.hpp"

namespace parley::http {

struct ServerOptions {
  config::HttpLimits limits;
  std::vector<std::string> cors_origins;
  std::vector<std::string> trusted_hosts;
  std::vector<std::string> trusted_proxies;  // peer addresses exempt from the per-address cap
  bool access_log = true;
  unsigned workers = 1;
  WebSocketOptions websocket;
  // Request paths (exact, without the query) allowed a larger body than limits.max_body_bytes,
  // e.g. an audio upload.
  std::vector<std::pair<std::string, std::uint64_t>> large_bodies;
};

class Server {
 public:
  Server(ServerOptions options, const Router& router, Metrics& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens; fails with a clear message when the address is unusable.
  Status bind(const std::string& host, std::uint16_t port);
  [[nodiscard]] std::uint16_t port() const;

  // Serves until shutdown() has drained; returns on the calling thread after all loops stopped.
  void run();

  // Stops accepting, lets in-flight requests finish within limits.drain_timeout, closes the rest.
  // WebSocket handlers are asked to drain (WebSocketHandler::on_drain).
  void shutdown();
  [[nodiscard]] bool draining() const { return draining_.load(); }

  // The executor of the first loop (signals, timers of the application).
  [[nodiscard]] boost::asio::any_io_executor main_executor() const;

  struct Impl;  // defined in server.cpp

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<bool> draining_{false};
};

}  // namespace parley::http
