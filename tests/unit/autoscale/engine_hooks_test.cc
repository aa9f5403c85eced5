// before_scale_down and after_scale_up around the engine's operations.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "autoscale/engine.h"
#include "engine_test_util.h"

namespace virtscale::autoscale {
namespace {

using namespace testing;  // NOLINT: test builders

Hook Sh(std::string script, HookFailure on_failure) {
  Hook h;
  h.command = {"/bin/sh", "-c", std::move(script)};
  h.timeout = seconds(30);
  h.on_failure = on_failure;
  return h;
}

struct EngineHooksTest : ::testing::Test {
  FakeActuator actuator;
  FakeClock clock{At(0)};
  GroupRule Rule(HookPolicy hooks) {
    GroupRule r = FastRule(1, 5);
    r.hooks = std::move(hooks);
    return r;
  }
  nlohmann::json RunOnce(HookPolicy hooks, double cpu) {
    EngineOptions o;
    o.clock = &clock;
    Engine engine(actuator, o);
    RuleSet rules;
    rules.groups.push_back(Rule(std::move(hooks)));
    engine.SetRules(rules);
    engine.Tick(Snap(At(0), Running(2, cpu)), {}, At(0));
    engine.WaitIdle();
    return engine.DecisionsJson(1)[0];
  }
};

TEST_F(EngineHooksTest, AFailedDrainWithAbandonKeepsTheMember) {
  HookPolicy hooks;
  hooks.before_scale_down = Sh("echo still busy on {domain}; exit 1", HookFailure::kAbandon);
  auto d = RunOnce(hooks, 0.1);
  EXPECT_TRUE(actuator.calls().empty());  // never stopped
  EXPECT_EQ(d["result"], "error");
  const std::string error = d["actions"][0]["error"];
  EXPECT_NE(error.find("still busy on web-2"), std::string::npos) << error;
  EXPECT_NE(error.find("keeps running (on_failure: abandon)"), std::string::npos) << error;
}

TEST_F(EngineHooksTest, AFailedDrainWithContinueStopsAnyway) {
  HookPolicy hooks;
  hooks.before_scale_down = Sh("exit 1", HookFailure::kContinue);
  auto d = RunOnce(hooks, 0.1);
  ASSERT_EQ(actuator.calls().size(), 1u);
  EXPECT_EQ(actuator.calls()[0].kind, Operation::Kind::kStop);
  EXPECT_EQ(d["result"], "ok");
  EXPECT_NE(d["actions"][0]["detail"].get<std::string>().find("before_scale_down"),
            std::string::npos);
}

TEST_F(EngineHooksTest, ADrainThatSucceedsRunsBeforeTheStop) {
  HookPolicy hooks;
  hooks.before_scale_down =
      Sh("test \"$VIRTSCALE_DOMAIN\" = web-2 && echo drained 3 sessions", HookFailure::kAbandon);
  auto d = RunOnce(hooks, 0.1);
  ASSERT_EQ(actuator.calls().size(), 1u);
  EXPECT_EQ(d["result"], "ok");
  // What the drain printed is in the record, also when it passed.
  const std::string detail = d["actions"][0]["detail"];
  EXPECT_NE(detail.find("before_scale_down hook /bin/sh: ok: drained 3 sessions"),
            std::string::npos)
      << detail;
}

TEST_F(EngineHooksTest, TheActionDurationIncludesTheHook) {
  HookPolicy hooks;
  hooks.before_scale_down = Sh("sleep 0.3", HookFailure::kAbandon);
  actuator.set_duration(0.01);  // what the actuator measured for the stop itself
  auto d = RunOnce(hooks, 0.1);
  ASSERT_EQ(d["actions"].size(), 1u);
  EXPECT_GE(d["actions"][0]["duration_seconds"].get<double>(), 0.3);
}

TEST_F(EngineHooksTest, AFailedEnlistWithAbandonRemovesTheNewMemberAgain) {
  HookPolicy hooks;
  hooks.after_scale_up = Sh("echo not ready; exit 2", HookFailure::kAbandon);
  auto d = RunOnce(hooks, 0.95);
  auto calls = actuator.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].kind, Operation::Kind::kCreate);
  EXPECT_EQ(calls[1].kind, Operation::Kind::kDelete);
  EXPECT_EQ(calls[1].domain, "web-new1");
  EXPECT_EQ(d["result"], "error");
  EXPECT_NE(d["actions"][0]["error"].get<std::string>().find("not ready"), std::string::npos);
}

TEST_F(EngineHooksTest, AFailedEnlistWithContinueKeepsTheNewMember) {
  HookPolicy hooks;
  hooks.after_scale_up = Sh("exit 2", HookFailure::kContinue);
  auto d = RunOnce(hooks, 0.95);
  ASSERT_EQ(actuator.calls().size(), 1u);
  EXPECT_EQ(d["result"], "ok");
}

TEST_F(EngineHooksTest, ANewMemberIsActiveButNotInServiceUntilItsEnlistHookEnds) {
  char dir[] = "/tmp/virtscale-hook-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string release = std::string(dir) + "/release";
  HookPolicy hooks;
  hooks.after_scale_up =
      Sh("while [ ! -e " + release + " ]; do sleep 0.05; done", HookFailure::kAbandon);
  EngineOptions o;
  o.clock = &clock;
  Engine engine(actuator, o);
  engine.SetRules(Rules({Rule(hooks)}));
  engine.Tick(Snap(At(0), Running(2, 0.95)), {}, At(0));
  auto in_service = [&](const std::string& name) -> nlohmann::json {
    const nlohmann::json groups = engine.GroupsJson();
    for (const auto& m : groups[0]["members"])
      if (m["name"] == name) return m["in_service"];
    return nullptr;
  };
  // The hook runs: a snapshot with the new member shows it not in service yet.
  std::vector<DomainStats> three = Running(2, 0.95);
  three.push_back(Dom("web-new1", DomainState::kRunning, 0.95, 1003));
  for (int i = 0; i < 200 && actuator.calls().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(actuator.calls().size(), 1u);
  engine.Tick(Snap(At(10), three), {}, At(10));
  EXPECT_EQ(in_service("web-new1"), false);
  EXPECT_EQ(in_service("web-1"), true);
  EXPECT_EQ(engine.GroupsJson()[0]["active"], 3);  // counted for the bounds
  EXPECT_EQ(engine.DecisionsJson(1)[0]["held_by"], "action_in_flight");
  std::fclose(std::fopen(release.c_str(), "w"));
  engine.WaitIdle();
  EXPECT_EQ(in_service("web-new1"), true);
  EXPECT_EQ(actuator.calls().size(), 1u);  // the hook passed: nothing undone
  std::remove(release.c_str());
  rmdir(dir);
}

// EngineOptions.hook_runner replaces RunHook: the command never runs, and
// the runner's result decides as RunHook's would.
TEST_F(EngineHooksTest, AnInjectedHookRunnerReplacesTheCommand) {
  HookPolicy hooks;
  hooks.before_scale_down = Sh("exit 0", HookFailure::kAbandon);  // would let the stop go on
  std::vector<std::string> seen;
  EngineOptions o;
  o.clock = &clock;
  o.hook_runner = [&seen](const char* which, const Hook& hook, const PlaceholderValues& values,
                          Canceller* canceller) {
    seen.push_back(std::string(which) + " " + values.domain + " " + values.group);
    EXPECT_NE(canceller, nullptr);
    HookRun run;
    run.command = hook.command[0];
    run.result.outcome = SubprocessOutcome::kExited;
    run.result.exit_code = 3;
    run.proceed = HookProceeds(hook, run.result);
    return run;
  };
  Engine engine(actuator, o);
  RuleSet rules;
  rules.groups.push_back(Rule(hooks));
  engine.SetRules(rules);
  engine.Tick(Snap(At(0), Running(2, 0.1)), {}, At(0));
  engine.WaitIdle();
  EXPECT_EQ(engine.ActiveJobs(), 0u);
  EXPECT_EQ(seen, std::vector<std::string>{"before_scale_down web-2 web"});
  EXPECT_TRUE(actuator.calls().empty());  // abandoned on the runner's exit status 3
  auto d = engine.DecisionsJson(1)[0];
  EXPECT_EQ(d["result"], "error");
  const std::string error = d["actions"][0]["error"];
  EXPECT_NE(error.find("before_scale_down hook /bin/sh: exit status 3"), std::string::npos)
      << error;
}

}  // namespace
}  // namespace virtscale::autoscale
