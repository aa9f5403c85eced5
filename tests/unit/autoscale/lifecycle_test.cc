// Pause, resume, protect and unprotect (Engine::SetPaused / SetProtected):
// what they hold, where they are stored, and how a restarted engine reads them
// back from the members' lifecycle metadata.
#include <gtest/gtest.h>

#include "autoscale/engine.h"
#include "autoscale/evaluator.h"
#include "autoscale/planner.h"
#include "engine_test_util.h"

namespace virtscale::autoscale {
namespace {

using namespace testing;  // NOLINT: test builders
using Status = LifecycleChange::Status;

// `doms` with the lifecycle stamps `actuator` has written so far, as the next
// sample would read them from libvirt.
std::vector<DomainStats> WithStoredStamps(std::vector<DomainStats> doms,
                                          const FakeActuator& actuator) {
  const auto stored = actuator.lifecycle();
  for (DomainStats& d : doms)
    if (auto it = stored.find(d.name); it != stored.end()) d.lifecycle = it->second;
  return doms;
}

struct LifecycleTest : ::testing::Test {
  FakeActuator actuator;
  FakeClock clock{At(0)};
  EngineOptions Options(bool dry_run = false) {
    EngineOptions o;
    o.dry_run = dry_run;
    o.clock = &clock;
    o.on_metadata_written = [this](const std::vector<std::string>& domains) {
      refreshed.insert(refreshed.end(), domains.begin(), domains.end());
    };
    o.on_change_finished = [this](const Decision& d) {
      if (d.outcome == Outcome::kPaused || d.outcome == Outcome::kResumed)
        finished.push_back(OutcomeName(d.outcome));
    };
    return o;
  }
  void TickAt(Engine& e, int64_t s, std::vector<DomainStats> doms) {
    clock.Set(At(s));
    e.Tick(Snap(At(s), std::move(doms)), {}, At(s));
    e.WaitIdle();
  }
  std::vector<std::string> refreshed;
  std::vector<std::string> finished;  // pauses and resumes handed on (notifications)
};

TEST_F(LifecycleTest, PausedGroupHoldsEveryDecisionAndResumeActsAgain) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(2, 0.5));

  LifecycleChange change = engine.SetPaused("web", true);
  ASSERT_EQ(change.status, Status::kOk);
  EXPECT_EQ(change.body["paused"], true);
  EXPECT_EQ(change.body["persisted"], true);
  EXPECT_EQ(change.body["stored_on"], 2);
  // Stored on every member, and the sampler is asked to read them again.
  auto stored = actuator.lifecycle();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_TRUE(stored["web-1"].paused);
  EXPECT_EQ(stored["web-1"].group, "web");
  EXPECT_GT(stored["web-2"].paused_changed_ms, 0);
  EXPECT_EQ(refreshed, (std::vector<std::string>{"web-1", "web-2"}));

  // Busy: would scale up, but the pause holds it and says so.
  TickAt(engine, 10, Running(2, 0.95));
  EXPECT_TRUE(actuator.calls().empty());
  auto last = engine.GroupsJson()[0];
  EXPECT_EQ(last["paused"], true);
  EXPECT_FALSE(last["paused_since"].is_null());
  EXPECT_EQ(last["last_decision"]["held_by"], "paused");
  EXPECT_EQ(last["last_decision"]["direction"], "up");
  EXPECT_NE(last["last_decision"]["reason"].get<std::string>().find("group paused since"),
            std::string::npos);

  // The pause is a change record of its own.
  DecisionFilter paused;
  paused.outcomes = {Outcome::kPaused};
  auto records = engine.DecisionsJson(paused);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["result"], "ok");

  ASSERT_EQ(engine.SetPaused("web", false).status, Status::kOk);
  EXPECT_FALSE(actuator.lifecycle()["web-1"].paused);
  EXPECT_EQ(finished, (std::vector<std::string>{"paused", "resumed"}));
  TickAt(engine, 20, WithStoredStamps(Running(2, 0.95), actuator));
  ASSERT_EQ(actuator.calls().size(), 1u);
  EXPECT_EQ(actuator.calls()[0].kind, Operation::Kind::kCreate);
}

TEST_F(LifecycleTest, PauseHoldsEvenARestoreOfTheBounds) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule(/*min=*/3, /*max=*/4)}));
  TickAt(engine, 0, Running(3, 0.5));
  ASSERT_EQ(engine.SetPaused("web", true).status, Status::kOk);
  TickAt(engine, 10, WithStoredStamps(Running(1, 0.5), actuator));  // below min
  EXPECT_TRUE(actuator.calls().empty());
  EXPECT_EQ(engine.GroupsJson()[0]["last_decision"]["held_by"], "paused");
}

TEST_F(LifecycleTest, ARestartedEngineReadsThePauseFromTheMembers) {
  {
    Engine engine(actuator, Options());
    engine.SetRules(Rules({FastRule()}));
    TickAt(engine, 0, Running(2, 0.5));
    ASSERT_EQ(engine.SetPaused("web", true).status, Status::kOk);
  }
  Engine restarted(actuator, Options());
  restarted.SetRules(Rules({FastRule()}));
  TickAt(restarted, 30, WithStoredStamps(Running(2, 0.95), actuator));
  EXPECT_TRUE(actuator.calls().empty());
  EXPECT_EQ(restarted.GroupsJson()[0]["paused"], true);
  EXPECT_EQ(restarted.GroupsJson()[0]["last_decision"]["held_by"], "paused");
}

TEST_F(LifecycleTest, TheNewestStoredChangeWinsWhenMembersDisagree) {
  // web-1 missed the resume (its write failed): the resume on web-2 is newer.
  std::vector<DomainStats> doms = Running(2, 0.95);
  doms[0].lifecycle = LifecycleStamp{"web", true, 1000, false, 0};
  doms[1].lifecycle = LifecycleStamp{"web", false, 2000, false, 0};
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, doms);
  EXPECT_EQ(engine.GroupsJson()[0]["paused"], false);
  EXPECT_EQ(actuator.calls().size(), 1u);
  // A stamp naming another group is not this group's.
  doms[1].lifecycle = LifecycleStamp{"other", false, 3000, false, 0};
  Engine other(actuator, Options());
  other.SetRules(Rules({FastRule()}));
  TickAt(other, 0, doms);
  EXPECT_EQ(other.GroupsJson()[0]["paused"], true);
}

TEST_F(LifecycleTest, AStoredChangeOlderThanTheEnginesOwnDoesNotUndoIt) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(2, 0.5));
  ASSERT_EQ(engine.SetPaused("web", true).status, Status::kOk);
  // A snapshot taken before the write landed still shows no pause.
  TickAt(engine, 10, Running(2, 0.95));
  EXPECT_TRUE(actuator.calls().empty());
  EXPECT_EQ(engine.GroupsJson()[0]["paused"], true);
}

TEST_F(LifecycleTest, FailedWritesAreReportedAndThePauseStillHolds) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(2, 0.5));

  actuator.fail_lifecycle_on({"web-1", "web-2"});
  LifecycleChange failed = engine.SetPaused("web", true);
  EXPECT_EQ(failed.status, Status::kNotStored);
  EXPECT_EQ(failed.body["persisted"], false);

  // Nothing was stored, so asking again writes again.
  actuator.fail_lifecycle_on({"web-1"});
  LifecycleChange partial = engine.SetPaused("web", true);
  EXPECT_EQ(partial.status, Status::kOk);  // one stored change is enough to survive a restart
  EXPECT_EQ(partial.body["stored_on"], 1);
  EXPECT_EQ(partial.body["errors"]["web-1"], "injected lifecycle failure");

  // Stored: a third request changes nothing and leaves no record.
  LifecycleChange again = engine.SetPaused("web", true);
  EXPECT_EQ(again.status, Status::kOk);
  EXPECT_EQ(again.body["unchanged"], true);
  EXPECT_EQ(again.body["changed_at"], partial.body["changed_at"]);
  DecisionFilter paused;
  paused.outcomes = {Outcome::kPaused};
  auto records = engine.DecisionsJson(paused);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["result"], "partial");
  EXPECT_EQ(records[1]["result"], "error");
  TickAt(engine, 10, Running(2, 0.95));
  EXPECT_TRUE(actuator.calls().empty());
}

TEST_F(LifecycleTest, DryRunKeepsThePauseInMemoryAndWritesNothing) {
  Engine engine(actuator, Options(/*dry_run=*/true));
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(2, 0.5));
  LifecycleChange change = engine.SetPaused("web", true);
  EXPECT_EQ(change.status, Status::kOk);
  EXPECT_EQ(change.body["persisted"], false);
  EXPECT_NE(change.body["note"].get<std::string>().find("dry run"), std::string::npos);
  EXPECT_TRUE(actuator.lifecycle().empty());
  EXPECT_TRUE(refreshed.empty());
  TickAt(engine, 10, Running(2, 0.95));
  EXPECT_EQ(engine.GroupsJson()[0]["last_decision"]["held_by"], "paused");
}

TEST_F(LifecycleTest, AGroupWithoutMembersIsPausedInMemoryOnly) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule(/*min=*/0)}));
  TickAt(engine, 0, {});
  LifecycleChange change = engine.SetPaused("web", true);
  EXPECT_EQ(change.status, Status::kOk);
  EXPECT_EQ(change.body["persisted"], false);
  EXPECT_NE(change.body["note"].get<std::string>().find("no members"), std::string::npos);
  // Its pause lasts: no snapshot can catch up with it.
  TickAt(engine, 10, {});
  EXPECT_EQ(engine.GroupsJson()[0]["paused"], true);
}

TEST_F(LifecycleTest, UnknownGroupsAndMembersAreNotFound) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(2, 0.5));
  EXPECT_EQ(engine.SetPaused("nope", true).status, Status::kNoGroup);
  EXPECT_EQ(engine.SetProtected("nope", "web-1", true).status, Status::kNoGroup);
  EXPECT_EQ(engine.SetProtected("web", "db-1", true).status, Status::kNoMember);
  EXPECT_TRUE(actuator.lifecycle().empty());
}

TEST_F(LifecycleTest, AProtectedMemberIsNeverChosenForScaleDown) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(3, 0.5));
  // Newest first would pick web-3.
  LifecycleChange change = engine.SetProtected("web", "web-3", true);
  ASSERT_EQ(change.status, Status::kOk);
  EXPECT_EQ(change.body["persisted"], true);
  EXPECT_TRUE(actuator.lifecycle()["web-3"].is_protected);
  EXPECT_FALSE(actuator.lifecycle()["web-3"].paused);
  EXPECT_EQ(engine.GroupsJson()[0]["members"][2]["protected"], true);

  TickAt(engine, 10, WithStoredStamps(Running(3, 0.1), actuator));
  auto calls = actuator.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].kind, Operation::Kind::kStop);
  EXPECT_EQ(calls[0].domain, "web-2");

  ASSERT_EQ(engine.SetProtected("web", "web-3", false).status, Status::kOk);
  EXPECT_FALSE(actuator.lifecycle()["web-3"].is_protected);
}

TEST_F(LifecycleTest, ProtectingAMemberKeepsTheGroupsPauseInItsStamp) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(2, 0.5));
  ASSERT_EQ(engine.SetPaused("web", true).status, Status::kOk);
  ASSERT_EQ(engine.SetProtected("web", "web-1", true).status, Status::kOk);
  const LifecycleStamp stamp = actuator.lifecycle()["web-1"];
  EXPECT_TRUE(stamp.paused);
  EXPECT_TRUE(stamp.is_protected);
  EXPECT_GT(stamp.protected_changed_ms, stamp.paused_changed_ms);
}

TEST_F(LifecycleTest, PauseAndProtectionAreExported) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(2, 0.5));
  ASSERT_EQ(engine.SetPaused("web", true).status, Status::kOk);
  ASSERT_EQ(engine.SetProtected("web", "web-2", true).status, Status::kOk);
  std::vector<prometheus::MetricFamily> families = engine.Collect();
  std::map<std::string, double> seen;
  for (const auto& f : families) {
    for (const auto& m : f.metric) {
      std::string key = f.name;
      for (const auto& l : m.label) key += "," + l.name + "=" + l.value;
      seen[key] = m.gauge.value;
    }
  }
  EXPECT_EQ(seen.at("virtscale_group_paused,group=web"), 1);
  EXPECT_EQ(seen.at("virtscale_member_protected,group=web,domain=web-1"), 0);
  EXPECT_EQ(seen.at("virtscale_member_protected,group=web,domain=web-2"), 1);
}

TEST(LifecyclePlanner, ShortfallNamesTheProtectedMembers) {
  GroupRule rule = CpuRule(0, 5);
  RuleSet rules;
  rules.groups.push_back(rule);
  std::vector<DomainStats> doms = Running(2, 0.1);
  doms[0].lifecycle = LifecycleStamp{"web", false, 0, true, 5};
  doms[1].lifecycle = LifecycleStamp{"web", false, 0, true, 6};
  auto snap = Snap(T0(), doms);
  auto members = IndexMembers(rules, snap.get());
  Plan plan = PlanScaleDown(rule, members[0], 1);
  EXPECT_TRUE(plan.operations.empty());
  EXPECT_NE(plan.shortfall.find("protected, never chosen: web-2, web-1"), std::string::npos)
      << plan.shortfall;
}

}  // namespace
}  // namespace virtscale::autoscale
