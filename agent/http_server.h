#pragma once
// The agent's HTTP(S) server on Boost.Beast and Asio: event-driven, so a slow
// or idle client costs a socket and a timer, never a thread. It only moves
// bytes: requests become HttpRequest, the Router (agent/endpoints.h) answers.
//
//   HttpServer server(limits, web_config, router, registry);
//   if (auto err = server.Bind("127.0.0.1:0")) { ...*err... }
//   server.Start();   // io threads and handler threads
//   ...
//   server.Stop();    // graceful, within limits.stop_deadline
//
// Per connection:
//   - TLS (web config tls_server_config) is set up with ConfigureTlsContext on
//     the asio::ssl context's SSL_CTX; the handshake must finish within
//     `request_deadline` of the accept;
//   - the first request must arrive whole (headers and body) within
//     `request_deadline` of the accept (or of the handshake); a kept-alive
//     connection may then wait `idle_timeout` for the first byte of its next
//     request, which must arrive whole within `request_deadline` of that byte.
//     Trickling bytes does not extend either;
//   - headers above `header_limit` bytes are 431, bodies (chunked or not) above
//     `body_limit` are 413, malformed framing (a negative or conflicting
//     Content-Length, Content-Length with Transfer-Encoding, a Transfer-Encoding
//     whose last coding is not chunked) is 400; all are
//     answered before anything more is buffered; what the client still sends
//     is read and dropped for up to 1 s (so it sees the answer), then it closes;
//   - pipelined requests are answered one after another, in order;
//   - a POST without Content-Length has an empty body (RFC 9112 6.3).
// Past `max_connections` open connections a new one gets a plain
// "503 Service Unavailable" and is closed (over TLS it is closed at once: no
// handshake is spent on a refusal).
// Basic auth (web config basic_auth_users) is checked before routing, for known
// and unknown paths alike, on a handler thread: bcrypt and the constant failure
// time never block the io threads.
//
// Metrics: virtscale_http_requests_total{handler,code},
// virtscale_http_request_duration_seconds{handler} and
// virtscale_http_connections_closed_total{reason} with reason in
// connection_limit, request_deadline, idle_timeout, bad_request.
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "agent/endpoints.h"
#include "agent/web_config.h"

namespace virtscale {

// "host:port", ":port" (all interfaces) or "[v6]:port". Port 0 picks a free one.
// The host may be a name ("localhost"); Bind resolves it.
struct ListenAddress {
  std::string host;
  int port = 0;
};
std::optional<ListenAddress> ParseListenAddress(const std::string& text);

// Defaults of the web.* keys in virtscale.yml (docs/configuration.md).
struct HttpServerLimits {
  std::chrono::milliseconds request_deadline{5000};  // whole request, see above
  std::chrono::milliseconds idle_timeout{30000};     // kept-alive, between requests
  std::chrono::milliseconds write_timeout{10000};    // one whole response
  std::chrono::milliseconds stop_deadline{5000};     // Stop(): in-flight responses finish
  size_t max_connections = 512;
  size_t header_limit = 16 * 1024;  // request line and headers, bytes
  size_t body_limit = 64 * 1024;    // request body, bytes, after de-chunking
  size_t io_threads = 2;
  size_t handler_threads = 4;  // auth and handlers run here

  bool operator==(const HttpServerLimits&) const = default;
};

struct HttpServerState;  // http_server.cc

class HttpServer {
 public:
  // Throws std::runtime_error when TLS files cannot be loaded.
  HttpServer(HttpServerLimits limits, const WebConfig& web, std::shared_ptr<const Router> router,
             prometheus::Registry& metrics_registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // "host:port", ":port", "[v6]:port" (ParseListenAddress); returns an error
  // message ("listen tcp :9177: address already in use").
  std::optional<std::string> Bind(const std::string& listen_address);
  int port() const;
  bool tls() const;
  void Start();
  // Refuses new connections, closes idle ones, lets responses in flight finish
  // until stop_deadline, then closes the rest. Idempotent.
  void Stop();
  // Open connections right now (for tests and the connection cap).
  size_t connections() const;

 private:
  std::unique_ptr<HttpServerState> state_;
};

}  // namespace virtscale
