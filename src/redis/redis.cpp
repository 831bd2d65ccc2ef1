#include "redis/redis.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>

namespace parley::redis {

namespace asio = boost::asio;
using asio::ip::tcp;

Result<Url> parse_url(std::string_view text) {
  constexpr std::string_view kScheme = "redis://";
  if (!text.starts_with(kScheme)) return fail(ErrorKind::kValidation, "must be a redis:// URL", "redis.url");
  std::string_view rest = text.substr(kScheme.size());
  Url url;
  if (std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), url.db);
      if (ec != std::errc() || p != db.data() + db.size() || url.db < 0 || url.db > 1000) {
        return fail(ErrorKind::kValidation, "the database number must be a whole number", "redis.url");
      }
    }
  }
  if (std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (std::size_t colon = userinfo.find(':'); colon != std::string_view::npos) {
      url.username = std::string(userinfo.substr(0, colon));
      url.password = std::string(userinfo.substr(colon + 1));
    } else {
      url.password = std::string(userinfo);
    }
  }
  std::string_view host = rest;
  bool port_given = false;  // a ':' after the host: the port must follow
  if (host.starts_with('[')) {
    std::size_t close = host.find(']');
    if (close == std::string_view::npos) return fail(ErrorKind::kValidation, "bad IPv6 address", "redis.url");
    url.host = std::string(host.substr(1, close - 1));
    host = host.substr(close + 1);
    if (host.starts_with(':')) {
      host.remove_prefix(1);
      port_given = true;
    } else if (!host.empty()) {
      return fail(ErrorKind::kValidation, "only :port may follow an IPv6 address", "redis.url");
    }
  } else if (std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    url.host = std::string(host.substr(0, colon));
    host = host.substr(colon + 1);
    port_given = true;
  } else {
    url.host = std::string(host);
    host = {};
  }
  if (port_given) {
    auto [p, ec] = std::from_chars(host.data(), host.data() + host.size(), url.port);
    if (ec != std::errc() || p != host.data() + host.size() || url.port == 0) {
      return fail(ErrorKind::kValidation, "the port must be a number from 1 to 65535", "redis.url");
    }
  }
  if (url.host.empty()) return fail(ErrorKind::kValidation, "the host is missing", "redis.url");
  return url;
}

std::string encode(const std::vector<std::string>& args) {
  std::string out = fmt::format("*{}\r\n", args.size());
  for (const auto& a : args) {
    out += fmt::format("${}\r\n", a.size());
    out += a;
    out += "\r\n";
  }
  return out;
}

namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
  }
  return out;
}

std::vector<std::vector<std::string>> handshake(const Url& url) {
  std::vector<std::vector<std::string>> commands;
  if (!url.password.empty()) {
    if (url.username.empty()) {
      commands.push_back({"AUTH", url.password});
    } else {
      commands.push_back({"AUTH", url.username, url.password});
    }
  }
  if (url.db != 0) commands.push_back({"SELECT", std::to_string(url.db)});
  return commands;
}

}  // namespace

ReplyReader::ReplyReader() : reader_(redisReaderCreate()) {}
ReplyReader::~ReplyReader() {
  redisReaderFree(reader_);
}

void ReplyReader::feed(const char* data, std::size_t size) {
  redisReaderFeed(reader_, data, size);
}

Result<std::optional<Reply>> ReplyReader::next() {
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
    return fail(ErrorKind::kUnavailable, "Redis sent a reply that is not RESP");
  }
  if (raw == nullptr) return std::optional<Reply>{};
  auto* r = static_cast<redisReply*>(raw);
  Reply out = convert(r);
  freeReplyObject(r);
  return std::optional<Reply>(std::move(out));
}

void Health::failed(std::string_view why) {
  errors.fetch_add(1, std::memory_order_relaxed);
  if (up.exchange(false)) spdlog::warn("Redis is unreachable ({}); limits follow limits.redis_failure", why);
}

void Health::succeeded() {
  if (!up.load(std::memory_order_relaxed) && !up.exchange(true)) spdlog::info("Redis is reachable again");
}

Connection::Connection(asio::any_io_executor executor, Url url, std::chrono::milliseconds timeout,
                       std::shared_ptr<Health> health)
    : executor_(std::move(executor)),
      url_(std::move(url)),
      timeout_(timeout),
      health_(std::move(health)),
      socket_(executor_),
      timer_(executor_) {}

Connection::~Connection() = default;

asio::awaitable<Result<Reply>> Connection::command(std::vector<std::string> args) {
  struct Slot {
    explicit Slot(const asio::any_io_executor& ex)
        : timer(ex, std::chrono::steady_clock::time_point::max()) {}
    std::optional<Result<Reply>> result;
    asio::steady_timer timer;
  };
  auto slot = std::make_shared<Slot>(executor_);
  submit(args, [slot](Result<Reply> r) {
    slot->result = std::move(r);
    slot->timer.cancel();
  });
  if (!slot->result) co_await slot->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!slot->result) co_return fail(ErrorKind::kUnavailable, "Redis command abandoned");
  co_return std::move(*slot->result);
}

void Connection::send(const std::vector<std::string>& args) {
  submit(args, {});
}

void Connection::submit(const std::vector<std::string>& args, Callback done) {
  const auto now = std::chrono::steady_clock::now();
  if (state_ == State::kDown) {
    if (now < retry_at_) {
      if (done) done(fail(ErrorKind::kUnavailable, "Redis is unreachable"));
      return;
    }
    state_ = State::kIdle;
  }
  pending_.push_back(Pending{std::move(done), now + timeout_});
  out_ += encode(args);
  if (state_ == State::kIdle) {
    connect();
  } else if (state_ == State::kReady) {
    write_some();
  }
  arm_timer();
}

void Connection::connect() {
  state_ = State::kConnecting;
  // The handshake goes first: its replies are awaited by nobody but checked.
  std::string hello;
  std::deque<Pending> first;
  for (const auto& c : handshake(url_)) {
    hello += encode(c);
    first.push_back(Pending{[self = weak_from_this()](Result<Reply> r) {
                              auto s = self.lock();
                              if (s && r && r->is_error()) s->broken("the handshake was refused: " + r->str);
                            },
                            std::chrono::steady_clock::now() + timeout_});
  }
  // Redis's clock against ours, for deadlines a script checks with TIME.
  hello += encode({"TIME"});
  first.push_back(Pending{[self = weak_from_this()](Result<Reply> r) {
                            auto s = self.lock();
                            if (!s || !r || r->type != Reply::Type::kArray || r->elements.size() != 2) return;
                            const auto local = std::chrono::duration_cast<std::chrono::milliseconds>(
                                                   std::chrono::system_clock::now().time_since_epoch())
                                                   .count();
                            std::int64_t sec = 0;
                            std::int64_t usec = 0;
                            const std::string& a = r->elements[0].str;
                            const std::string& b = r->elements[1].str;
                            std::from_chars(a.data(), a.data() + a.size(), sec);
                            std::from_chars(b.data(), b.data() + b.size(), usec);
                            s->clock_offset_ms_ = sec * 1000 + usec / 1000 - local;
                          },
                          std::chrono::steady_clock::now() + timeout_});
  out_.insert(0, hello);
  pending_.insert(pending_.begin(), std::make_move_iterator(first.begin()),
                  std::make_move_iterator(first.end()));
  const std::uint64_t epoch = epoch_;
  auto self = shared_from_this();
  boost::system::error_code ec;
  auto address = asio::ip::make_address(url_.host, ec);
  auto on_connected = [self, epoch](const boost::system::error_code& error) {
    if (epoch != self->epoch_) return;
    if (error) {
      self->broken("cannot connect: " + error.message());
      return;
    }
    boost::system::error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    self->state_ = State::kReady;
    self->read_some();
    self->write_some();
  };
  if (!ec) {
    socket_.async_connect(tcp::endpoint(address, url_.port), on_connected);
    return;
  }
  auto resolver = std::make_shared<tcp::resolver>(executor_);
  resolver->async_resolve(url_.host, std::to_string(url_.port),
                          [self, epoch, resolver, on_connected](const boost::system::error_code& error,
                                                                const tcp::resolver::results_type& results) {
                            if (epoch != self->epoch_) return;
                            if (error) {
                              self->broken("cannot resolve the host: " + error.message());
                              return;
                            }
                            asio::async_connect(self->socket_, results,
                                                [on_connected](const boost::system::error_code& e,
                                                               const tcp::endpoint&) { on_connected(e); });
                          });
}

void Connection::write_some() {
  if (write_busy_ || out_.empty() || state_ != State::kReady) return;
  write_busy_ = true;
  writing_.swap(out_);
  out_.clear();
  const std::uint64_t epoch = epoch_;
  asio::async_write(socket_, asio::buffer(writing_),
                    [self = shared_from_this(), epoch](const boost::system::error_code& error, std::size_t) {
                      if (epoch != self->epoch_) return;
                      self->write_busy_ = false;
                      self->writing_.clear();
                      if (error) {
                        self->broken("write failed: " + error.message());
                        return;
                      }
                      self->write_some();
                    });
}

void Connection::read_some() {
  const std::uint64_t epoch = epoch_;
  socket_.async_read_some(asio::buffer(in_), [self = shared_from_this(), epoch](
                                                 const boost::system::error_code& error, std::size_t n) {
    if (epoch != self->epoch_) return;
    if (error) {
      self->broken(error == asio::error::eof ? std::string("Redis closed the connection")
                                             : "read failed: " + error.message());
      return;
    }
    self->reader_->feed(self->in_.data(), n);
    for (;;) {
      auto reply = self->reader_->next();
      if (!reply) {
        self->broken(reply.error().message);
        return;
      }
      if (!*reply) break;
      if (self->pending_.empty()) continue;  // nobody asked (cannot happen outside pub/sub)
      Pending p = std::move(self->pending_.front());
      self->pending_.pop_front();
      self->health_->succeeded();
      self->backoff_ = std::chrono::milliseconds(100);
      if (p.done) p.done(std::move(**reply));
      if (epoch != self->epoch_) return;  // the callback closed the connection
    }
    self->arm_timer();
    self->read_some();
  });
}

void Connection::arm_timer() {
  if (pending_.empty()) {
    timer_.cancel();
    return;
  }
  timer_.expires_at(pending_.front().deadline);
  const std::uint64_t epoch = epoch_;
  timer_.async_wait([self = weak_from_this(), epoch](const boost::system::error_code& error) {
    auto s = self.lock();
    if (!s || error || epoch != s->epoch_ || s->pending_.empty()) return;
    if (std::chrono::steady_clock::now() >= s->pending_.front().deadline) {
      s->broken("no reply in time");
    } else {
      s->arm_timer();
    }
  });
}

void Connection::fail_all(const Error& e) {
  std::deque<Pending> pending;
  pending.swap(pending_);
  for (auto& p : pending) {
    if (p.done) p.done(std::unexpected(e));
  }
}

void Connection::broken(std::string_view why) {
  ++epoch_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  timer_.cancel();
  socket_ = tcp::socket(executor_);
  reader_ = std::make_unique<ReplyReader>();
  out_.clear();
  writing_.clear();
  write_busy_ = false;
  state_ = State::kDown;
  retry_at_ = std::chrono::steady_clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
  health_->failed(why);
  fail_all(Error(ErrorKind::kUnavailable, "Redis is unreachable: " + std::string(why)));
}

void Connection::close() {
  ++epoch_;
  boost::system::error_code ignored;
  socket_.close(ignored);
  timer_.cancel();
  state_ = State::kIdle;
  socket_ = tcp::socket(executor_);
  reader_ = std::make_unique<ReplyReader>();
  out_.clear();
  writing_.clear();
  write_busy_ = false;
  fail_all(Error(ErrorKind::kUnavailable, "Redis connection closed"));
}

// ---- subscriber ----

Subscriber::Subscriber(asio::any_io_executor executor, Url url, std::string channel,
                       std::function<void(std::string_view)> on_message,
                       std::function<void()> on_resubscribed)
    : executor_(std::move(executor)),
      url_(std::move(url)),
      channel_(std::move(channel)),
      on_message_(std::move(on_message)),
      on_resubscribed_(std::move(on_resubscribed)),
      socket_(executor_),
      timer_(executor_) {}

void Subscriber::start() {
  asio::co_spawn(
      executor_, [self = shared_from_this()] { return self->run(); }, asio::detached);
}

void Subscriber::stop() {
  asio::post(executor_, [self = shared_from_this()] {
    self->stopped_ = true;
    boost::system::error_code ignored;
    self->socket_.close(ignored);
    self->timer_.cancel();
  });
}

asio::awaitable<void> Subscriber::run() {
  auto backoff = std::chrono::milliseconds(100);
  bool first = true;
  while (!stopped_) {
    if (!first) {
      timer_.expires_after(backoff);
      co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
      if (stopped_) break;
    }
    first = false;
    boost::system::error_code ec;
    tcp::resolver resolver(executor_);
    auto [rerr, endpoints] = co_await resolver.async_resolve(url_.host, std::to_string(url_.port),
                                                             asio::as_tuple(asio::use_awaitable));
    if (rerr || stopped_) continue;
    socket_ = tcp::socket(executor_);
    auto [cerr, endpoint] =
        co_await asio::async_connect(socket_, endpoints, asio::as_tuple(asio::use_awaitable));
    if (cerr || stopped_) continue;
    std::string hello;
    for (const auto& c : handshake(url_)) hello += encode(c);
    hello += encode({"SUBSCRIBE", channel_});
    auto [werr, written] =
        co_await asio::async_write(socket_, asio::buffer(hello), asio::as_tuple(asio::use_awaitable));
    if (werr || stopped_) continue;
    ReplyReader reader;
    std::array<char, 8192> buf{};
    bool subscribed = false;
    for (;;) {
      auto [err, n] =
          co_await socket_.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
      if (err || stopped_) break;
      reader.feed(buf.data(), n);
      bool bad = false;
      for (;;) {
        auto reply = reader.next();
        if (!reply) {
          bad = true;
          break;
        }
        if (!*reply) break;
        const Reply& r = **reply;
        if (r.is_error()) {
          spdlog::warn("Redis refused the invalidation subscription: {}", r.str);
          bad = true;
          break;
        }
        if (r.type != Reply::Type::kArray || r.elements.size() < 3) continue;
        const std::string& kind = r.elements[0].str;
        if (kind == "subscribe") {
          if (!subscribed) {
            subscribed = true;
            backoff = std::chrono::milliseconds(100);
            on_resubscribed_();
          }
        } else if (kind == "message") {
          on_message_(r.elements[2].str);
        }
      }
      if (bad) break;
    }
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
}

}  // namespace parley::redis
