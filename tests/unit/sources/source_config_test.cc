#include "collectors/sources/source_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace virtscale {
namespace {

std::map<std::string, SourceConfig> Decode(const std::string& yaml, Diagnostics& diags,
                                           const std::string& base_dir = "/etc/virtscale") {
  auto root = LoadYamlString(yaml, diags);
  EXPECT_TRUE(root) << diags.ToString();
  return root ? DecodeSources((*root)["sources"], base_dir, diags)
              : std::map<std::string, SourceConfig>{};
}

std::vector<std::string> Messages(const Diagnostics& diags) {
  std::vector<std::string> out;
  for (const auto& d : diags.list()) out.push_back(d.ToString());
  return out;
}

TEST(DecodeSources, DesignExampleWithDefaults) {
  Diagnostics diags("virtscale.yml");
  auto sources = Decode(R"(sources:
  jobs:
    type: prometheus
    url: http://127.0.0.1:9090
    query: sum(rabbitmq_queue_messages_ready{queue="jobs"})
  backlog:
    type: scrape
    url: http://127.0.0.1:8080/metrics
    metric: app_queue_depth
    labels: {queue: "jobs"}
  spool:
    type: file
    path: run/queue_depth
    interval: 2s
)",
                        diags);
  ASSERT_TRUE(diags.ok()) << diags.ToString();
  ASSERT_EQ(sources.size(), 3u);

  const auto& jobs = sources.at("jobs");
  EXPECT_EQ(jobs.name, "jobs");
  EXPECT_EQ(jobs.type, SourceType::kPrometheus);
  EXPECT_EQ(jobs.url.SchemeHostPort(), "http://127.0.0.1:9090");
  EXPECT_EQ(jobs.url.path, "/");
  EXPECT_EQ(jobs.query, "sum(rabbitmq_queue_messages_ready{queue=\"jobs\"})");
  EXPECT_EQ(jobs.interval, std::chrono::seconds(15));
  EXPECT_EQ(jobs.timeout, std::chrono::seconds(5));
  EXPECT_EQ(jobs.stale_after, std::chrono::seconds(45));

  const auto& backlog = sources.at("backlog");
  EXPECT_EQ(backlog.type, SourceType::kScrape);
  EXPECT_EQ(backlog.url.path, "/metrics");
  EXPECT_EQ(backlog.metric, "app_queue_depth");
  EXPECT_EQ(backlog.labels, (std::map<std::string, std::string>{{"queue", "jobs"}}));
  EXPECT_FALSE(backlog.sum);

  const auto& spool = sources.at("spool");
  EXPECT_EQ(spool.type, SourceType::kFile);
  EXPECT_EQ(spool.path, "/etc/virtscale/run/queue_depth");
  EXPECT_EQ(spool.interval, std::chrono::seconds(2));
  EXPECT_EQ(spool.timeout, std::chrono::seconds(2));  // never more than the interval
  EXPECT_EQ(spool.stale_after, std::chrono::seconds(6));
}

TEST(DecodeSources, AuthTlsAndExplicitTimings) {
  const auto dir = std::filesystem::temp_directory_path() / "virtscale-sources-config-test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "pw") << "secret\n";
  std::ofstream(dir / "ca.pem") << "-----BEGIN CERTIFICATE-----\n";
  Diagnostics diags("v.yml");
  auto sources = Decode(R"(sources:
  a:
    type: scrape
    url: https://[::1]:8443/x/metrics?format=text
    metric: "ns:queue_depth"
    sum: true
    interval: 1m
    timeout: 10s
    stale_after: 5m
    basic_auth: {username: u, password_file: pw}
    tls_config: {ca_file: ca.pem, insecure_skip_verify: true}
  b:
    type: prometheus
    url: HTTPS://prom.example:9090/prefix/
    query: up
    bearer_token: tok
)",
                        diags, dir.string());
  ASSERT_TRUE(diags.ok()) << diags.ToString();
  const auto& a = sources.at("a");
  EXPECT_EQ(a.url.SchemeHostPort(), "https://[::1]:8443");
  EXPECT_EQ(a.url.path, "/x/metrics?format=text");
  EXPECT_TRUE(a.sum);
  EXPECT_EQ(a.interval, std::chrono::minutes(1));
  EXPECT_EQ(a.timeout, std::chrono::seconds(10));
  EXPECT_EQ(a.stale_after, std::chrono::minutes(5));
  ASSERT_TRUE(a.basic_auth);
  EXPECT_EQ(a.basic_auth->username, "u");
  EXPECT_EQ(a.basic_auth->password_file, (dir / "pw").string());
  EXPECT_EQ(a.tls.ca_file, (dir / "ca.pem").string());
  EXPECT_TRUE(a.tls.insecure_skip_verify);
  const auto& b = sources.at("b");
  EXPECT_EQ(b.url.SchemeHostPort(), "https://prom.example:9090");
  EXPECT_EQ(b.url.path, "/prefix/");
  EXPECT_EQ(b.bearer_token, "tok");
  std::filesystem::remove_all(dir);
}

TEST(DecodeSources, EveryProblemWithFileLineAndPath) {
  Diagnostics diags("v.yml");
  auto sources = Decode(R"(sources:
  a:
    type: prometheus
    url: http://127.0.0.1:9090
    query: up
    typo: 1
  b:
    type: kafka
  c:
    url: http://x
  d:
    type: prometheus
    url: ftp://x
    query: up
  e:
    type: scrape
    url: http://x:99999/metrics
    metric: 9bad
    labels: {"1a": x}
  f:
    type: file
    path: /q
    query: up
    interval: 5x
  g:
    type: file
    path: /q
    interval: 10s
    timeout: 20s
    stale_after: 5s
  h:
    type: prometheus
    url: http://user:pw@x
  i:
    type: scrape
    url: http://x/metrics
    metric: m
    sum: maybe
    labels: [a]
  j:
    type: prometheus
    url: http://x?a=b
    query: " "
    basic_auth: {username: u, password: p, password_file: /nonexistent/pw}
    bearer_token: t
  k:
    type: prometheus
    url: http://x
    query: up
    bearer_token: t
    bearer_token_file: /nonexistent/token
    tls_config: {ca_file: /nonexistent/ca.pem, verify: no}
  "bad name": {type: file, path: /q}
  l: [1]
  m:
  n:
    type: file
    path: ""
    interval: 0s
)",
                        diags);
  EXPECT_EQ(sources.size(), 1u);
  EXPECT_TRUE(sources.count("a"));
  const std::vector<std::string> want = {
      "v.yml:6: sources.a.typo: unknown key (did you mean \"type\"?)",
      "v.yml:8: sources.b.type: unknown type \"kafka\" (want prometheus, scrape or file)",
      "v.yml:10: sources.c.type: missing required key",
      "v.yml:13: sources.d.url: invalid URL \"ftp://x\": scheme must be http or https",
      "v.yml:17: sources.e.url: invalid URL \"http://x:99999/metrics\": invalid port \"99999\"",
      "v.yml:18: sources.e.metric: invalid metric name \"9bad\"",
      "v.yml:19: sources.e.labels: invalid label name \"1a\"",
      "v.yml:23: sources.f.query: not used by type file",
      "v.yml:24: sources.f.interval: invalid duration \"5x\" (want e.g. 500ms, 5s, 1m, 1h30m)",
      "v.yml:29: sources.g.timeout: must not exceed interval (10s)",
      "v.yml:30: sources.g.stale_after: must be at least interval (10s)",
      "v.yml:33: sources.h.url: invalid URL \"http://user:pw@x\": credentials in the URL are "
      "not supported; use basic_auth",
      "v.yml:32: sources.h.query: missing required key",
      "v.yml:39: sources.i.labels: expected a mapping of strings",
      "v.yml:38: sources.i.sum: expected true or false, got \"maybe\"",
      "v.yml:42: sources.j.url: must not carry a query string (the server's base URL is "
      "expected)",
      "v.yml:44: sources.j.basic_auth.password_file: set password or password_file, not both",
      "v.yml:45: sources.j.bearer_token: cannot be combined with basic_auth",
      "v.yml:43: sources.j.query: must not be empty",
      "v.yml:51: sources.k.bearer_token_file: set bearer_token or bearer_token_file, not both",
      "v.yml:52: sources.k.tls_config.ca_file: cannot read /nonexistent/ca.pem: No such file "
      "or directory",
      "v.yml:52: sources.k.tls_config.verify: unknown key",
      "v.yml:53: sources.bad name: invalid source name (letters, digits, _ . -; starting with "
      "a letter or _; at most 64 characters)",
      "v.yml:54: sources.l: expected a mapping",
      "v.yml:56: sources.m: expected a mapping with at least `type`",
      "v.yml:58: sources.n.path: must not be empty",
      "v.yml:59: sources.n.interval: must be greater than 0",
  };
  EXPECT_EQ(Messages(diags), want);
}

TEST(DecodeSources, AbsentOrNullSectionIsEmpty) {
  Diagnostics diags("v.yml");
  EXPECT_TRUE(Decode("libvirt: {}\n", diags).empty());
  EXPECT_TRUE(Decode("sources:\n", diags).empty());
  EXPECT_TRUE(diags.ok());
  EXPECT_TRUE(Decode("sources: [a]\n", diags).empty());
  EXPECT_EQ(
      Messages(diags),
      std::vector<std::string>{"v.yml:1: sources: expected a mapping of source names to sources"});
}

}  // namespace
}  // namespace virtscale
