#include "collectors/sources/source_manager.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "collectors/sources/poll.h"
#include "tests/unit/support/test_server.h"

namespace virtscale {
namespace {

using namespace std::chrono_literals;
using testing::BindLoopback;
using testing::Gate;
using testing::TestServer;
using testing::WaitFor;

SourceConfig HttpSource(SourceType type, const std::string& url, Duration interval = 50ms,
                        Duration timeout = 2s) {
  SourceConfig c;
  c.type = type;
  std::string why;
  auto parsed = ParseHttpUrl(url, why);
  EXPECT_TRUE(parsed) << url << ": " << why;
  if (parsed) c.url = *parsed;
  c.interval = interval;
  c.timeout = timeout;
  c.stale_after = 3 * std::max(interval, timeout);
  return c;
}

SourceConfig Prom(const std::string& url, const std::string& query = "sum(q)") {
  auto c = HttpSource(SourceType::kPrometheus, url);
  c.query = query;
  return c;
}

SourceConfig Scrape(const std::string& url, const std::string& metric,
                    std::map<std::string, std::string> labels = {}, bool sum = false) {
  auto c = HttpSource(SourceType::kScrape, url);
  c.metric = metric;
  c.labels = std::move(labels);
  c.sum = sum;
  return c;
}

SourceConfig File(const std::string& path) {
  SourceConfig c;
  c.type = SourceType::kFile;
  c.path = path;
  c.interval = 50ms;
  c.timeout = 50ms;
  c.stale_after = 10s;
  return c;
}

std::string Vector(const std::string& value) {
  return R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,")" +
         value + R"("]}]}})";
}

// Runs one source until it has completed `polls` polls and returns its reading.
SourceReading ReadAfterPolls(const SourceConfig& config, uint64_t polls = 1) {
  SourceManager manager({{"s", config}});
  manager.Start();
  EXPECT_TRUE(WaitFor([&] { return manager.PollCount("s") >= polls; }));
  manager.Stop();
  return manager.Readings(std::chrono::system_clock::now()).at("s");
}

const prometheus::MetricFamily* FindFamily(const std::vector<prometheus::MetricFamily>& families,
                                           const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

double ValueOf(const prometheus::MetricFamily& f,
               const std::vector<prometheus::ClientMetric::Label>& labels) {
  for (const auto& m : f.metric) {
    if (m.label == labels) {
      return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  ADD_FAILURE() << "no series " << f.name << " with those labels";
  return -1;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/virtscale-sources-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loopback port that refuses connections: bound, never listening.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    port_ = BindLoopback(fd_);
  }
  ~RefusingPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(SourceManager, PrometheusSourceReadsTheQueryResult) {
  TestServer server;
  std::mutex mu;
  std::string seen_query;
  server.server().Get("/prom/api/v1/query",
                      [&](const httplib::Request& req, httplib::Response& res) {
                        std::lock_guard lock(mu);
                        seen_query = req.get_param_value("query");
                        res.set_content(Vector("17"), "application/json");
                      });
  const std::string query = R"(sum(rabbitmq_queue_messages_ready{queue="jobs", x=~"a+b"}))";
  SourceManager manager({{"jobs", Prom(server.Url("/prom/"), query)}});
  manager.Start();
  ASSERT_TRUE(WaitFor([&] { return manager.PollCount("jobs") >= 2; }));
  const auto now = std::chrono::system_clock::now();
  const auto reading = manager.Readings(now).at("jobs");
  ASSERT_TRUE(reading.value) << reading.error;
  EXPECT_EQ(*reading.value, 17);
  EXPECT_EQ(reading.error, "");
  EXPECT_EQ(reading.health, SourceHealth::kOk);
  EXPECT_LE(reading.last_success, now);
  EXPECT_GT(reading.last_success.time_since_epoch().count(), 0);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(seen_query, query);  // arrives intact through URL encoding
  }

  std::vector<prometheus::MetricFamily> families = manager.Collect();
  ASSERT_EQ(families.size(), 4u);
  for (const auto& f : families) EXPECT_FALSE(f.help.empty()) << f.name;
  EXPECT_EQ(ValueOf(*FindFamily(families, "virtscale_source_value"), {{"source", "jobs"}}), 17);
  EXPECT_EQ(ValueOf(*FindFamily(families, "virtscale_source_up"), {{"source", "jobs"}}), 1);
  EXPECT_GT(ValueOf(*FindFamily(families, "virtscale_source_last_success_timestamp_seconds"),
                    {{"source", "jobs"}}),
            1.6e9);
  const auto* errors = FindFamily(families, "virtscale_source_errors_total");
  ASSERT_NE(errors, nullptr);
  EXPECT_EQ(errors->type, prometheus::MetricType::Counter);
  EXPECT_EQ(ValueOf(*errors, {{"source", "jobs"}, {"reason", "empty_vector"}}), 0);
  EXPECT_EQ(errors->metric.size(), 11u);  // every reason a prometheus source can produce
}

TEST(SourceManager, PrometheusErrorReasons) {
  TestServer server;
  auto json = [&](const std::string& path, int status, const std::string& body) {
    server.server().Get(path + "/api/v1/query",
                        [=](const httplib::Request&, httplib::Response& res) {
                          res.status = status;
                          res.set_content(body, "application/json");
                        });
  };
  json("/empty", 200, R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  json(
      "/multi", 200,
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}})");
  json("/nan", 200, Vector("NaN"));
  json("/bad", 200, "not json");
  json(
      "/bad_query", 400,
      R"({"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"})");
  json("/down", 503, "<html>Service Unavailable</html>");
  json("/big", 200, std::string(kMaxHttpBodyBytes + 10, ' '));
  RefusingPort refusing;
  const std::string base = server.Url();
  const std::string refused = "http://127.0.0.1:" + std::to_string(refusing.port());

  struct Case {
    SourceConfig config;
    std::string error;
  };
  const Case cases[] = {
      {Prom(base + "/empty"), "empty_vector: query returned no series"},
      {Prom(base + "/multi"),
       "multiple_series: query returned 2 series; aggregate them, e.g. sum(...)"},
      {Prom(base + "/nan"), "nan: query result is NaN"},
      {Prom(base + "/bad"), "bad_json: response is not valid JSON"},
      {Prom(base + "/bad_query"),
       "query_error: HTTP 400: bad_data: 1:5: parse error: unclosed left parenthesis"},
      {Prom(base + "/down"), "http_status: HTTP 503 from " + base + "/down/api/v1/query"},
      {Prom(base + "/big"), "response_too_large: response from " + base +
                                "/big/api/v1/query is larger than 16777216 bytes"},
      {Prom(refused), "connection: request to " + refused +
                          "/api/v1/query failed: connection refused or host unreachable"},
  };
  for (const auto& c : cases) {
#ifdef __SANITIZE_THREAD__
    // Pushing 16 MiB through the uninstrumented httplib under TSan takes minutes.
    if (c.error.rfind("response_too_large", 0) == 0) continue;
#endif
    SourceManager manager({{"s", c.config}});
    manager.Start();
    ASSERT_TRUE(WaitFor([&] { return manager.PollCount("s") >= 1; }));
    manager.Stop();
    const auto reading = manager.Readings(std::chrono::system_clock::now()).at("s");
    EXPECT_FALSE(reading.value) << c.error;
    EXPECT_EQ(reading.error, c.error);
    EXPECT_EQ(reading.last_success.time_since_epoch().count(), 0);

    std::vector<prometheus::MetricFamily> families = manager.Collect();
    EXPECT_EQ(FindFamily(families, "virtscale_source_value"), nullptr);  // never a fake 0
    EXPECT_EQ(ValueOf(*FindFamily(families, "virtscale_source_up"), {{"source", "s"}}), 0);
    const std::string reason = c.error.substr(0, c.error.find(':'));
    EXPECT_GE(ValueOf(*FindFamily(families, "virtscale_source_errors_total"),
                      {{"source", "s"}, {"reason", reason}}),
              1)
        << reason;
  }
}

TEST(SourceManager, TimeoutWhenTheServerIsSlowerThanTheTimeout) {
  Gate gate;
  TestServer server;
  server.server().Get("/api/v1/query", [&](const httplib::Request&, httplib::Response& res) {
    gate.Wait();
    res.set_content(Vector("1"), "application/json");
  });
  auto config = Prom(server.Url());
  config.timeout = 200ms;
  config.interval = 200ms;
  const auto reading = ReadAfterPolls(config);
  gate.Open();
  EXPECT_FALSE(reading.value);
  EXPECT_EQ(reading.error,
            "timeout: no complete response within 200ms from " + server.Url() + "/api/v1/query");
}

TEST(SourceManager, ScrapeSourceSelectsOneSeries) {
  TestServer server;
  std::atomic<int> depth{12};
  std::mutex mu;
  std::string seen_accept, seen_auth;
  server.server().Get(
      R"(/(jobs|mail)/metrics)", [&](const httplib::Request& req, httplib::Response& res) {
        if (req.path == "/jobs/metrics") {  // only this source has a token
          std::lock_guard lock(mu);
          seen_accept = req.get_header_value("Accept");
          seen_auth = req.get_header_value("Authorization");
        }
        res.set_content("# TYPE app_queue_depth gauge\napp_queue_depth{queue=\"jobs\"} " +
                            std::to_string(depth.load()) +
                            "\napp_queue_depth{queue=\"mail\",shard=\"a\"} 3\n"
                            "app_queue_depth{queue=\"mail\",shard=\"b\"} 4\n",
                        "text/plain; version=0.0.4");
      });
  TempDir dir;
  auto jobs = Scrape(server.Url("/jobs/metrics"), "app_queue_depth", {{"queue", "jobs"}});
  jobs.bearer_token_file = dir.Write("token", "s3cret\n");
  auto mail = Scrape(server.Url("/mail/metrics"), "app_queue_depth", {{"queue", "mail"}}, true);
  SourceManager manager({{"jobs", jobs}, {"mail", mail}});
  manager.Start();
  ASSERT_TRUE(
      WaitFor([&] { return manager.PollCount("jobs") >= 1 && manager.PollCount("mail") >= 1; }));
  auto readings = manager.Readings(std::chrono::system_clock::now());
  ASSERT_TRUE(readings.at("jobs").value) << readings.at("jobs").error;
  EXPECT_EQ(*readings.at("jobs").value, 12);
  ASSERT_TRUE(readings.at("mail").value) << readings.at("mail").error;
  EXPECT_EQ(*readings.at("mail").value, 7);

  depth = 99;  // the next polls see the change
  ASSERT_TRUE(WaitFor([&] {
    auto r = manager.Readings(std::chrono::system_clock::now()).at("jobs");
    return r.value && *r.value == 99;
  }));
  manager.Stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(seen_accept.rfind("text/plain;version=0.0.4", 0), 0u);
  EXPECT_EQ(seen_auth, "Bearer s3cret");
}

TEST(SourceManager, ScrapeErrorReasons) {
  TestServer server;
  auto serve = [&](const std::string& path, int status, const std::string& body) {
    server.server().Get(path, [=](const httplib::Request&, httplib::Response& res) {
      res.status = status;
      res.set_content(body, "text/plain");
    });
  };
  serve("/garbage", 200, "ok 1\nq{queue=\"jobs\" 1\n");
  serve("/truncated", 200, "q{queue=\"jobs\"} 12");
  serve("/two", 200, "q{queue=\"jobs\",shard=\"a\"} 1\nq{queue=\"jobs\",shard=\"b\"} 2\n");
  serve("/nan", 200, "q{queue=\"jobs\"} NaN\n");
  serve("/inf", 200, "q{queue=\"jobs\"} +Inf\n");
  serve("/none", 200, "other 1\n");
  serve("/missing", 404, "not found");
  const std::string base = server.Url();
  TempDir dir;
  auto needs_password = Scrape(base + "/none", "q", {{"queue", "jobs"}});
  needs_password.basic_auth = BasicAuth{"u", "", dir.path() + "/deleted"};

  const std::pair<SourceConfig, std::string> cases[] = {
      {Scrape(base + "/garbage", "q", {{"queue", "jobs"}}),
       "parse: " + base + "/garbage: line 2: unexpected end of label value \"jobs\""},
      {Scrape(base + "/truncated", "q", {{"queue", "jobs"}}),
       "parse: " + base + "/truncated: line 1: unexpected end of input stream"},
      {Scrape(base + "/two", "q", {{"queue", "jobs"}}),
       "multiple_series: 2 series match q{queue=\"jobs\"} (e.g. q{queue=\"jobs\",shard=\"a\"}, "
       "q{queue=\"jobs\",shard=\"b\"}); add label matchers or set sum: true"},
      {Scrape(base + "/nan", "q", {{"queue", "jobs"}}), "nan: q{queue=\"jobs\"} is NaN"},
      {Scrape(base + "/inf", "q", {{"queue", "jobs"}}), "inf: q{queue=\"jobs\"} is +Inf"},
      {Scrape(base + "/none", "q", {{"queue", "jobs"}}),
       "no_series: no series matches q{queue=\"jobs\"}"},
      {Scrape(base + "/missing", "q"), "http_status: HTTP 404 from " + base + "/missing"},
      {needs_password,
       "read: password_file: cannot read " + dir.path() + "/deleted: No such file or directory"},
  };
  for (const auto& [config, error] : cases) {
    const auto reading = ReadAfterPolls(config);
    EXPECT_FALSE(reading.value) << error;
    EXPECT_EQ(reading.error, error);
    EXPECT_EQ(reading.health, SourceHealth::kError);
  }
}

TEST(SourceManager, BasicAuthIsSent) {
  TestServer server;
  std::mutex mu;
  std::string seen;
  server.server().Get("/m", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    seen = req.get_header_value("Authorization");
    res.set_content("q 5\n", "text/plain");
  });
  TempDir dir;
  auto config = Scrape(server.Url("/m"), "q");
  config.basic_auth = BasicAuth{"user", "", dir.Write("pw", "pass\n")};
  const auto reading = ReadAfterPolls(config);
  ASSERT_TRUE(reading.value) << reading.error;
  EXPECT_EQ(*reading.value, 5);
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, "Basic dXNlcjpwYXNz");  // base64("user:pass"), file content trimmed
}

TEST(SourceManager, FileSource) {
  TempDir dir;
  const std::pair<std::string, std::string> cases[] = {
      {" 42\n", ""},
      {"", "parse: " + dir.path() + "/f: file is empty"},
      {"\n \n", "parse: " + dir.path() + "/f: file is empty"},
      {"12 jobs", "parse: " + dir.path() + "/f: not a number: \"12 jobs\""},
      {"NaN", "nan: " + dir.path() + "/f is NaN"},
      {std::string(kMaxFileBytes + 1, '1'), "parse: " + dir.path() + "/f: larger than 65536 bytes"},
  };
  for (const auto& [content, error] : cases) {
    const auto reading = ReadAfterPolls(File(dir.Write("f", content)));
    EXPECT_EQ(reading.error, error);
    EXPECT_EQ(reading.value.has_value(), error.empty());
    if (reading.value) {
      EXPECT_EQ(*reading.value, 42);
    }
  }
  const auto missing = ReadAfterPolls(File(dir.path() + "/absent"));
  EXPECT_EQ(missing.error,
            "read: cannot read " + dir.path() + "/absent: No such file or directory");
}

TEST(SourceManager, ValueGoesStaleAfterStaleAfter) {
  TempDir dir;
  const std::string path = dir.Write("depth", "8\n");
  auto config = File(path);
  config.stale_after = 45s;
  {
    SourceManager manager({{"spool", config}});
    manager.Start();
    ASSERT_TRUE(WaitFor([&] { return manager.PollCount("spool") >= 1; }));
    manager.Stop();  // no more polls: the times below are exact
    const auto last = manager.Readings(std::chrono::system_clock::now()).at("spool").last_success;
    auto at_limit = manager.Readings(last + 45s).at("spool");
    ASSERT_TRUE(at_limit.value);
    EXPECT_EQ(*at_limit.value, 8);
    auto stale = manager.Readings(last + 47s).at("spool");
    EXPECT_FALSE(stale.value);
    EXPECT_EQ(stale.last_success, last);
    EXPECT_EQ(stale.error, "stale: last success 47s ago");
    EXPECT_EQ(stale.health, SourceHealth::kStale);
    EXPECT_EQ(at_limit.health, SourceHealth::kOk);

    std::vector<prometheus::MetricFamily> families = manager.Collect();  // judged now: still fresh
    EXPECT_EQ(ValueOf(*FindFamily(families, "virtscale_source_value"), {{"source", "spool"}}), 8);
  }
  // A failing source keeps its last value until it is stale, then says why.
  SourceManager manager({{"spool", config}});
  manager.Start();
  ASSERT_TRUE(WaitFor([&] { return manager.PollCount("spool") >= 1; }));
  std::filesystem::remove(path);
  const uint64_t polls = manager.PollCount("spool");
  ASSERT_TRUE(WaitFor([&] { return manager.PollCount("spool") >= polls + 2; }));
  manager.Stop();
  const auto failed = manager.Readings(std::chrono::system_clock::now()).at("spool");
  ASSERT_TRUE(failed.value);
  EXPECT_EQ(*failed.value, 8);
  EXPECT_EQ(failed.health, SourceHealth::kFailing);
  EXPECT_EQ(failed.error, "read: cannot read " + path + ": No such file or directory");
  EXPECT_EQ(manager.Readings(failed.last_success + 100s).at("spool").health, SourceHealth::kStale);
  EXPECT_EQ(manager.Readings(failed.last_success + 100s).at("spool").error,
            "stale: last success 100s ago; last error: read: cannot read " + path +
                ": No such file or directory");
  std::vector<prometheus::MetricFamily> families = manager.Collect();
  EXPECT_EQ(ValueOf(*FindFamily(families, "virtscale_source_up"), {{"source", "spool"}}), 0);
  EXPECT_GE(ValueOf(*FindFamily(families, "virtscale_source_errors_total"),
                    {{"source", "spool"}, {"reason", "read"}}),
            2);
}

TEST(SourceManager, NotPolledYet) {
  SourceManager manager({{"s", File("/nonexistent")}});
  const auto reading = manager.Readings(std::chrono::system_clock::now()).at("s");
  EXPECT_FALSE(reading.value);
  EXPECT_EQ(reading.error, "pending: not polled yet");
  EXPECT_EQ(reading.health, SourceHealth::kPending);
  EXPECT_STREQ(SourceHealthName(reading.health), "pending");
}

TEST(SourceManager, SlowSourceDelaysNeitherOthersNorStop) {
  Gate gate;
  std::atomic<int> slow_answered{0};
  TestServer server;
  server.server().Get("/slow/api/v1/query", [&](const httplib::Request&, httplib::Response& res) {
    gate.Wait();
    ++slow_answered;
    res.set_content(Vector("1"), "application/json");
  });
  std::atomic<int> fast_hits{0};
  server.server().Get("/fast/metrics", [&](const httplib::Request&, httplib::Response& res) {
    ++fast_hits;
    res.set_content("q 3\n", "text/plain");
  });
  auto slow = Prom(server.Url("/slow"));
  slow.interval = 60s;
  slow.timeout = 60s;
  auto fast = Scrape(server.Url("/fast/metrics"), "q");
  TempDir dir;
  auto file = File(dir.Write("f", "5"));
  SourceManager manager({{"slow", slow}, {"fast", fast}, {"file", file}});
  manager.Start();
  ASSERT_TRUE(WaitFor([&] {
    return gate.waiting() == 1 && manager.PollCount("fast") >= 5 && manager.PollCount("file") >= 5;
  }));
  // The slow request is still in flight (one request, held by the server, not
  // answered, not retried) while the others keep polling.
  EXPECT_EQ(gate.waiting(), 1);
  EXPECT_EQ(slow_answered.load(), 0);
  EXPECT_EQ(manager.PollCount("slow"), 0u);
  auto readings = manager.Readings(std::chrono::system_clock::now());
  EXPECT_EQ(readings.at("fast").value, 3);
  EXPECT_EQ(readings.at("file").value, 5);
  EXPECT_EQ(readings.at("slow").error, "pending: not polled yet");

  // Stop aborts the slow request instead of waiting for its 60s timeout or for
  // the server, which holds the request for up to 30s more (Gate::Wait).
  const auto stop_start = std::chrono::steady_clock::now();
  manager.Stop();
  const auto stop_took = std::chrono::steady_clock::now() - stop_start;
  EXPECT_LT(stop_took, 10s) << "Stop waited for the in-flight request";
  EXPECT_EQ(slow_answered.load(), 0) << "Stop returned only after the server answered";
  EXPECT_EQ(manager.PollCount("slow"), 0u);
  gate.Open();
}

// Scrape sources with each kind of credential, for the redirect tests.
std::vector<std::pair<std::string, SourceConfig>> WithEachCredential(const std::string& url) {
  auto basic = Scrape(url, "q");
  basic.basic_auth = BasicAuth{"user", "pass", ""};
  auto bearer = Scrape(url, "q");
  bearer.bearer_token = "s3cret";
  return {{"Basic dXNlcjpwYXNz", basic}, {"Bearer s3cret", bearer}};
}

TEST(PollSource, RedirectsWithinTheOriginAreFollowedWithTheCredentials) {
  TestServer server;
  const std::string base = server.Url();
  std::mutex mu;
  std::vector<std::string> seen;  // "path Authorization" of every request
  auto record = [&](const httplib::Request& req) {
    std::lock_guard lock(mu);
    seen.push_back(req.path + " " + req.get_header_value("Authorization"));
  };
  auto redirect = [&](const std::string& path, int status, const std::string& location) {
    server.server().Get(path, [=, &record](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.set_redirect(location, status);
    });
  };
  redirect("/a/old", 301, "/a/b/mid");           // absolute path
  redirect("/a/b/mid", 302, "../new?x=1#frag");  // relative, with a query and a fragment
  redirect("/a/new", 307, "HTTP://127.0.0.1:" + std::to_string(server.port()) + "/final");
  server.server().Get("/final", [&](const httplib::Request& req, httplib::Response& res) {
    record(req);
    if (req.get_param_value("y") != "2") return res.set_redirect("?y=2", 308);  // query only
    res.set_content("q 5\n", "text/plain");
  });
  for (const auto& [authorization, config] : WithEachCredential(base + "/a/old")) {
    {
      std::lock_guard lock(mu);
      seen.clear();
    }
    const auto result = PollSource(config);
    ASSERT_TRUE(result.ok()) << result.error().ToString();
    EXPECT_EQ(result.value(), 5);
    std::lock_guard lock(mu);
    EXPECT_EQ(seen,
              (std::vector<std::string>{"/a/old " + authorization, "/a/b/mid " + authorization,
                                        "/a/new " + authorization, "/final " + authorization,
                                        "/final " + authorization}));
  }
}

TEST(PollSource, RedirectsToAnotherOriginAreNotFollowed) {
  TestServer a, b;
  std::atomic<int> b_requests{0};
  b.server().Get(R"(/.*)", [&](const httplib::Request&, httplib::Response& res) {
    ++b_requests;
    res.set_content("q 1\n", "text/plain");
  });
  const std::string a_port = std::to_string(a.port());
  a.server().Get("/to-b", [&](const httplib::Request&, httplib::Response& res) {
    res.set_redirect(b.Url("/steal?token=x"), 302);
  });
  a.server().Get("/to-localhost", [&](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("http://localhost:" + a_port + "/m", 302);  // another host name
  });
  a.server().Get("/to-https", [&](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("https://127.0.0.1:" + a_port + "/m", 301);  // another scheme
  });
  a.server().Get("/scheme-relative", [&](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("//127.0.0.1:" + std::to_string(b.port()) + "/m", 302);
  });
  const std::string from = a.Url(), origin = "http://127.0.0.1:" + a_port;
  const std::pair<std::string, std::string> cases[] = {
      {"/to-b", b.Url("/steal")},  // the query is left out of messages
      {"/to-localhost", "http://localhost:" + a_port + "/m"},
      {"/to-https", "https://127.0.0.1:" + a_port + "/m"},
      {"/scheme-relative", b.Url("/m")},
  };
  for (const auto& [path, to] : cases) {
    for (const auto& [authorization, config] : WithEachCredential(from + path)) {
      EXPECT_EQ(PollSource(config).error().ToString(),
                "http_status: redirect from " + from + path + " to " + to +
                    " not followed: another origin (credentials stay with " + origin + ")")
          << authorization;
    }
  }
  EXPECT_EQ(PollSource(Scrape(from + "/to-b", "q")).error().ToString(),
            "http_status: redirect from " + from + "/to-b to " + b.Url("/steal") +
                " not followed: another origin (redirects are followed only within " + origin +
                ")");
  EXPECT_EQ(b_requests.load(), 0);
}

TEST(PollSource, RedirectErrors) {
  TestServer server;
  const std::string base = server.Url();
  auto serve = [&](const std::string& path, int status, const std::string& location) {
    server.server().Get(path, [=](const httplib::Request&, httplib::Response& res) {
      res.status = status;
      if (!location.empty()) res.set_header("Location", location);
    });
  };
  serve("/loop-a", 302, "/loop-b");
  serve("/loop-b", 302, "/loop-a");
  serve("/self", 307, "self");
  serve("/ftp", 302, "ftp://127.0.0.1/x");
  serve("/space", 302, "/a b");
  serve("/creds", 302, "http://u:p@127.0.0.1/x");
  serve("/nowhere", 302, "");
  serve("/gone", 302, "/missing");
  // /chain/N/LIMIT redirects to /chain/N+1/LIMIT until N is LIMIT.
  server.server().Get(
      R"(/chain/(\d+)/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
        const int n = std::stoi(req.matches[1]), limit = std::stoi(req.matches[2]);
        if (n < limit)
          return res.set_redirect("../" + std::to_string(n + 1) + "/" + req.matches[2].str());
        res.set_content("q 7\n", "text/plain");
      });

  auto ten = PollSource(Scrape(base + "/chain/0/10", "q"));
  ASSERT_TRUE(ten.ok()) << ten.error().ToString();
  EXPECT_EQ(ten.value(), 7);
  const std::pair<std::string, std::string> cases[] = {
      {"/chain/0/11", "http_status: more than 10 redirects from " + base +
                          "/chain/0/11 (the last to " + base + "/chain/11/11)"},
      {"/loop-a",
       "http_status: redirect loop: " + base + "/loop-b redirects back to " + base + "/loop-a"},
      {"/self",
       "http_status: redirect loop: " + base + "/self redirects back to " + base + "/self"},
      {"/ftp", "http_status: redirect from " + base +
                   "/ftp to \"ftp://127.0.0.1/x\" not followed: scheme must be http or https"},
      {"/space", "http_status: redirect from " + base +
                     "/space to \"/a b\" not followed: contains whitespace or control characters"},
      {"/creds", "http_status: redirect from " + base +
                     "/creds to \"http://u:p@127.0.0.1/x\" not followed: credentials in the URL "
                     "are not supported; use basic_auth"},
      {"/nowhere", "http_status: HTTP 302 from " + base + "/nowhere without a Location"},
      {"/gone", "http_status: HTTP 404 from " + base + "/missing"},  // names where it ended
  };
  for (const auto& [path, error] : cases) {
    EXPECT_EQ(PollSource(Scrape(base + path, "q")).error().ToString(), error);
  }
}

TEST(PollSource, RedirectsShareOneDeadline) {
  TestServer server;
  // Each hop answers in 150ms, well within the 400ms timeout; five of them do not.
  server.server().Get(R"(/slow/(\d))", [](const httplib::Request& req, httplib::Response& res) {
    std::this_thread::sleep_for(150ms);
    const int n = std::stoi(req.matches[1]);
    if (n < 5) return res.set_redirect(std::to_string(n + 1));
    res.set_content("q 1\n", "text/plain");
  });
  auto config = Scrape(server.Url("/slow/1"), "q");
  config.timeout = 400ms;
  const auto error = PollSource(config).error().ToString();
  EXPECT_TRUE(
      error.starts_with("timeout: no complete response within 400ms from " + server.Url("/slow/")))
      << error;
}

std::string Matrix(const std::string& series) {
  return R"({"status":"success","data":{"resultType":"matrix","result":[)" + series + "]}}";
}

TEST(FetchSourceHistory, RangeQueryOfTheLast29DaysAt5MinuteSteps) {
  TestServer server;
  std::mutex mu;
  std::map<std::string, std::string> params;
  server.server().Get("/prom/api/v1/query_range",
                      [&](const httplib::Request& req, httplib::Response& res) {
                        std::lock_guard lock(mu);
                        for (const auto& [k, v] : req.params) params[k] = v;
                        res.set_content(Matrix(R"({"metric":{},"values":[[1000,"5"],[1300,"NaN"],)"
                                               R"([1600,"+Inf"],[1900,"7.5"]]})"),
                                        "application/json");
                      });
  auto r = FetchSourceHistory(Prom(server.Url("/prom/"), "sum(jobs)"), 2505600 + 1000);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // Non-finite samples are left out.
  EXPECT_EQ(r.value(), (std::vector<std::pair<double, double>>{{1000, 5}, {1900, 7.5}}));
  std::lock_guard lock(mu);
  EXPECT_EQ(params["query"], "sum(jobs)");
  EXPECT_EQ(params["start"], "1000.000");  // 29 days (2505600 s) before the end
  EXPECT_EQ(params["end"], "2506600.000");
  EXPECT_EQ(params["step"], "300");
}

TEST(FetchSourceHistory, NeedsExactlyOneSeriesAndAPrometheusSource) {
  TestServer server;
  std::atomic<int> series{0};
  server.server().Get("/api/v1/query_range", [&](const httplib::Request&, httplib::Response& res) {
    std::string body;
    for (int i = 0; i < series; ++i)
      body += std::string(i ? "," : "") + R"({"metric":{"i":")" + std::to_string(i) +
              R"("},"values":[[1,"1"]]})";
    res.set_content(Matrix(body), "application/json");
  });
  auto none = FetchSourceHistory(Prom(server.Url("/")), 1e9);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().reason, "empty_vector");
  series = 2;
  auto two = FetchSourceHistory(Prom(server.Url("/")), 1e9);
  ASSERT_FALSE(two.ok());
  EXPECT_EQ(two.error().reason, "multiple_series");
  EXPECT_NE(two.error().message.find("returned 2 series"), std::string::npos);
  auto file = FetchSourceHistory(File("/nonexistent"), 1e9);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().reason, "query_error");
}

TEST(SourceManager, ForecastSourcesFetchTheirHistoryBesideThePolls) {
  TestServer server;
  std::atomic<int> ranges{0};
  server.server().Get("/api/v1/query", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(Vector("3"), "application/json");
  });
  server.server().Get("/api/v1/query_range", [&](const httplib::Request&, httplib::Response& res) {
    ++ranges;
    res.set_content(Matrix(R"({"metric":{},"values":[[1,"1"],[2,"2"],[3,"3"]]})"),
                    "application/json");
  });
  SourceManager manager({{"jobs", Prom(server.Url("/"))}, {"other", Prom(server.Url("/"))}},
                        {"jobs"});
  manager.Start();
  ASSERT_TRUE(WaitFor([&] {
    return manager.PollCount("jobs") >= 2 &&
           manager.Readings(std::chrono::system_clock::now()).at("jobs").history != nullptr;
  }));
  const auto readings = manager.Readings(std::chrono::system_clock::now());
  ASSERT_TRUE(readings.at("jobs").history);
  EXPECT_EQ(readings.at("jobs").history->samples.size(), 3u);
  EXPECT_EQ(readings.at("jobs").history_error, "");
  EXPECT_EQ(readings.at("other").history, nullptr);  // not a forecast source
  EXPECT_EQ(*readings.at("jobs").value, 3);
  EXPECT_EQ(ranges.load(), 1);  // refetched only every 5 minutes
  std::vector<prometheus::MetricFamily> families = manager.Collect();
  const auto found = std::find_if(families.begin(), families.end(), [](const auto& f) {
    return f.name == "virtscale_source_history_samples";
  });
  ASSERT_NE(found, families.end());
  ASSERT_EQ(found->metric.size(), 1u);
  EXPECT_EQ(found->metric[0].gauge.value, 3);
  manager.Stop();
}

TEST(SourceManager, AFailedHistoryFetchIsReportedAndDoesNotStopThePolls) {
  TestServer server;
  server.server().Get("/api/v1/query", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(Vector("4"), "application/json");
  });
  server.server().Get("/api/v1/query_range", [&](const httplib::Request&, httplib::Response& res) {
    res.status = 422;
    res.set_content(R"({"status":"error","errorType":"bad_data","error":"too many points"})",
                    "application/json");
  });
  SourceManager manager({{"jobs", Prom(server.Url("/"))}}, {"jobs"});
  manager.Start();
  ASSERT_TRUE(WaitFor([&] {
    return !manager.Readings(std::chrono::system_clock::now()).at("jobs").history_error.empty();
  }));
  ASSERT_TRUE(WaitFor([&] { return manager.PollCount("jobs") >= 3; }));
  const auto r = manager.Readings(std::chrono::system_clock::now()).at("jobs");
  EXPECT_EQ(r.history, nullptr);
  EXPECT_EQ(r.history_error, "query_error: HTTP 422: bad_data: too many points");
  EXPECT_EQ(*r.value, 4);
}

}  // namespace
}  // namespace virtscale
