#include "agent/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "agent/tls_context.h"
#include "common/log.h"

namespace virtscale {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr int kListenBacklog = 256;

int PortOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return -1;
}

// A connected TCP socket of this process whose local port is `port`, and that
// is not in `known` (socket inodes): the server side of a connection nobody
// tracks yet. cpp-httplib 0.11 hands the task queue a closure over the accepted
// socket and no way to see it, so the pool finds it here, right after accept.
// /proc/self/fd lists descriptors in order and never skips one that stays open
// during the walk, so the socket just accepted is always seen. Returns a
// duplicate descriptor of it (-1 if none) and its inode.
template <typename Known>
int DupUntrackedServerSocket(int port, const Known& known, ino_t& inode) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  const int own = dirfd(dir);
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == own) continue;
    struct stat st {};
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode) || known.count(st.st_ino) ||
        getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        PortOf(local) != port ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
      continue;  // not a socket, tracked, another port, or the listening socket
    found = fcntl(static_cast<int>(fd), F_DUPFD_CLOEXEC, 0);
    inode = st.st_ino;
    break;
  }
  closedir(dir);
  return found;
}

}  // namespace

// A TaskQueue for httplib that bounds the wait queue and the time a connection
// may take to deliver a request (see the header). One task = one connection.
//
// Waiting connections whose request has fully arrived ("ready": a whole header
// block, or for TLS any bytes) are served first, so a scrape overtakes a crowd
// of trickling clients. While every worker is busy and someone waits, clients
// that have not delivered a request within `pressure_grace` are closed.
class ConnectionPool : public httplib::TaskQueue {
 public:
  struct Conn {
    // Our own descriptor of the socket: httplib may close and reuse its one at
    // any time, ours stays on this socket until Forget.
    int fd = -1;
    ino_t inode = 0;
    // Accept, pick-up by a worker, or the end of the last handler.
    std::atomic<int64_t> since_ns{0};
    std::atomic<bool> in_handler{false};
    bool queued = true;  // guarded by mu_
    bool killed = false;
  };

  ConnectionPool(const HttpLimits& limits, int port, bool tls, prometheus::Counter& queue_full,
                 prometheus::Counter& deadline)
      : limits_(limits), port_(port), tls_(tls), queue_full_(queue_full), deadline_(deadline) {
    for (size_t i = 0; i < std::max<size_t>(1, limits_.max_concurrent); ++i)
      workers_.emplace_back([this] { WorkerLoop(); });
    reaper_ = std::thread([this] { ReaperLoop(); });
    watchdog_ = std::thread([this] { WatchdogLoop(); });
  }

  ~ConnectionPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mu_);
    std::shared_ptr<Conn> conn = Identify();
    if (conn) conns_[conn->inode] = conn;
    if (queue_.size() >= std::max<size_t>(1, limits_.max_queued_connections)) {
      // Push out a waiting connection rather than refuse the newest (a flood then
      // cannot keep a fresh scrape out of line): the oldest that is not ready.
      auto victim = std::find_if(queue_.begin(), queue_.end(),
                                 [&](const Task& t) { return !Ready(t.conn.get()); });
      if (victim == queue_.end()) victim = queue_.begin();
      Kill(victim->conn.get());
      queue_full_.Increment();
      reap_.push_back(std::move(*victim));
      queue_.erase(victim);
      reap_cv_.notify_one();
    }
    queue_.push_back({std::move(conn), std::move(fn)});
    cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = shutting_down_ = true;
      for (auto& [inode, conn] : conns_)
        if (!conn->in_handler) Kill(conn.get());
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    {
      std::lock_guard lock(mu_);
      reaper_done_ = true;
    }
    reap_cv_.notify_all();
    reaper_.join();
    {
      std::lock_guard lock(mu_);
      watchdog_done_ = true;
    }
    watch_cv_.notify_all();
    watchdog_.join();
  }

  static void EnterHandler() {
    if (Conn* c = current_) c->in_handler = true;
  }
  // Whether connections wait for a worker while this thread serves one: then
  // the current response closes its connection, so a kept-alive client cannot
  // hold a worker for its next 100 requests while others queue.
  static bool OthersWaiting() {
    ConnectionPool* pool = current_pool_;
    if (pool == nullptr) return false;
    std::lock_guard lock(pool->mu_);
    return !pool->queue_.empty();
  }

  static void LeaveHandler() {
    if (Conn* c = current_) {
      c->since_ns = NowNs();
      c->in_handler = false;
    }
  }

 private:
  struct Task {
    std::shared_ptr<Conn> conn;  // null when the socket could not be identified
    std::function<void()> fn;
  };

  static int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               SteadyClock::now().time_since_epoch())
        .count();
  }

  // Caller holds mu_: a connection that ends meanwhile stays tracked until
  // Forget, so the only untracked socket is the one just accepted.
  std::shared_ptr<Conn> Identify() {
    ino_t inode = 0;
    const int fd = DupUntrackedServerSocket(port_, conns_, inode);
    if (fd < 0) return nullptr;
    auto conn = std::make_shared<Conn>();
    conn->fd = fd;
    conn->inode = inode;
    conn->since_ns = NowNs();
    return conn;
  }

  // Whether the connection's request has arrived (or it has closed): serving it
  // takes a worker only briefly. Unidentified connections count as ready.
  bool Ready(const Conn* conn) const {
    if (conn == nullptr || conn->killed) return true;
    char buf[4096];
    const ssize_t n = recv(conn->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    if (tls_) return true;
    return std::string_view(buf, static_cast<size_t>(n)).find("\r\n\r\n") != std::string_view::npos;
  }

  // Caller holds mu_. shutdown(2) wakes the worker blocked on the socket; the
  // worker's httplib code still owns and closes the descriptor.
  void Kill(Conn* conn) {
    if (conn == nullptr || conn->killed) return;
    conn->killed = true;
    ::shutdown(conn->fd, SHUT_RDWR);
  }

  void Forget(const std::shared_ptr<Conn>& conn) {
    if (!conn) return;
    std::lock_guard lock(mu_);
    conns_.erase(conn->inode);
    close(conn->fd);
  }

  void WorkerLoop() {
    while (true) {
      Task task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || shutting_down_; });
        if (queue_.empty()) return;
        auto next = std::find_if(queue_.begin(), queue_.end(),
                                 [&](const Task& t) { return Ready(t.conn.get()); });
        if (next == queue_.end()) next = queue_.begin();
        task = std::move(*next);
        queue_.erase(next);
        if (task.conn) {
          task.conn->queued = false;
          task.conn->since_ns = NowNs();  // time spent in our queue is not the client's
        }
        ++busy_;
      }
      current_ = task.conn.get();
      current_pool_ = this;
      task.fn();
      current_ = nullptr;
      current_pool_ = nullptr;
      Forget(task.conn);
      std::lock_guard lock(mu_);
      --busy_;
    }
  }

  // Runs connections that were pushed out of the queue: their sockets are shut
  // down, so httplib only closes them.
  void ReaperLoop() {
    while (true) {
      Task task;
      {
        std::unique_lock lock(mu_);
        reap_cv_.wait(lock, [&] { return !reap_.empty() || reaper_done_; });
        if (reap_.empty()) return;
        task = std::move(reap_.front());
        reap_.pop_front();
      }
      task.fn();
      Forget(task.conn);
    }
  }

  void WatchdogLoop() {
    const int64_t deadline = std::chrono::nanoseconds(limits_.request_deadline).count();
    const int64_t grace = std::min(
        deadline, static_cast<int64_t>(std::chrono::nanoseconds(limits_.pressure_grace).count()));
    std::unique_lock lock(mu_);
    while (!watchdog_done_) {
      watch_cv_.wait_for(lock, std::chrono::milliseconds(100));
      const int64_t now = NowNs();
      const bool pressure = busy_ >= workers_.size() && !queue_.empty();
      for (auto& [inode, conn] : conns_) {
        if (conn->killed || conn->in_handler) continue;
        const int64_t age = now - conn->since_ns;
        // A waiting client is closed only when it holds others up with nothing to serve.
        const bool expired = conn->queued ? pressure && age > grace && !Ready(conn.get())
                                          : age > (pressure ? grace : deadline);
        if (!expired) continue;
        Kill(conn.get());
        deadline_.Increment();
      }
      // Killed connections still waiting go to the reaper: no worker needed.
      bool moved = false;
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->conn && it->conn->killed) {
          reap_.push_back(std::move(*it));
          it = queue_.erase(it);
          moved = true;
        } else {
          ++it;
        }
      }
      if (moved) reap_cv_.notify_one();
    }
  }

  static thread_local Conn* current_;
  static thread_local ConnectionPool* current_pool_;

  const HttpLimits limits_;
  const int port_;
  const bool tls_;
  prometheus::Counter& queue_full_;
  prometheus::Counter& deadline_;

  std::mutex mu_;
  std::condition_variable cv_, reap_cv_, watch_cv_;
  std::deque<Task> queue_;
  std::deque<Task> reap_;
  std::map<ino_t, std::shared_ptr<Conn>> conns_;  // by socket inode, until the task ends
  size_t busy_ = 0;
  bool stopped_ = false;
  bool shutting_down_ = false;
  bool reaper_done_ = false;
  bool watchdog_done_ = false;
  std::vector<std::thread> workers_;
  std::thread reaper_;
  std::thread watchdog_;
};

thread_local ConnectionPool::Conn* ConnectionPool::current_ = nullptr;
thread_local ConnectionPool* ConnectionPool::current_pool_ = nullptr;

namespace {
thread_local SteadyClock::time_point request_start;
}  // namespace

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

HttpServer::HttpServer(HttpLimits limits, const WebConfig& web,
                       prometheus::Registry& metrics_registry)
    : limits_(limits),
      auth_(web.basic_auth_users),
      requests_(prometheus::BuildCounter()
                    .Name("virtscale_http_requests_total")
                    .Help("HTTP requests served, by handler and status code.")
                    .Register(metrics_registry)),
      durations_(prometheus::BuildHistogram()
                     .Name("virtscale_http_request_duration_seconds")
                     .Help("Time to serve an HTTP request, by handler.")
                     .Register(metrics_registry)),
      closed_(prometheus::BuildCounter()
                  .Name("virtscale_http_connections_closed_total")
                  .Help("Connections closed by the server's limits, by reason "
                        "(queue_full, request_deadline).")
                  .Register(metrics_registry)) {
  if (web.tls) {
    std::string error;
    const TlsServerConfig tls = *web.tls;
    server_ = std::make_unique<httplib::SSLServer>(
        [&](SSL_CTX& ctx) { return ConfigureTlsContext(ctx, tls, error); });
    if (!server_->is_valid()) throw std::runtime_error("TLS setup failed: " + error);
    tls_ = true;
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a
  // second process bind our port and take a share of the scrapes.
  server_->set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    // Accepted sockets inherit it: without it a kept-alive gzip scrape waits
    // ~40 ms for the client's delayed ACK.
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    listen_fd_ = sock;
  });
  server_->set_tcp_nodelay(true);
  server_->set_read_timeout(limits_.read_timeout);
  server_->set_write_timeout(limits_.write_timeout);
  server_->set_payload_max_length(limits_.max_request_bytes);
  server_->set_keep_alive_max_count(limits_.keep_alive_max_count);
  server_->set_keep_alive_timeout(limits_.keep_alive_timeout.count());
  // Every request, routed or not, authenticates before routing.
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = SteadyClock::now();
    if (auth_.enabled() && !auth_.Check(req.get_header_value("Authorization"))) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"virtscale\"");
      res.set_content("Unauthorized\n", "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Runs for every response just before it is written.
  server_->set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const double seconds =
        std::chrono::duration<double>(SteadyClock::now() - request_start).count();
    Record(routes_.contains(req.path) ? req.path : "other", res.status == -1 ? 200 : res.status,
           seconds);
    if (ConnectionPool::OthersWaiting()) res.set_header("Connection", "close");
    ConnectionPool::LeaveHandler();
  });
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LogError("HTTP handler failed", {{"path", req.path}, {"err", what}});
        res.status = 500;
        res.set_content("internal error\n", "text/plain");
      });
  server_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty())
      res.set_content(res.status == 404 ? "404 page not found\n" : "request failed\n",
                      "text/plain");
  });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Record(const std::string& handler, int code, double seconds) {
  requests_.Add({{"handler", handler}, {"code", std::to_string(code)}}).Increment();
  durations_
      .Add({{"handler", handler}},
           prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25, 0.5, 1, 2.5, 5})
      .Observe(seconds);
}

void HttpServer::Route(const std::string& method, const std::string& path, Handler handler) {
  routes_.insert(path);
  // The request deadline stops here: our own work is not the client's delay.
  auto wrapped = [handler = std::move(handler)](const httplib::Request& req,
                                                httplib::Response& res) {
    ConnectionPool::EnterHandler();
    handler(req, res);
  };
  if (method == "GET") {
    server_->Get(path, std::move(wrapped));
  } else {
    server_->Post(path, std::move(wrapped));
  }
}

void HttpServer::Get(const std::string& path, Handler handler) {
  Route("GET", path, std::move(handler));
}
void HttpServer::Post(const std::string& path, Handler handler) {
  Route("POST", path, std::move(handler));
}

void HttpServer::Serve(std::shared_ptr<const Router> router) {
  for (const std::string& path : router->Paths()) {
    Handler handler = [router](const httplib::Request& req, httplib::Response& res) {
      HttpRequest request;
      request.method = req.method;
      request.path = req.path;
      request.params = req.params;
      for (const auto& [name, value] : req.headers) request.headers.emplace(name, value);
      request.body = req.body;
      HttpResponse out = router->Serve(request);
      res.status = out.status;
      std::string content_type = "text/plain";
      for (const auto& [name, value] : out.headers) {
        if (name == "Content-Type") {
          content_type = value;
        } else {
          res.set_header(name, value);
        }
      }
      if (!out.shared_body) {
        res.set_content(std::move(out.body), content_type);
        return;
      }
      // A sized provider is sent as is: httplib neither copies nor re-compresses it.
      std::shared_ptr<const MetricsBody> body = std::move(out.shared_body);
      res.set_content_provider(body->size(), content_type,
                               [body](size_t offset, size_t length, httplib::DataSink& sink) {
                                 std::string chunk;
                                 body->CopyRange(offset, std::min<size_t>(length, 1 << 20), chunk);
                                 return sink.write(chunk.data(), chunk.size());
                               });
    };
    // Only the router's own methods: another one stays a 404 here, as cpp-httplib
    // answers it (the Beast server answers 405 with Allow).
    const std::string allow = router->Allow(path);
    if (allow.find("GET") != std::string::npos) Get(path, handler);
    if (allow.find("POST") != std::string::npos) Post(path, handler);
  }
}

std::optional<std::string> HttpServer::Bind(const std::string& listen_address) {
  auto addr = ParseListenAddress(listen_address);
  if (!addr) return "invalid listen address \"" + listen_address + "\" (want HOST:PORT or :PORT)";
  if (addr->port == 0) {
    port_ = server_->bind_to_any_port(addr->host);
    if (port_ <= 0) return "listen tcp " + listen_address + ": cannot bind";
  } else {
    if (!server_->bind_to_port(addr->host, addr->port))
      return "listen tcp " + listen_address + ": cannot bind (address already in use?)";
    port_ = addr->port;
  }
  // httplib listens with a backlog of 5; connections beyond it wait for SYN
  // retransmits (seconds). Listening again only raises the backlog.
  if (listen_fd_ >= 0) ::listen(listen_fd_, kListenBacklog);
  // httplib asks for the queue when it starts listening, after the bind.
  const HttpLimits limits = limits_;
  const int port = port_;
  prometheus::Counter& queue_full = closed_.Add({{"reason", "queue_full"}});
  prometheus::Counter& deadline = closed_.Add({{"reason", "request_deadline"}});
  const bool tls = tls_;
  server_->new_task_queue = [limits, port, tls, &queue_full, &deadline] {
    return new ConnectionPool(limits, port, tls, queue_full, deadline);
  };
  return std::nullopt;
}

void HttpServer::Start() {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace virtscale
