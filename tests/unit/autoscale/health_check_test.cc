#include "autoscale/health_check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "tests/unit/support/test_server.h"

namespace virtscale::autoscale {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

MemberProbeInput Member(std::string address = "127.0.0.1") {
  return {.domain = "web-1", .group = "web", .address = std::move(address)};
}

HealthCheck Exec(std::vector<std::string> argv) {
  HealthCheck c;
  c.type = HealthCheckType::kExec;
  c.command = std::move(argv);
  c.timeout = seconds(30);
  return c;
}

HealthCheck Http(std::string url) {
  HealthCheck c;
  c.type = HealthCheckType::kHttp;
  c.url = std::move(url);
  c.timeout = seconds(10);
  return c;
}

HealthCheck Tcp(int port) {
  HealthCheck c;
  c.type = HealthCheckType::kTcp;
  c.port = port;
  c.timeout = seconds(10);
  return c;
}

TEST(ProbeLibvirt, FailsOnCrashPauseOnErrorAndUnexpectedShutoff) {
  MemberProbeInput in = Member();
  EXPECT_EQ(ProbeLibvirt(in).status, ProbeStatus::kPass);
  EXPECT_EQ(ProbeLibvirt(in).output, "running");
  in.state = DomainState::kCrashed;
  EXPECT_EQ(ProbeLibvirt(in).status, ProbeStatus::kFail);
  in.state = DomainState::kPaused;
  in.state_reason = 1;  // VIR_DOMAIN_PAUSED_USER
  EXPECT_EQ(ProbeLibvirt(in).status, ProbeStatus::kPass);
  in.state_reason = 5;  // VIR_DOMAIN_PAUSED_IOERROR
  EXPECT_EQ(ProbeLibvirt(in).status, ProbeStatus::kFail);
  EXPECT_EQ(ProbeLibvirt(in).output, "paused: I/O error");
  in.state = DomainState::kShutoff;
  in.state_reason = 0;
  EXPECT_EQ(ProbeLibvirt(in).status, ProbeStatus::kFail);
  in.should_be_running = false;
  EXPECT_EQ(ProbeLibvirt(in).status, ProbeStatus::kPass);
}

TEST(ProbeExec, PassFailAndPlaceholders) {
  ProbeResult r = ProbeExec(
      Exec({"sh", "-c", "echo \"$1 $VIRTSCALE_DOMAIN $VIRTSCALE_GROUP $VIRTSCALE_ADDRESS\"", "sh",
            "{domain}/{group}"}),
      Member("10.0.0.5"), nullptr);
  EXPECT_EQ(r.status, ProbeStatus::kPass);
  EXPECT_EQ(r.output, "web-1/web web-1 web 10.0.0.5");
  r = ProbeExec(Exec({"sh", "-c", "echo not ready; echo more; exit 3"}), Member(), nullptr);
  EXPECT_EQ(r.status, ProbeStatus::kFail);
  EXPECT_EQ(r.output, "exit status 3: not ready");
  r = ProbeExec(Exec({"/nope"}), Member(), nullptr);
  EXPECT_EQ(r.status, ProbeStatus::kFail);
  EXPECT_EQ(r.output, "exec: /nope: No such file or directory");
}

TEST(ProbeExec, AddressNeededButUnknown) {
  EXPECT_EQ(ProbeExec(Exec({"true", "{address}"}), Member(""), nullptr).status,
            ProbeStatus::kUnknown);
  // Not needed: runs, with VIRTSCALE_ADDRESS empty.
  EXPECT_EQ(
      ProbeExec(Exec({"sh", "-c", "test -z \"$VIRTSCALE_ADDRESS\""}), Member(""), nullptr).status,
      ProbeStatus::kPass);
}

TEST(ProbeExec, TimeoutFails) {
  HealthCheck c = Exec({"sleep", "60"});
  c.timeout = milliseconds(200);
  ProbeResult r = ProbeExec(c, Member(), nullptr);
  EXPECT_EQ(r.status, ProbeStatus::kFail);
  EXPECT_EQ(r.output, "timed out after 200ms");
}

TEST(ProbeHttp, StatusDecides) {
  testing::TestServer server;
  server.server().Get("/ok", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("fine", "text/plain");
  });
  server.server().Get("/moved", [](const httplib::Request&, httplib::Response& res) {
    res.set_redirect("http://192.0.2.1/elsewhere");
  });
  server.server().Get("/down",
                      [](const httplib::Request&, httplib::Response& res) { res.status = 503; });
  server.server().Get(R"(/d/(.*))", [](const httplib::Request& req, httplib::Response& res) {
    res.status = req.matches[1] == "web-1" ? 200 : 404;
  });
  const std::string base = "http://{address}:" + std::to_string(server.port());
  ProbeResult r = ProbeHttp(Http(base + "/ok"), Member(), nullptr);
  EXPECT_EQ(r.status, ProbeStatus::kPass);
  EXPECT_EQ(r.output, "HTTP 200");
  EXPECT_EQ(ProbeHttp(Http(base + "/moved"), Member(), nullptr).status, ProbeStatus::kPass);
  r = ProbeHttp(Http(base + "/down"), Member(), nullptr);
  EXPECT_EQ(r.status, ProbeStatus::kFail);
  EXPECT_EQ(r.output, "HTTP 503");
  EXPECT_EQ(ProbeHttp(Http(base + "/d/{domain}"), Member(), nullptr).status, ProbeStatus::kPass);
  EXPECT_EQ(ProbeHttp(Http(base + "/ok"), Member(""), nullptr).status, ProbeStatus::kUnknown);
}

TEST(ProbeHttp, DomainIsPercentEncoded) {
  testing::TestServer server;
  std::string seen;
  std::mutex mu;
  server.server().Get(R"(/d/(.*))", [&](const httplib::Request& req, httplib::Response&) {
    std::lock_guard lock(mu);
    seen = req.target;
  });
  MemberProbeInput in = Member();
  in.domain = "a/b?c";
  EXPECT_EQ(ProbeHttp(Http("http://{address}:" + std::to_string(server.port()) + "/d/{domain}"), in,
                      nullptr)
                .status,
            ProbeStatus::kPass);
  std::lock_guard lock(mu);
  EXPECT_EQ(seen, "/d/a%2Fb%3Fc");
}

TEST(ProbeHttp, ConnectionRefusedFails) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int port = testing::BindLoopback(fd);  // bound, not listening: refused
  EXPECT_EQ(
      ProbeHttp(Http("http://{address}:" + std::to_string(port) + "/"), Member(), nullptr).status,
      ProbeStatus::kFail);
  close(fd);
}

TEST(ProbeTcp, ConnectsRefusesAndNeedsAnAddress) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  const int open_port = testing::BindLoopback(listener);
  ASSERT_EQ(listen(listener, 4), 0);
  ProbeResult r = ProbeTcp(Tcp(open_port), Member(), nullptr);
  EXPECT_EQ(r.status, ProbeStatus::kPass);
  EXPECT_EQ(r.output, "connected");

  const int bound = socket(AF_INET, SOCK_STREAM, 0);
  const int closed_port = testing::BindLoopback(bound);
  r = ProbeTcp(Tcp(closed_port), Member(), nullptr);
  EXPECT_EQ(r.status, ProbeStatus::kFail);
  EXPECT_EQ(r.output, "connect 127.0.0.1:" + std::to_string(closed_port) + ": Connection refused");

  EXPECT_EQ(ProbeTcp(Tcp(open_port), Member(""), nullptr).status, ProbeStatus::kUnknown);
  EXPECT_EQ(ProbeTcp(Tcp(open_port), Member("fe80::1"), nullptr).status, ProbeStatus::kUnknown);
  close(listener);
  close(bound);
}

TEST(RunChecks, ResultsAlignWithChecksAndCancelStopsThem) {
  HealthPolicy policy;
  const std::string started = ::testing::TempDir() + "health-started-" + std::to_string(getpid());
  unlink(started.c_str());
  policy.checks = {HealthCheck{}, Exec({"sh", "-c", "exit 1"}),
                   Exec({"sh", "-c", "touch \"$0\"; exec sleep 60", started}), Exec({"true"})};
  ProbeCanceller cancel;
  std::vector<ProbeResult> results;
  std::thread worker([&] { results = RunChecks(policy, Member(), &cancel); });
  // Cancels while the third check runs.
  EXPECT_TRUE(testing::WaitFor([&] { return access(started.c_str(), F_OK) == 0; }));
  cancel.Cancel();
  worker.join();
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].status, ProbeStatus::kPass);
  EXPECT_EQ(results[1].status, ProbeStatus::kFail);
  EXPECT_EQ(results[2].status, ProbeStatus::kUnknown);
  EXPECT_EQ(results[2].output, "cancelled");
  EXPECT_EQ(results[3].output, "cancelled");
  unlink(started.c_str());
}

// HealthTracker: pure logic on fake times.
class HealthTrackerTest : public ::testing::Test {
 protected:
  HealthTrackerTest() : tracker_(Policy()) {}
  static HealthPolicy Policy() {
    HealthPolicy p;
    p.grace_period = minutes(2);
    p.interval = seconds(10);
    p.unhealthy_after = 3;
    p.checks = {HealthCheck{}, Http("http://{address}:8080/healthz")};
    return p;
  }
  static std::vector<ProbeResult> Round(ProbeStatus libvirt, ProbeStatus http,
                                        std::string http_output = "HTTP 503") {
    return {{libvirt, "running"}, {http, std::move(http_output)}};
  }
  const MemberHealthStatus& Record(MonoTime now, ProbeStatus libvirt, ProbeStatus http) {
    return tracker_.Record("web-1", start_, now, Round(libvirt, http));
  }

  MonoTime start_ = MonoTime{} + minutes(60);
  MonoTime after_grace_ = start_ + minutes(2);
  HealthTracker tracker_;
};

TEST_F(HealthTrackerTest, GraceMeansNoChecks) {
  EXPECT_FALSE(tracker_.Due("web-1", start_, start_ + seconds(119)));
  EXPECT_EQ(tracker_.Status("web-1", start_, start_).state, MemberHealth::kGrace);
  // A round recorded in grace changes nothing.
  EXPECT_EQ(Record(start_ + seconds(5), ProbeStatus::kFail, ProbeStatus::kFail).state,
            MemberHealth::kGrace);
  EXPECT_EQ(tracker_.size(), 0u);
  EXPECT_TRUE(tracker_.Due("web-1", start_, after_grace_));
  EXPECT_EQ(tracker_.Status("web-1", start_, after_grace_).state, MemberHealth::kUnknown);
}

TEST_F(HealthTrackerTest, DueEveryInterval) {
  Record(after_grace_, ProbeStatus::kPass, ProbeStatus::kPass);
  EXPECT_FALSE(tracker_.Due("web-1", start_, after_grace_ + seconds(9)));
  EXPECT_TRUE(tracker_.Due("web-1", start_, after_grace_ + seconds(10)));
}

TEST_F(HealthTrackerTest, UnhealthyAfterConsecutiveFailures) {
  auto t = after_grace_;
  EXPECT_EQ(Record(t, ProbeStatus::kPass, ProbeStatus::kPass).state, MemberHealth::kHealthy);
  const MemberHealthStatus& s1 = Record(t += seconds(10), ProbeStatus::kPass, ProbeStatus::kFail);
  EXPECT_EQ(s1.state, MemberHealth::kFailing);
  EXPECT_EQ(s1.consecutive_failures, 1);
  EXPECT_EQ(s1.failed_check, "http http://{address}:8080/healthz");
  EXPECT_EQ(s1.output, "HTTP 503");
  EXPECT_EQ(Record(t += seconds(10), ProbeStatus::kPass, ProbeStatus::kFail).state,
            MemberHealth::kFailing);
  const MemberHealthStatus& s3 = Record(t += seconds(10), ProbeStatus::kPass, ProbeStatus::kFail);
  EXPECT_EQ(s3.state, MemberHealth::kUnhealthy);
  EXPECT_EQ(s3.consecutive_failures, 3);
  EXPECT_EQ(tracker_.Status("web-1", start_, t).state, MemberHealth::kUnhealthy);
}

TEST_F(HealthTrackerTest, PassResets) {
  auto t = after_grace_;
  Record(t, ProbeStatus::kFail, ProbeStatus::kPass);
  Record(t += seconds(10), ProbeStatus::kFail, ProbeStatus::kPass);
  const MemberHealthStatus& s = Record(t += seconds(10), ProbeStatus::kPass, ProbeStatus::kPass);
  EXPECT_EQ(s.state, MemberHealth::kHealthy);
  EXPECT_EQ(s.consecutive_failures, 0);
  EXPECT_EQ(s.failed_check, "");
  EXPECT_EQ(s.output, "");
  EXPECT_EQ(Record(t += seconds(10), ProbeStatus::kFail, ProbeStatus::kPass).consecutive_failures,
            1);
}

TEST_F(HealthTrackerTest, AllChecksMustPassAndAFailureNamesTheRound) {
  const MemberHealthStatus& s = Record(after_grace_, ProbeStatus::kUnknown, ProbeStatus::kFail);
  // The failure is reported over the earlier unknown.
  EXPECT_EQ(s.failed_check, "http http://{address}:8080/healthz");
  EXPECT_EQ(s.failed_status, ProbeStatus::kFail);
}

TEST_F(HealthTrackerTest, UnknownAfterGraceCountsAsAFailure) {
  auto t = after_grace_;
  for (int i = 0; i < 2; ++i) {
    const MemberHealthStatus& s = tracker_.Record(
        "web-1", start_, t, Round(ProbeStatus::kPass, ProbeStatus::kUnknown, "address unknown"));
    EXPECT_EQ(s.state, MemberHealth::kFailing);
    EXPECT_EQ(s.failed_status, ProbeStatus::kUnknown);
    EXPECT_EQ(s.output, "address unknown");
    t += seconds(10);
  }
  EXPECT_EQ(Record(t, ProbeStatus::kPass, ProbeStatus::kUnknown).state, MemberHealth::kUnhealthy);
  // Missing results are unknown too.
  EXPECT_EQ(tracker_.Record("web-2", start_, t, {}).failed_status, ProbeStatus::kUnknown);
}

TEST_F(HealthTrackerTest, RestartBeginsAfresh) {
  auto t = after_grace_;
  for (int i = 0; i < 3; ++i) Record(t += seconds(10), ProbeStatus::kFail, ProbeStatus::kPass);
  EXPECT_EQ(tracker_.Status("web-1", start_, t).state, MemberHealth::kUnhealthy);
  const MonoTime restarted = t;
  EXPECT_EQ(tracker_.Status("web-1", restarted, t + seconds(1)).state, MemberHealth::kGrace);
  EXPECT_EQ(tracker_.Status("web-1", restarted, t + minutes(2)).state, MemberHealth::kUnknown);
  EXPECT_EQ(
      tracker_
          .Record("web-1", restarted, t + minutes(2), Round(ProbeStatus::kFail, ProbeStatus::kPass))
          .consecutive_failures,
      1);
}

TEST_F(HealthTrackerTest, ForgetsMembersThatLeft) {
  Record(after_grace_, ProbeStatus::kFail, ProbeStatus::kPass);
  tracker_.Record("web-2", start_, after_grace_, Round(ProbeStatus::kPass, ProbeStatus::kPass));
  EXPECT_EQ(tracker_.size(), 2u);
  tracker_.Retain({"web-2"});
  EXPECT_EQ(tracker_.size(), 1u);
  EXPECT_EQ(tracker_.Status("web-1", start_, after_grace_).state, MemberHealth::kUnknown);
  EXPECT_EQ(tracker_.Status("web-2", start_, after_grace_).state, MemberHealth::kHealthy);
}

}  // namespace
}  // namespace virtscale::autoscale
