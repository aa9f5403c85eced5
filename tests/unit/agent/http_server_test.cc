#include "agent/http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace virtscale {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A raw TCP client: these tests are about framing, so they write bytes.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { close(fd_); }
  bool connected() const { return connected_; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads until the server closes or `timeout` passes; `closed` says which.
  std::string ReadAll(std::chrono::milliseconds timeout, bool* closed = nullptr) {
    std::string out;
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[65536];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        if (closed) *closed = true;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    if (closed) *closed = false;
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

size_t Count(const std::string& text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerLimits limits = {}, WebConfig web = {}) {
    Router router;
    router.Add("GET", "/metrics", [](const HttpRequest&) {
      HttpResponse res;
      auto body = std::make_shared<MetricsBody>();
      body->head = "a 1\n";
      body->tail = std::make_shared<const std::string>("b 2\n");
      res.shared_body = std::move(body);
      res.SetHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      return res;
    });
    router.Add("POST", "/-/reload", [](const HttpRequest& req) {
      HttpResponse res;
      res.SetContent("reloaded " + std::to_string(req.body.size()) + "\n", "text/plain");
      return res;
    });
    router.Add("GET", "/echo", [](const HttpRequest& req) {
      HttpResponse res;
      res.SetContent(req.path + "?" + (req.params.empty() ? "" : req.params.begin()->second),
                     "text/plain");
      return res;
    });
    server_ = std::make_unique<HttpServer>(
        limits, web, std::make_shared<const Router>(std::move(router)), registry_);
    ASSERT_EQ(server_->Bind("127.0.0.1:0"), std::nullopt);
    ASSERT_GT(server_->port(), 0);
    server_->Start();
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::string Exchange(std::string_view request, std::chrono::milliseconds timeout = 3s) {
    RawClient c(server_->port());
    EXPECT_TRUE(c.connected());
    c.Send(request);
    return c.ReadAll(timeout);
  }

  prometheus::Registry registry_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, ServesTheSharedMetricsBody) {
  StartServer();
  const std::string res = Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(res, HasSubstr("Content-Length: 8\r\n"));
  EXPECT_THAT(res, HasSubstr("\r\n\r\na 1\nb 2\n"));
}

TEST_F(HttpServerTest, HeadHasTheLengthButNoBody) {
  StartServer();
  const std::string res =
      Exchange("HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(res, HasSubstr("Content-Length: 8\r\n"));
  EXPECT_EQ(res.substr(res.find("\r\n\r\n") + 4), "");
}

TEST_F(HttpServerTest, PostWithoutBodyAndWrongMethod) {
  StartServer();
  std::string res = Exchange("POST /-/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(res, HasSubstr("reloaded 0\n"));
  res = Exchange("POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 405 "));
  EXPECT_THAT(res, HasSubstr("Allow: GET, HEAD\r\n"));
  res = Exchange("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(res, StartsWith("HTTP/1.1 404 "));
}

TEST_F(HttpServerTest, AnswersPipelinedRequestsInOrder) {
  StartServer();
  const std::string res = Exchange(
      "GET /echo?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /echo?x=2 HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /echo?x=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(Count(res, "HTTP/1.1 200 OK"), 3u);
  const size_t one = res.find("/echo?1"), two = res.find("/echo?2"), three = res.find("/echo?3");
  ASSERT_NE(three, std::string::npos);
  EXPECT_LT(one, two);
  EXPECT_LT(two, three);
}

TEST_F(HttpServerTest, LimitsHeadersAndBodiesBeforeBuffering) {
  HttpServerLimits limits;
  limits.header_limit = 4096;
  limits.body_limit = 1024;
  StartServer(limits);
  std::string big = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 100; ++i)
    big += "X-Pad-" + std::to_string(i) + ": " + std::string(100, 'a') + "\r\n";
  big += "\r\n";
  EXPECT_THAT(Exchange(big), StartsWith("HTTP/1.1 431 "));

  std::string chunked = "POST /-/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) chunked += "200\r\n" + std::string(512, 'b') + "\r\n";
  chunked += "0\r\n\r\n";
  EXPECT_THAT(Exchange(chunked), StartsWith("HTTP/1.1 413 "));

  EXPECT_THAT(Exchange("POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"),
              StartsWith("HTTP/1.1 413 "));
}

TEST_F(HttpServerTest, MalformedFramingIsABadRequestAtOnce) {
  StartServer();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(Exchange("POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
              StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange("POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                       "Content-Length: 4\r\n\r\nabcd"),
              StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange("POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"),
              StartsWith("HTTP/1.1 400 "));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

// RFC 9112 6.3: a request body's length is unknown unless chunked is the last
// coding. Taken for bodiless, the body would be answered as a second request.
TEST_F(HttpServerTest, TransferEncodingNotEndingInChunkedIsABadRequest) {
  StartServer();
  for (const char* coding : {"gzip", "chunked, chunked", "identity"}) {
    const std::string res =
        Exchange(std::string("POST /-/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + coding +
                 "\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THAT(res, StartsWith("HTTP/1.1 400 ")) << coding;
    EXPECT_EQ(Count(res, "HTTP/1.1 "), 1u) << coding;
  }
  // Chunked last: served.
  EXPECT_THAT(Exchange("POST /-/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked"
                       "\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
              HasSubstr("reloaded 3\n"));
}

TEST_F(HttpServerTest, TricklingClientIsClosedAtTheRequestDeadline) {
  HttpServerLimits limits;
  limits.request_deadline = 300ms;
  StartServer(limits);
  RawClient c(server_->port());
  ASSERT_TRUE(c.connected());
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {  // 5 s of trickling, a byte per 50 ms
    c.Send("G");
    c.ReadAll(50ms, &closed);
  }
  EXPECT_TRUE(closed);
  // Closed at the 300 ms deadline; the bound only leaves room for a loaded machine.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST_F(HttpServerTest, IdleKeptAliveConnectionIsClosed) {
  HttpServerLimits limits;
  limits.idle_timeout = 200ms;
  StartServer(limits);
  RawClient c(server_->port());
  c.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  bool closed = false;
  const std::string res = c.ReadAll(1500ms, &closed);
  EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_TRUE(closed);
}

TEST_F(HttpServerTest, RefusesConnectionsPastTheCap) {
  HttpServerLimits limits;
  limits.max_connections = 2;
  StartServer(limits);
  RawClient a(server_->port()), b(server_->port());
  ASSERT_TRUE(a.connected() && b.connected());
  for (int i = 0; i < 100 && server_->connections() < 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_THAT(Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), StartsWith("HTTP/1.1 503 "));
  a.Send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(a.ReadAll(2s), StartsWith("HTTP/1.1 200 OK"));
}

TEST_F(HttpServerTest, StopClosesIdleConnectionsAndRefusesNewOnes) {
  StartServer();
  RawClient idle(server_->port());
  ASSERT_TRUE(idle.connected());
  const int port = server_->port();
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  bool closed = false;
  idle.ReadAll(1s, &closed);
  EXPECT_TRUE(closed);
  RawClient late(port);
  EXPECT_FALSE(late.connected());
}

}  // namespace
}  // namespace virtscale
