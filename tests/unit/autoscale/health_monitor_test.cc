#include "autoscale/health_monitor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "autoscale/engine.h"
#include "engine_test_util.h"

namespace virtscale::autoscale {
namespace {

using namespace testing;  // NOLINT: test builders

HealthPolicy ExecPolicy(std::vector<std::string> command, int64_t unhealthy_after = 2) {
  HealthPolicy p;
  p.grace_period = seconds(0);
  p.interval = seconds(10);
  p.unhealthy_after = unhealthy_after;
  HealthCheck c;
  c.type = HealthCheckType::kExec;
  c.command = std::move(command);
  c.timeout = seconds(30);
  p.checks.push_back(c);
  return p;
}

// Polls until `pred` holds; a bound against a hang, not a timing assertion.
template <typename Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

struct HealthMonitorTest : ::testing::Test {
  FakeClock clock{At(0)};
  std::atomic<int> lookups{0};
  HealthMonitor monitor{[this](const std::string&) {
                          ++lookups;
                          return std::string("192.0.2.7");
                        },
                        clock};
  std::vector<HealthSubject> Subjects(std::vector<std::string> names) {
    std::vector<HealthSubject> out;
    for (auto& n : names) out.push_back({n, DomainState::kRunning, 0, MonoAt(-100), true});
    return out;
  }
  MemberHealth StateOf(const std::string& group, const std::string& domain,
                       const std::vector<HealthSubject>& subjects) {
    return monitor.Health(group, subjects, clock.Now().mono).at(domain).state;
  }
  // Runs one round for every member at test second `s` and waits for it.
  void RoundAt(const std::string& group, const HealthPolicy& p,
               const std::vector<HealthSubject>& subjects, int64_t s) {
    clock.Set(At(s));
    monitor.Update(group, p, subjects, MonoAt(s));
    ASSERT_TRUE(Eventually([&] {
      for (const auto& [name, status] : monitor.Health(group, subjects, MonoAt(s)))
        if (!status.last_round || *status.last_round < MonoAt(s)) return false;
      return true;
    }));
  }
};

TEST_F(HealthMonitorTest, ConsecutiveFailuresMakeAMemberUnhealthyAndAPassRecovers) {
  const auto subjects = Subjects({"web-1"});
  const HealthPolicy failing = ExecPolicy({"/bin/sh", "-c", "echo down for {domain}; exit 3"});
  RoundAt("web", failing, subjects, 0);
  EXPECT_EQ(StateOf("web", "web-1", subjects), MemberHealth::kFailing);
  // Not due again within the interval: no second round is queued.
  monitor.Update("web", failing, subjects, MonoAt(5));
  EXPECT_EQ(monitor.Health("web", subjects, MonoAt(5)).at("web-1").consecutive_failures, 1);
  RoundAt("web", failing, subjects, 10);
  const MemberHealthStatus s = monitor.Health("web", subjects, MonoAt(10)).at("web-1");
  EXPECT_EQ(s.state, MemberHealth::kUnhealthy);
  EXPECT_EQ(s.consecutive_failures, 2);
  EXPECT_NE(s.output.find("down for web-1"), std::string::npos) << s.output;
  EXPECT_EQ(lookups.load(), 0);  // no check needs the address

  // The same command in a changed policy starts afresh; a passing one heals.
  RoundAt("web", ExecPolicy({"/bin/true"}), subjects, 20);
  EXPECT_EQ(StateOf("web", "web-1", subjects), MemberHealth::kHealthy);
}

TEST_F(HealthMonitorTest, TheAddressIsLookedUpForChecksThatUseIt) {
  const auto subjects = Subjects({"web-1", "web-2"});
  RoundAt("web", ExecPolicy({"/bin/sh", "-c", "test {address} = 192.0.2.7"}), subjects, 0);
  EXPECT_EQ(StateOf("web", "web-1", subjects), MemberHealth::kHealthy);
  EXPECT_EQ(StateOf("web", "web-2", subjects), MemberHealth::kHealthy);
  EXPECT_EQ(lookups.load(), 2);
}

TEST_F(HealthMonitorTest, AnHttpCheckWithAFixedUrlNeedsNoAddress) {
  const auto subjects = Subjects({"web-1"});
  HealthPolicy p = ExecPolicy({"/bin/true"});
  p.checks[0].type = HealthCheckType::kHttp;
  p.checks[0].command.clear();
  p.checks[0].url = "http://127.0.0.1:1/{domain}";  // nothing listens on port 1
  p.checks[0].timeout = seconds(2);
  RoundAt("web", p, subjects, 0);
  EXPECT_EQ(StateOf("web", "web-1", subjects), MemberHealth::kFailing);
  EXPECT_EQ(lookups.load(), 0);
}

TEST_F(HealthMonitorTest, MembersThatLeftAndRemovedGroupsAreForgotten) {
  const HealthPolicy failing = ExecPolicy({"/bin/false"}, 1);
  RoundAt("web", failing, Subjects({"web-1", "web-2"}), 0);
  EXPECT_EQ(StateOf("web", "web-2", Subjects({"web-2"})), MemberHealth::kUnhealthy);
  clock.Set(At(1));
  monitor.Update("web", failing, Subjects({"web-1"}), MonoAt(1));  // web-2 left
  EXPECT_EQ(StateOf("web", "web-2", Subjects({"web-2"})), MemberHealth::kUnknown);
  monitor.RetainGroups({});
  EXPECT_TRUE(monitor.Health("web", Subjects({"web-1"}), MonoAt(1)).empty());
}

TEST_F(HealthMonitorTest, ShutdownCancelsARoundInFlight) {
  const auto subjects = Subjects({"web-1"});
  monitor.Update("web", ExecPolicy({"/bin/sleep", "60"}), subjects, MonoAt(0));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the worker start it
  monitor.Shutdown();  // returns without waiting out the 60 s sleep (the test would time out)
  monitor.Update("web", ExecPolicy({"/bin/true"}), subjects, MonoAt(100));  // ignored
  EXPECT_NE(StateOf("web", "web-1", subjects), MemberHealth::kHealthy);
}

}  // namespace
}  // namespace virtscale::autoscale

namespace virtscale::autoscale {
namespace {

using namespace testing;  // NOLINT: test builders

struct EngineHealthTest : ::testing::Test {
  FakeActuator actuator;
  FakeClock clock{At(0)};
  GroupRule Rule() {
    GroupRule r = CpuRule(1, 5);
    HealthPolicy p = ExecPolicy(
        {"/bin/sh", "-c", "test {domain} != web-2 || { echo refused on {domain}; exit 1; }"});
    r.health = p;
    return r;
  }
  void TickAt(Engine& e, int64_t s, std::vector<DomainStats> doms) {
    clock.Set(At(s));
    e.Tick(Snap(At(s), std::move(doms)), {}, At(s));
    e.WaitIdle();
  }
};

TEST_F(EngineHealthTest, AMemberFailingItsChecksBecomesUnhealthyInDecisionsGroupsAndMetrics) {
  EngineOptions o;
  o.clock = &clock;
  Engine engine(actuator, o);
  RuleSet rules;
  rules.groups.push_back(Rule());
  engine.SetRules(rules);
  TickAt(engine, 0, Running(3, 0.5));   // first rounds queued
  TickAt(engine, 10, Running(3, 0.5));  // web-2 failing once
  auto g = engine.GroupsJson()[0];
  EXPECT_EQ(g["members"][0]["health"], "healthy");
  EXPECT_EQ(g["members"][1]["health"], "failing");
  EXPECT_EQ(g["members"][1]["state"], "running");
  TickAt(engine, 20, Running(3, 0.5));  // twice in a row: unhealthy
  g = engine.GroupsJson()[0];
  EXPECT_EQ(g["members"][1]["health"], "unhealthy");
  EXPECT_EQ(g["members"][1]["state"], "unhealthy");
  EXPECT_NE(g["members"][1]["health_output"].get<std::string>().find("refused on web-2"),
            std::string::npos);
  const auto d = g["last_decision"];
  EXPECT_EQ(d["members"]["unhealthy"], 1);
  EXPECT_EQ(d["members"]["running"], 2);
  EXPECT_EQ(d["members"]["active"], 3);  // unhealthy members still count towards max
  EXPECT_NE(d["members"]["health_failures"]["web-2"].get<std::string>().find("unhealthy: exec"),
            std::string::npos);
  std::vector<prometheus::MetricFamily> families = engine.Collect();
  bool seen = false;
  for (const auto& f : families) {
    if (f.name != "virtscale_group_members") continue;
    for (const auto& m : f.metric)
      if (m.label[1].value == "unhealthy") seen = m.gauge.value == 1;
  }
  EXPECT_TRUE(seen);
}

TEST_F(EngineHealthTest, AMemberStoppedByTheGroupIsNotCheckedButOneStoppedByOthersIs) {
  EngineOptions o;
  o.clock = &clock;
  Engine engine(actuator, o);
  GroupRule r = Rule();
  r.health->checks[0].type = HealthCheckType::kLibvirt;  // fails a member that should run
  r.health->checks[0].command.clear();
  r.health->unhealthy_after = 1;
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2)};
  r.scale_down.cooldown = seconds(0);
  RuleSet rules;
  rules.groups.push_back(r);
  engine.SetRules(rules);
  TickAt(engine, 0, Running(3, 0.1));  // scale-down stops web-3 (newest)
  ASSERT_EQ(actuator.calls().size(), 1u);
  ASSERT_EQ(actuator.calls()[0].domain, "web-3");
  // web-3 stopped by the group, web-2 shut off by someone else.
  std::vector<DomainStats> doms = Running(1, 0.5);
  doms.push_back(Dom("web-2", DomainState::kShutoff, {}, 1002));
  doms.push_back(Dom("web-3", DomainState::kShutoff, {}, 1003));
  TickAt(engine, 10, doms);
  TickAt(engine, 20, doms);
  auto g = engine.GroupsJson()[0];
  EXPECT_EQ(g["members"][1]["name"], "web-2");
  EXPECT_EQ(g["members"][1]["state"], "unhealthy");
  EXPECT_EQ(g["members"][2]["state"], "stopped");
  EXPECT_TRUE(g["members"][2]["health"].is_null());
}

}  // namespace
}  // namespace virtscale::autoscale

namespace virtscale::autoscale {
namespace {

using namespace testing;  // NOLINT: test builders

// health.replace through the real engine: web-2 fails its checks for good.
struct ReplaceTest : EngineHealthTest {
  GroupRule ReplaceRule(int64_t max) {
    GroupRule r = Rule();
    r.max = max;
    r.health->unhealthy_after = 1;
    r.health->replace = true;
    r.down_action = DownAction::kDelete;
    return r;
  }
};

TEST_F(ReplaceTest, ANewMemberComesUpBeforeTheUnhealthyOneIsDeletedEvenAtMax) {
  EngineOptions o;
  o.clock = &clock;
  Engine engine(actuator, o);
  RuleSet rules;
  rules.groups.push_back(ReplaceRule(/*max=*/3));
  engine.SetRules(rules);
  TickAt(engine, 0, Running(3, 0.5));
  TickAt(engine, 10, Running(3, 0.5));  // web-2 unhealthy: the replacement is created
  auto calls = actuator.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].kind, Operation::Kind::kCreate);
  auto d = engine.GroupsJson()[0]["last_decision"];
  EXPECT_EQ(d["replacing"], "web-2");
  EXPECT_EQ(d["desired"], 4);  // max + 1 during the swap
  EXPECT_NE(d["reason"].get<std::string>().find("replace unhealthy web-2"), std::string::npos);

  // The new member (web-4) runs: web-2 is deleted, and nothing else.
  std::vector<DomainStats> doms = Running(4, 0.5);
  TickAt(engine, 20, doms);
  calls = actuator.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].kind, Operation::Kind::kDelete);
  EXPECT_EQ(calls[1].domain, "web-2");
  d = engine.GroupsJson()[0]["last_decision"];
  EXPECT_EQ(d["replacing"], "web-2");
  EXPECT_EQ(d["outcome"], "scale_down");

  // web-2 gone: three members, no further replacement.
  doms.erase(doms.begin() + 1);
  TickAt(engine, 30, doms);
  TickAt(engine, 40, doms);
  EXPECT_EQ(actuator.calls().size(), 2u);
}

TEST_F(ReplaceTest, AMemberShutOffByOthersAtMinIsReplacedNotStartedAgain) {
  EngineOptions o;
  o.clock = &clock;
  Engine engine(actuator, o);
  GroupRule r = ReplaceRule(/*max=*/3);
  r.min = 3;
  r.health->checks[0].type = HealthCheckType::kLibvirt;  // fails a member that should run
  r.health->checks[0].command.clear();
  RuleSet rules;
  rules.groups.push_back(r);
  engine.SetRules(rules);
  TickAt(engine, 0, Running(3, 0.5));
  TickAt(engine, 10, Running(3, 0.5));  // all healthy
  std::vector<DomainStats> doms = Running(3, 0.5);
  doms[1] = Dom("web-2", DomainState::kShutoff, {}, 1002);  // `virsh destroy` from outside
  // Its last round passed, but it is no warm pool: min is not restored by starting it.
  TickAt(engine, 20, doms);
  EXPECT_TRUE(actuator.calls().empty());
  auto g = engine.GroupsJson()[0];
  EXPECT_EQ(g["members"][1]["state"], "other");
  EXPECT_EQ(g["active"], 3);
  TickAt(engine, 30, doms);  // the libvirt check failed: unhealthy, a replacement is created
  auto calls = actuator.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].kind, Operation::Kind::kCreate);
  EXPECT_EQ(engine.GroupsJson()[0]["last_decision"]["replacing"], "web-2");
}

TEST_F(ReplaceTest, NoReplacementWithoutRoomAtMaxPlusOne) {
  EngineOptions o;
  o.clock = &clock;
  Engine engine(actuator, o);
  RuleSet rules;
  rules.groups.push_back(ReplaceRule(/*max=*/2));
  engine.SetRules(rules);
  // Three adopted members at max 2: never deleted, so the group stays above max.
  std::vector<DomainStats> adopted;
  for (const char* name : {"web-1", "web-2", "web-3"})
    adopted.push_back(Dom(name, DomainState::kRunning, 0.5));
  TickAt(engine, 0, adopted);
  TickAt(engine, 10, adopted);  // 3 active at max 2: no room even for the swap
  EXPECT_TRUE(actuator.calls().empty());
  auto d = engine.GroupsJson()[0]["last_decision"];
  EXPECT_EQ(d["held_by"], "bound_max");
  EXPECT_NE(d["reason"].get<std::string>().find("no room for a replacement"), std::string::npos);
}

}  // namespace
}  // namespace virtscale::autoscale
