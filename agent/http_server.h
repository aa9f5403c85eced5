#pragma once
// The agent's HTTP(S) server: cpp-httplib with exporter-toolkit TLS and basic
// auth, request limits, and per-handler request metrics. Handlers are plain
// functions; anything they throw becomes a 500 with the reason logged.
//
//   HttpServer server(limits, web_config, registry);
//   server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {...});
//   if (auto err = server.Bind("127.0.0.1:0")) { ...*err... }
//   server.Start();  // serves on its own threads
#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "agent/web_config.h"

namespace virtscale {

struct HttpLimits {
  size_t max_concurrent = 16;           // worker threads serving requests
  size_t max_queued_connections = 64;   // accepted but waiting; beyond: closed at once
  std::chrono::seconds read_timeout{5};
  std::chrono::seconds write_timeout{10};
  size_t max_request_bytes = 64 * 1024;
  size_t keep_alive_max_count = 100;
};

// "host:port", ":port" (all interfaces) or "[v6]:port". Port 0 picks a free one.
struct ListenAddress {
  std::string host;
  int port = 0;
};
std::optional<ListenAddress> ParseListenAddress(const std::string& text);

class HttpServer {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  // Throws std::runtime_error when TLS files cannot be loaded.
  HttpServer(HttpLimits limits, const WebConfig& web, prometheus::Registry& metrics_registry);
  ~HttpServer();

  // `handler` label of the request metrics is `path`. Auth applies when configured.
  void Get(const std::string& path, Handler handler);
  void Post(const std::string& path, Handler handler);

  // Binds; returns an error message ("listen tcp :9177: address already in use").
  std::optional<std::string> Bind(const std::string& listen_address);
  int port() const { return port_; }
  bool tls() const { return tls_; }
  void Start();
  void Stop();

 private:
  void Route(const std::string& method, const std::string& path, Handler handler);

  HttpLimits limits_;
  bool tls_ = false;
  std::unique_ptr<httplib::Server> server_;
  BasicAuthenticator auth_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace virtscale
