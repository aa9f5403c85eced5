#pragma once
// The agent's HTTP(S) server: cpp-httplib with exporter-toolkit TLS and basic
// auth, request limits, and per-handler request metrics. Handlers are plain
// functions; anything they throw becomes a 500 with the reason logged.
//
//   HttpServer server(limits, web_config, registry);
//   server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {...});
//   if (auto err = server.Bind("127.0.0.1:0")) { ...*err... }
//   server.Start();  // serves on its own threads
//
// Access control: when basic_auth_users is set, every request (known path or
// not) needs valid credentials, else 401 before any routing. Unknown paths then
// get 404, known paths with another method 404 too (as httplib does).
//
// Limits, so a slow or flooding client on the network cannot starve /metrics
// (cpp-httplib 0.11 has only per-read timeouts and an unbounded queue):
//   - `max_concurrent` worker threads serve connections;
//   - at most `max_queued_connections` accepted connections wait for a worker;
//     a new one beyond that pushes out the oldest waiting one (closed);
//   - every connection must deliver a whole request within `request_deadline`
//     of being accepted or of its previous response (slowloris: trickling one
//     byte at a time does not extend it); while the pool is saturated and others
//     wait, connections that have not delivered a request within
//     `pressure_grace` are closed first;
//   - request bodies above `max_request_bytes` get 413.
// Closed connections are counted in virtscale_http_connections_closed_total{reason}.
#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "agent/endpoints.h"
#include "agent/web_config.h"

namespace virtscale {

struct HttpLimits {
  size_t max_concurrent = 16;          // worker threads serving connections
  size_t max_queued_connections = 64;  // accepted, waiting for a worker
  std::chrono::seconds read_timeout{5};
  std::chrono::seconds write_timeout{10};
  std::chrono::milliseconds request_deadline{5000};  // whole request, see above
  std::chrono::milliseconds pressure_grace{1000};    // same, while saturated
  size_t max_request_bytes = 64 * 1024;
  size_t keep_alive_max_count = 100;
  std::chrono::seconds keep_alive_timeout{2};
};

// "host:port", ":port" (all interfaces) or "[v6]:port". Port 0 picks a free one.
struct ListenAddress {
  std::string host;
  int port = 0;
};
std::optional<ListenAddress> ParseListenAddress(const std::string& text);

class ConnectionPool;  // http_server.cc

class HttpServer {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  // Throws std::runtime_error when TLS files cannot be loaded.
  HttpServer(HttpLimits limits, const WebConfig& web, prometheus::Registry& metrics_registry);
  ~HttpServer();

  // `handler` label of the request metrics is `path`. Auth applies when configured.
  void Get(const std::string& path, Handler handler);
  void Post(const std::string& path, Handler handler);
  // Serves every path of `router` with the methods it has (HEAD with GET);
  // another method is a 404, as before.
  void Serve(std::shared_ptr<const Router> router);

  // Binds; returns an error message ("listen tcp :9177: address already in use").
  std::optional<std::string> Bind(const std::string& listen_address);
  int port() const { return port_; }
  bool tls() const { return tls_; }
  void Start();
  void Stop();

 private:
  void Route(const std::string& method, const std::string& path, Handler handler);
  void Record(const std::string& handler, int code, double seconds);

  HttpLimits limits_;
  bool tls_ = false;
  std::unique_ptr<httplib::Server> server_;
  BasicAuthenticator auth_;
  std::set<std::string> routes_;  // registered paths; others count as "other"
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Family<prometheus::Counter>& closed_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::thread thread_;
};

}  // namespace virtscale
