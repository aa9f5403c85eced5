#include "common/http_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/support/test_server.h"

namespace virtscale {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::BindLoopback;
using testing::Gate;
using testing::TestServer;
using testing::WaitFor;

// Answers every connection with `at_once`, then `trickled` one byte every
// `gap`, then holds the connection until destroyed. By hand: cpp-httplib's
// server writes a response's headers in one go.
class TricklingServer {
 public:
  TricklingServer(std::string at_once, std::string trickled, std::chrono::milliseconds gap)
      : fd_(socket(AF_INET, SOCK_STREAM, 0)), port_(BindLoopback(fd_)) {
    listen(fd_, 8);
    thread_ = std::thread([this, at_once, trickled, gap] { Serve(at_once, trickled, gap); });
  }
  ~TricklingServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);  // ends accept()
    thread_.join();
    close(fd_);
  }
  HttpUrl Url() const { return {"http", "127.0.0.1", port_, "/slow"}; }
  int connections() const { return connections_; }

 private:
  void Serve(const std::string& at_once, const std::string& trickled,
             std::chrono::milliseconds gap) {
    while (!stop_) {
      const int conn = accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      ++connections_;
      bool open = send(conn, at_once.data(), at_once.size(), MSG_NOSIGNAL) >= 0;
      for (size_t i = 0; open && !stop_ && i < trickled.size(); ++i) {
        open = send(conn, &trickled[i], 1, MSG_NOSIGNAL) == 1;
        std::this_thread::sleep_for(gap);
      }
      while (open && !stop_) std::this_thread::sleep_for(10ms);
      close(conn);
    }
  }

  int fd_;
  int port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

// Many short header lines: each one arrives well within any per-read timeout.
std::string SlowHeaders() {
  std::string headers = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 400; ++i) headers += "X-Slow: " + std::to_string(i) + "\r\n";
  return headers + "Content-Length: 0\r\n\r\n";
}

HttpUrl UrlOf(const TestServer& server, const std::string& path) {
  return {"http", "127.0.0.1", server.port(), path};
}

HttpRequestOptions WithTimeout(Duration timeout) {
  HttpRequestOptions options;
  options.timeout = timeout;
  return options;
}

TEST(HttpGet, TrickledHeadersEndAtTheDeadline) {
  TricklingServer server("", SlowHeaders(), 20ms);
  const auto start = Clock::now();
  const auto result = HttpGet(server.Url(), {}, WithTimeout(500ms));
  const auto took = Clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, HttpErrorKind::kTimeout);
  EXPECT_EQ(result.error().ToString(), "timeout: no complete response within 500ms from http://" +
                                           std::string("127.0.0.1:") +
                                           std::to_string(server.Url().port) + "/slow");
  EXPECT_LT(took, 500ms + 3s) << "the trickle kept the request past its deadline";
}

TEST(HttpGet, TrickledBodyEndsAtTheDeadline) {
  TricklingServer server("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", std::string(5000, 'x'),
                         20ms);
  const auto start = Clock::now();
  const auto result = HttpGet(server.Url(), {}, WithTimeout(500ms));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, HttpErrorKind::kTimeout) << result.error().ToString();
  EXPECT_LT(Clock::now() - start, 500ms + 3s);
}

TEST(HttpGet, BodyCapIsCountedAsTheBodyArrives) {
  TestServer server;
  server.server().Get("/exact", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(1000, 'a'), "text/plain");
  });
  server.server().Get("/over", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(1001, 'a'), "text/plain");
  });
  // Endless: only the cap can end it before the deadline.
  server.server().Get("/endless", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/plain", [](size_t, httplib::DataSink& sink) {
      const std::string chunk(4096, 'b');
      return sink.write(chunk.data(), chunk.size());
    });
  });
  auto options = WithTimeout(20s);
  options.max_body_bytes = 1000;
  const auto exact = HttpGet(UrlOf(server, "/exact"), {}, options);
  ASSERT_TRUE(exact.ok()) << exact.error().ToString();
  EXPECT_EQ(exact.value().status, 200);
  EXPECT_EQ(exact.value().body.size(), 1000u);
  for (const char* path : {"/over", "/endless"}) {
    const auto result = HttpGet(UrlOf(server, path), {}, options);
    ASSERT_FALSE(result.ok()) << path;
    EXPECT_EQ(result.error().ToString(),
              "too_large: response from " + server.Url(path) + " is larger than 1000 bytes");
  }
}

TEST(HttpGet, RedirectWithinTheOriginIsFollowedWithTheCredentials) {
  TestServer server;
  std::mutex mu;
  std::vector<std::string> seen;  // "path Authorization"
  server.server().Get("/old", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    seen.push_back(req.path + " " + req.get_header_value("Authorization"));
    res.set_redirect("/new?page=2", 302);
  });
  server.server().Get("/new", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    seen.push_back(req.path + " " + req.get_header_value("Authorization"));
    res.status = 404;  // not a redirect: a response like any other
    res.set_content("page " + req.get_param_value("page"), "text/plain");
  });
  auto options = WithTimeout(10s);
  options.bearer_token = "s3cret";
  const auto result = HttpGet(UrlOf(server, "/old?token=x"), {{"Accept", "text/plain"}}, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result.value().status, 404);
  EXPECT_EQ(result.value().body, "page 2");
  EXPECT_EQ(result.value().url, server.Url("/new"));  // without the query
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"/old Bearer s3cret", "/new Bearer s3cret"}));
}

TEST(HttpGet, RedirectToAnotherOriginIsRefusedAndGetsNoCredentials) {
  TestServer a, b;
  std::atomic<int> b_requests{0};
  std::atomic<int> b_authorizations{0};
  b.server().Get(R"(/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    ++b_requests;
    if (req.has_header("Authorization")) ++b_authorizations;
    res.set_content("stolen", "text/plain");
  });
  a.server().Get("/to-b", [&](const httplib::Request&, httplib::Response& res) {
    res.set_redirect(b.Url("/steal"), 302);
  });
  auto options = WithTimeout(10s);
  options.basic_auth = HttpBasicAuth{"user", "pass"};
  const auto result = HttpGet(UrlOf(a, "/to-b"), {}, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, HttpErrorKind::kHttpStatus);
  EXPECT_EQ(result.error().message, "redirect from " + a.Url("/to-b") + " to " + b.Url("/steal") +
                                        " not followed: another origin (credentials stay with " +
                                        a.Url() + ")");
  EXPECT_EQ(b_requests.load(), 0);
  EXPECT_EQ(b_authorizations.load(), 0);
}

TEST(HttpGet, CancelFromAnotherThreadEndsTheRequest) {
  TricklingServer server("", SlowHeaders(), 20ms);
  RequestCanceller canceller;
  auto options = WithTimeout(60s);
  options.canceller = &canceller;
  std::thread cancel([&] {
    WaitFor([&] { return server.connections() >= 1; });
    std::this_thread::sleep_for(100ms);  // into the trickle
    canceller.Cancel();
  });
  const auto start = Clock::now();
  const auto result = HttpGet(server.Url(), {}, options);
  cancel.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().ToString(), "cancelled: cancelled");
  EXPECT_LT(Clock::now() - start, 10s);
  // Once cancelled, later requests fail at once.
  EXPECT_EQ(HttpGet(server.Url(), {}, options).error().kind, HttpErrorKind::kCancelled);
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpGet, ConnectionErrorsSayWhatFailed) {
  // Bound, never listening: refuses connections.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int port = BindLoopback(fd);
  const auto result = HttpGet({"http", "127.0.0.1", port, "/x?q=1"}, {}, WithTimeout(5s));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().ToString(),
            "connection: request to http://127.0.0.1:" + std::to_string(port) +
                "/x failed: connection refused or host unreachable");
}

TEST(HttpGet, SlowHandlerWithinTheDeadlineAnswers) {
  Gate gate;
  TestServer server;
  server.server().Get("/held", [&](const httplib::Request& req, httplib::Response& res) {
    gate.Wait();
    res.set_content(req.get_header_value("User-Agent"), "text/plain");
  });
  std::thread open([&] {
    WaitFor([&] { return gate.waiting() == 1; });
    gate.Open();
  });
  const auto result = HttpGet(UrlOf(server, "/held"), {}, WithTimeout(20s));
  open.join();
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result.value().body, "virtscale");
}

TEST(HttpPost, SendsTheBodyWithItsContentTypeAndUserAgent) {
  TestServer server;
  std::mutex mu;
  std::string seen;
  server.server().Post("/hook", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    seen = req.get_header_value("Content-Type") + " " + req.get_header_value("User-Agent") + " " +
           req.body;
    res.status = 202;
    res.set_content("queued", "text/plain");
  });
  const auto result =
      HttpPost(UrlOf(server, "/hook?k=v"), {}, R"({"a":1})", "application/json", WithTimeout(10s));
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result.value().status, 202);
  EXPECT_EQ(result.value().body, "queued");
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, R"(application/json virtscale {"a":1})");
}

TEST(HttpPost, RedirectIsAResponseAndNotFollowed) {
  TestServer server;
  std::atomic<int> followed{0};
  server.server().Post("/old", [&](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("/new", 307);
  });
  server.server().Post("/new", [&](const httplib::Request&, httplib::Response&) { ++followed; });
  const auto result = HttpPost(UrlOf(server, "/old"), {}, "x", "text/plain", WithTimeout(10s));
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result.value().status, 307);
  EXPECT_EQ(followed.load(), 0);
}

TEST(HttpPost, TrickledAnswerEndsAtTheDeadline) {
  TricklingServer server("", SlowHeaders(), 20ms);
  const auto result = HttpPost(server.Url(), {}, "{}", "application/json", WithTimeout(500ms));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, HttpErrorKind::kTimeout) << result.error().ToString();
}

TEST(HttpPost, BodyCapAndCancelApply) {
  TestServer server;
  server.server().Post("/big", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(2000, 'a'), "text/plain");
  });
  auto options = WithTimeout(10s);
  options.max_body_bytes = 1000;
  const auto big = HttpPost(UrlOf(server, "/big"), {}, "", "text/plain", options);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().kind, HttpErrorKind::kTooLarge);
  RequestCanceller canceller;
  canceller.Cancel();
  options.canceller = &canceller;
  EXPECT_EQ(HttpPost(UrlOf(server, "/big"), {}, "", "text/plain", options).error().kind,
            HttpErrorKind::kCancelled);
}

}  // namespace
}  // namespace virtscale
