#include "agent/http_server.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "agent/tls_context.h"
#include "common/log.h"

namespace virtscale {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

namespace {

// A response body that is either an owned string or the parts of a shared
// /metrics body, written as one buffer sequence: the parts are never copied.
struct PartsBody {
  struct value_type {
    std::string owned;
    std::shared_ptr<const MetricsBody> shared;
  };
  static std::uint64_t size(const value_type& v) {
    return v.shared ? v.shared->size() : v.owned.size();
  }
  class writer {
   public:
    using const_buffers_type = std::array<asio::const_buffer, 3>;
    template <bool isRequest, class Fields>
    writer(const http::header<isRequest, Fields>&, const value_type& v) : v_(v) {}
    void init(beast::error_code& ec) { ec = {}; }
    boost::optional<std::pair<const_buffers_type, bool>> get(beast::error_code& ec) {
      ec = {};
      if (done_) return boost::none;
      done_ = true;
      const_buffers_type parts{};
      if (v_.shared) {
        parts[0] = asio::buffer(v_.shared->head);
        if (v_.shared->tail) parts[1] = asio::buffer(*v_.shared->tail);
        parts[2] = asio::buffer(v_.shared->trailer);
      } else {
        parts[0] = asio::buffer(v_.owned);
      }
      return std::make_pair(parts, false);
    }

   private:
    const value_type& v_;
    bool done_ = false;
  };
};

constexpr auto kLingerTime = std::chrono::seconds(1);

constexpr std::string_view kRefusal =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 25\r\n"
    "Connection: close\r\n\r\ntoo many open connections";

}  // namespace

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Graceful stop: close now when no response is in flight.
  virtual void Shutdown() = 0;
  // Closes the socket from the calling thread; only once no io thread runs.
  virtual void CloseNow() = 0;
};

struct HttpServerState {
  HttpServerState(HttpServerLimits l, const WebConfig& web, std::shared_ptr<const Router> r,
                  prometheus::Registry& registry)
      : limits(l),
        router(std::move(r)),
        auth(web.basic_auth_users),
        requests(prometheus::BuildCounter()
                     .Name("virtscale_http_requests_total")
                     .Help("HTTP requests served, by handler and status code.")
                     .Register(registry)),
        durations(prometheus::BuildHistogram()
                      .Name("virtscale_http_request_duration_seconds")
                      .Help("Time to serve an HTTP request, by handler.")
                      .Register(registry)),
        closed(prometheus::BuildCounter()
                   .Name("virtscale_http_connections_closed_total")
                   .Help("Connections closed by the server's limits, by reason "
                         "(connection_limit, request_deadline, idle_timeout, bad_request).")
                   .Register(registry)),
        closed_limit(closed.Add({{"reason", "connection_limit"}})),
        closed_deadline(closed.Add({{"reason", "request_deadline"}})),
        closed_idle(closed.Add({{"reason", "idle_timeout"}})),
        closed_bad(closed.Add({{"reason", "bad_request"}})),
        handlers(std::max<size_t>(1, l.handler_threads)) {
    if (web.tls) {
      ssl.emplace(asio::ssl::context::tls_server);
      std::string error;
      if (!ConfigureTlsContext(*ssl->native_handle(), *web.tls, error))
        throw std::runtime_error("TLS setup failed: " + error);
    }
  }

  // Runs on a handler thread: auth, routing, metrics.
  HttpResponse Handle(const HttpRequest& req) {
    const auto start = SteadyClock::now();
    HttpResponse res;
    if (auth.enabled() && !auth.Check(req.Header("Authorization"))) {
      res.status = 401;
      res.SetHeader("WWW-Authenticate", "Basic realm=\"virtscale\"");
      res.SetContent("Unauthorized\n", "text/plain");
      res.omit_body = req.method == "HEAD";
    } else {
      res = router->Serve(req);
    }
    std::string handler = router->RouteOf(req.path);
    if (handler.empty()) handler = "other";
    requests.Add({{"handler", handler}, {"code", std::to_string(res.status)}}).Increment();
    durations
        .Add({{"handler", handler}},
             prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25, 0.5, 1, 2.5, 5})
        .Observe(std::chrono::duration<double>(SteadyClock::now() - start).count());
    return res;
  }

  void Track(uint64_t id, std::weak_ptr<SessionBase> s) {
    std::lock_guard lock(mu);
    sessions[id] = std::move(s);
  }
  void Untrack(uint64_t id) {
    std::lock_guard lock(mu);
    sessions.erase(id);
    --open;
    cv.notify_all();
  }

  void Accept();

  const HttpServerLimits limits;
  const std::shared_ptr<const Router> router;
  BasicAuthenticator auth;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& durations;
  prometheus::Family<prometheus::Counter>& closed;
  prometheus::Counter& closed_limit;
  prometheus::Counter& closed_deadline;
  prometheus::Counter& closed_idle;
  prometheus::Counter& closed_bad;

  // Sessions (destroyed with the io_context below) touch these: declared first.
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::weak_ptr<SessionBase>> sessions;  // mu
  size_t open = 0;                                          // mu
  uint64_t next_id = 0;                                     // mu
  std::atomic<bool> stopping{false};

  std::optional<asio::ssl::context> ssl;
  asio::io_context ioc;
  // The acceptor's handlers and Stop's close of it run here, one at a time.
  asio::strand<asio::io_context::executor_type> accept_strand{asio::make_strand(ioc)};
  tcp::acceptor acceptor{accept_strand};
  asio::steady_timer accept_backoff{accept_strand};
  SteadyClock::time_point last_accept_log;  // accept_strand, as the next
  int64_t accept_failures = 0;
  // Set when the accept chain ends for good. A connection the kernel accepted
  // just before Stop sits in a queued handler; Stop waits for that handler to
  // close it, or the client would hang until the io_context is destroyed.
  std::promise<void> accept_ended;
  // After ioc: its queued jobs hold sessions, whose sockets need the io_context.
  asio::thread_pool handlers;
  std::vector<std::thread> io_threads;
  int port = 0;
  bool started = false;
  bool stopped = false;
};

namespace {

bool IsParseError(const beast::error_code& ec) {
  return ec.category() == beast::error_code(http::error::bad_target).category();
}

std::string Str(beast::string_view s) { return std::string(s.data(), s.size()); }

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(HttpServerState& server, uint64_t id, Stream stream)
      : server_(server),
        id_(id),
        stream_(std::move(stream)),
        buffer_(server.limits.header_limit + server.limits.body_limit + 16 * 1024) {}
  ~Session() override { server_.Untrack(id_); }

  void Run() {
    accepted_ = SteadyClock::now();
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->Begin(); });
  }

  void Shutdown() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->state_ == State::kWaiting) self->Close();
    });
  }

  void CloseNow() override { Close(); }

 private:
  enum class State { kWaiting, kHandling, kWriting, kClosed };
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  void Begin() {
    if (server_.stopping) return Close();
    Tcp().expires_at(accepted_ + server_.limits.request_deadline);
    if constexpr (kTls) {
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec == beast::error::timeout)
                                  self->server_.closed_deadline.Increment();
                                if (ec) return self->Close();
                                self->ReadRequest(true);
                              });
    } else {
      ReadRequest(true);
    }
  }

  // `first`: the deadline runs from the accept; otherwise the connection may
  // idle first, and the deadline runs from the first byte.
  void ReadRequest(bool first) {
    state_ = State::kWaiting;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits.header_limit));
    parser_->body_limit(server_.limits.body_limit);
    if (first) {
      Tcp().expires_at(accepted_ + server_.limits.request_deadline);
      return ReadRest();
    }
    if (buffer_.size() > 0) {  // pipelined: the next request is here already
      Tcp().expires_after(server_.limits.request_deadline);
      return ReadRest();
    }
    Tcp().expires_after(server_.limits.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec == beast::error::timeout)
                                self->server_.closed_idle.Increment();
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->Tcp().expires_after(self->server_.limits.request_deadline);
                              self->ReadRest();
                            });
  }

  void ReadRest() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == beast::error::timeout) {
      server_.closed_deadline.Increment();
      return Close();
    }
    if (ec == http::error::header_limit) return Refuse(431, "request headers too large\n");
    if (ec == http::error::body_limit) return Refuse(413, "request body too large\n");
    if (ec && IsParseError(ec) && ec != http::error::end_of_stream &&
        ec != http::error::partial_message)
      return Refuse(400, "bad request\n");
    if (ec) return Close();

    auto& msg = parser_->get();
    // Beast takes a request whose Transfer-Encoding does not end in chunked
    // ("gzip", "chunked, chunked") for one without a body; its length cannot
    // be known (RFC 9112 6.3), and its body would pass for the next request.
    if (msg.count(http::field::transfer_encoding) > 0 && !parser_->chunked())
      return Refuse(400, "bad request\n");
    HttpRequest req;
    req.method = Str(msg.method_string());
    ParseRequestTarget(Str(msg.target()), req.path, req.params);
    for (const auto& field : msg) req.headers.emplace(Str(field.name_string()), Str(field.value()));
    req.body = std::move(msg.body());
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    state_ = State::kHandling;
    Tcp().expires_never();  // our own work is not the client's delay
    asio::post(server_.handlers, [self = this->shared_from_this(), req = std::move(req)] {
      HttpResponse res = self->server_.Handle(req);
      asio::post(self->stream_.get_executor(),
                 [self, res = std::move(res)]() mutable { self->Write(std::move(res)); });
    });
  }

  void Refuse(int status, std::string text) {
    server_.closed_bad.Increment();
    HttpResponse res;
    res.status = status;
    res.SetContent(std::move(text), "text/plain");
    keep_alive_ = false;
    refused_ = true;
    version_ = 11;
    Write(std::move(res));
  }

  // After a refusal the client may still be sending what we refused; closing
  // now would reset the connection and lose the answer. Discard its bytes
  // (into a small buffer, never kept) for a moment, as nginx's lingering close.
  void Linger() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().expires_after(kLingerTime);
    DiscardInput();
  }
  void DiscardInput() {
    Tcp().async_read_some(asio::buffer(discard_),
                          [self = this->shared_from_this()](beast::error_code ec, size_t) {
                            if (ec) return self->Close();
                            self->DiscardInput();
                          });
  }

  void Write(HttpResponse res) {
    state_ = State::kWriting;
    if (server_.stopping) keep_alive_ = false;
    response_.emplace();
    response_->version(version_ == 10 ? 10 : 11);
    response_->result(static_cast<unsigned>(res.status));
    for (const auto& [name, value] : res.headers) response_->insert(name, value);
    const size_t size = res.BodySize();
    if (!res.omit_body) {
      response_->body().owned = std::move(res.body);
      response_->body().shared = std::move(res.shared_body);
    }
    response_->content_length(size);
    response_->keep_alive(keep_alive_);
    Tcp().expires_after(server_.limits.write_timeout);
    http::async_write(stream_, *response_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->response_.reset();
                        if (!ec && self->refused_) return self->Linger();
                        if (ec || !self->keep_alive_ || self->server_.stopping)
                          return self->Close();
                        self->ReadRequest(false);
                      });
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    beast::error_code ignored;
    if constexpr (kTls) {
      // No close_notify round trip: a peer that never answers would hold the
      // socket; the TCP FIN ends the session just as well for HTTP/1.1.
      Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    } else {
      Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    Tcp().close();
  }

  HttpServerState& server_;
  const uint64_t id_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<PartsBody>> response_;
  SteadyClock::time_point accepted_;
  State state_ = State::kWaiting;
  bool keep_alive_ = true;
  bool refused_ = false;
  unsigned version_ = 11;
  std::array<char, 4096> discard_;
};

// Past the cap: a fixed 503 on the plain socket (non-blocking, it fits the send
// buffer), then close. Over TLS a plain answer is noise: close at once.
void RefuseConnection(tcp::socket& socket, bool tls) {
  beast::error_code ignored;
  if (!tls) {
    socket.non_blocking(true, ignored);
    socket.send(asio::buffer(kRefusal.data(), kRefusal.size()), 0, ignored);
    socket.shutdown(tcp::socket::shutdown_send, ignored);
  }
  socket.close(ignored);
}

}  // namespace

void HttpServerState::Accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open())
      return accept_ended.set_value();
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      uint64_t id = 0;
      bool refuse = false;
      {
        std::lock_guard lock(mu);
        refuse = stopping || open >= limits.max_connections;
        if (!refuse) {
          ++open;
          id = next_id++;
        }
      }
      if (refuse) {
        closed_limit.Increment();
        RefuseConnection(socket, ssl.has_value());
      } else if (ssl) {
        auto session = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            *this, id, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *ssl));
        Track(id, session);
        session->Run();
      } else {
        auto session = std::make_shared<Session<beast::tcp_stream>>(
            *this, id, beast::tcp_stream(std::move(socket)));
        Track(id, session);
        session->Run();
      }
    } else {
      // EMFILE and friends: accept again shortly rather than spin, and log at
      // most every 10 s (with how many failed since), not 20 lines a second.
      ++accept_failures;  // since the last log line
      const auto now = SteadyClock::now();
      if (last_accept_log == SteadyClock::time_point{} ||
          now - last_accept_log >= std::chrono::seconds(10)) {
        LogWarn("accept failed; retrying every 50ms",
                {{"err", ec.message()}, {"failures", accept_failures}});
        last_accept_log = now;
        accept_failures = 0;
      }
      accept_backoff.expires_after(std::chrono::milliseconds(50));
      accept_backoff.async_wait([this](beast::error_code) {
        if (acceptor.is_open()) return Accept();
        accept_ended.set_value();
      });
      return;
    }
    Accept();
  });
}

std::optional<ListenAddress> ParseListenAddress(const std::string& text) {
  ListenAddress out;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    out.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    out.host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) return std::nullopt;  // v6 needs brackets
  }
  if (out.host.empty()) out.host = "0.0.0.0";
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  out.port = std::stoi(port);
  if (out.port > 65535) return std::nullopt;
  return out;
}

HttpServer::HttpServer(HttpServerLimits limits, const WebConfig& web,
                       std::shared_ptr<const Router> router, prometheus::Registry& metrics_registry)
    : state_(std::make_unique<HttpServerState>(limits, web, std::move(router), metrics_registry)) {}

HttpServer::~HttpServer() { Stop(); }

int HttpServer::port() const { return state_->port; }
bool HttpServer::tls() const { return state_->ssl.has_value(); }

size_t HttpServer::connections() const {
  std::lock_guard lock(state_->mu);
  return state_->open;
}

std::optional<std::string> HttpServer::Bind(const std::string& listen_address) {
  auto addr = ParseListenAddress(listen_address);
  if (!addr) return "invalid listen address \"" + listen_address + "\" (want HOST:PORT or :PORT)";
  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto ip = asio::ip::make_address(addr->host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, static_cast<unsigned short>(addr->port));
  } else {  // a host name, as Prometheus accepts ("localhost:9177"): its first address
    tcp::resolver resolver(state_->ioc);
    auto found = resolver.resolve(addr->host, std::to_string(addr->port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || found.empty())
      return "listen tcp " + listen_address + ": cannot resolve \"" + addr->host + "\"";
    endpoint = found.begin()->endpoint();
  }
  auto& acceptor = state_->acceptor;
  // Go's words: "listen tcp :9177: bind: address already in use".
  const char* step = "socket";
  acceptor.open(endpoint.protocol(), ec);
  // SO_REUSEADDR only, never SO_REUSEPORT: no second process may share our port.
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && (step = "bind")) acceptor.bind(endpoint, ec);
  if (!ec && (step = "listen")) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    acceptor.close(ignored);
    return "listen tcp " + listen_address + ": " + step + ": " + ec.message();
  }
  state_->port = acceptor.local_endpoint().port();
  return std::nullopt;
}

void HttpServer::Start() {
  auto& s = *state_;
  if (s.started || !s.acceptor.is_open()) return;
  s.started = true;
  s.Accept();
  for (size_t i = 0; i < std::max<size_t>(1, s.limits.io_threads); ++i)
    s.io_threads.emplace_back([&s] { s.ioc.run(); });
}

void HttpServer::Stop() {
  auto& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  // Refuse new connections before anything else: the close runs on the io
  // threads (the acceptor is theirs), and Stop waits for it.
  std::promise<void> acceptor_closed;
  asio::post(s.accept_strand, [&s, &acceptor_closed] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    s.accept_backoff.cancel();
    acceptor_closed.set_value();
  });
  if (s.io_threads.empty()) {
    s.ioc.poll();
  }
  acceptor_closed.get_future().wait();
  if (s.started) s.accept_ended.get_future().wait_for(s.limits.stop_deadline);
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    std::lock_guard lock(s.mu);
    for (auto& [id, weak] : s.sessions)
      if (auto session = weak.lock()) live.push_back(std::move(session));
  }
  for (auto& session : live) session->Shutdown();
  live.clear();
  {
    std::unique_lock lock(s.mu);
    s.cv.wait_for(lock, s.limits.stop_deadline, [&] { return s.open == 0; });
  }
  s.ioc.stop();
  for (auto& t : s.io_threads) t.join();
  s.io_threads.clear();
  // Past the deadline: no io thread runs any more, so closing here is safe.
  {
    std::lock_guard lock(s.mu);
    for (auto& [id, weak] : s.sessions)
      if (auto session = weak.lock()) live.push_back(std::move(session));
  }
  for (auto& session : live) session->CloseNow();
  live.clear();
  s.handlers.join();
}

}  // namespace virtscale
