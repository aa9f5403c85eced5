#include "autoscale/evaluator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "engine_test_util.h"

namespace virtscale::autoscale {
namespace {

using namespace testing;  // NOLINT: test builders

// Drives Evaluate like the engine does, with actions completing instantly.
struct Harness {
  explicit Harness(GroupRule r) : rule(std::move(r)) {}
  GroupRule rule;
  GroupState state;
  SourceReadings sources;
  bool dry_run = false;

  uint64_t generation = 0;  // the connection's generation now (0: unknown)

  Evaluation Step(const SnapshotPtr& snap, Instant now) {
    RuleSet rules;
    rules.groups.push_back(rule);
    auto members = IndexMembers(rules, snap.get());
    Evaluation e = Evaluate({.rule = rule,
                             .members = members[0],
                             .snapshot = snap.get(),
                             .sources = sources,
                             .now = now,
                             .stale_after = seconds(30),
                             .connection_generation = generation,
                             .dry_run = dry_run},
                            state);
    state = e.next;
    if (state.in_flight) {  // the engine's worker finishes the action at `now`
      state.in_flight = false;
      state.settle_after = now.mono;
    }
    return e;
  }
  // A fresh snapshot of `domains` taken just after `now`'s previous action.
  Evaluation StepAt(int64_t s, std::vector<DomainStats> domains) {
    return Step(Snap(At(s), std::move(domains)), At(s));
  }
};

TEST(Evaluator, ConditionGoesPendingThenFiringAfterFor) {
  Harness h{CpuRule()};
  auto e = h.StepAt(0, Running(2, 0.9));
  ASSERT_EQ(e.decision.conditions.size(), 2u);
  EXPECT_EQ(e.decision.conditions[0].state, ConditionState::kPending);
  EXPECT_EQ(e.decision.conditions[1].state, ConditionState::kInactive);
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);

  e = h.StepAt(20, Running(2, 0.9));
  EXPECT_EQ(e.decision.conditions[0].state, ConditionState::kPending);
  EXPECT_EQ(e.decision.conditions[0].held_for, seconds(20));

  e = h.StepAt(30, Running(2, 0.9));
  EXPECT_EQ(e.decision.conditions[0].state, ConditionState::kFiring);
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(e.decision.desired, 3);
  ASSERT_EQ(e.decision.actions.size(), 1u);
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kCreate);
  EXPECT_EQ(e.decision.actions[0].operation.template_path, "/t/web.xml");
  EXPECT_EQ(e.decision.metrics.at(0).key, "cpu:avg");
  EXPECT_DOUBLE_EQ(*e.decision.metrics.at(0).value, 0.9);
}

TEST(Evaluator, TimerResetsWhenConditionClears) {
  Harness h{CpuRule()};
  h.StepAt(0, Running(2, 0.9));
  auto e = h.StepAt(10, Running(2, 0.5));
  EXPECT_EQ(e.decision.conditions[0].state, ConditionState::kInactive);
  h.StepAt(20, Running(2, 0.9));
  e = h.StepAt(40, Running(2, 0.9));
  EXPECT_EQ(e.decision.conditions[0].state, ConditionState::kPending);
  EXPECT_EQ(e.decision.conditions[0].held_for, seconds(20));
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
  e = h.StepAt(50, Running(2, 0.9));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
}

TEST(Evaluator, FlappingInputNeverActs) {
  Harness h{CpuRule()};
  std::vector<double> pattern{0.95, 0.05, 0.95, 0.95, 0.05, 0.05, 0.95, 0.05};
  for (int i = 0; i < 200; ++i) {
    auto e = h.StepAt(i * 10, Running(3, pattern[i % pattern.size()]));
    ASSERT_TRUE(e.decision.actions.empty()) << "tick " << i << ": " << e.decision.reason;
    EXPECT_NE(e.decision.conditions[0].state, ConditionState::kFiring);
    EXPECT_NE(e.decision.conditions[1].state, ConditionState::kFiring);
  }
}

TEST(Evaluator, UpWinsWhenBothDirectionsFire) {
  GroupRule r = CpuRule();
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.5, 0, Aggregate::kMax)};
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.5, 0, Aggregate::kMin)};
  Harness h{r};
  auto doms = Running(3, 0.9);
  doms[0].cpu_utilization = 0.1;
  auto e = h.StepAt(0, doms);
  EXPECT_EQ(e.decision.conditions[0].state, ConditionState::kFiring);
  EXPECT_EQ(e.decision.conditions[1].state, ConditionState::kFiring);
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_NE(e.decision.reason.find("up wins"), std::string::npos) << e.decision.reason;
}

TEST(Evaluator, ScaleDownNeedsAllDownConditions) {
  GroupRule r = CpuRule();
  r.scale_down.when = {
      Cond(MetricKind::kCpu, Comparison::kBelow, 0.2),
      Cond(MetricKind::kSource, Comparison::kPerMemberBelow, 10, 0, Aggregate::kAvg, "jobs")};
  Harness h{r};
  h.sources["jobs"].value = 90;  // 30 per member: not below 10
  auto e = h.StepAt(0, Running(3, 0.1));
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
  h.sources["jobs"].value = 15;  // 5 per member
  e = h.StepAt(10, Running(3, 0.1));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
  ASSERT_EQ(e.decision.actions.size(), 1u);
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kStop);
  EXPECT_EQ(e.decision.actions[0].operation.domain, "web-3");  // newest created_at
}

// least_loaded reads the same snapshot cpu as the conditions; the reason names the order.
TEST(Evaluator, ScaleDownOrderChoosesFromTheSnapshotAndIsExplained) {
  GroupRule r = CpuRule();
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2)};
  r.down_order = DownOrder::kLeastLoaded;
  Harness h{r};
  auto domains = Running(3, 0.15);
  domains[0].cpu_utilization = 0.05;  // web-1, the oldest, is the idlest
  auto e = h.StepAt(0, domains);
  ASSERT_EQ(e.decision.outcome, Outcome::kScaleDown) << e.decision.reason;
  ASSERT_EQ(e.decision.actions.size(), 1u);
  EXPECT_EQ(e.decision.actions[0].operation.domain, "web-1");
  EXPECT_NE(e.decision.reason.find("; scale_down.order: least_loaded"), std::string::npos)
      << e.decision.reason;
}

TEST(Evaluator, NoRunningMembersIsMissingDataNotZero) {
  GroupRule r = CpuRule(0, 5);
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2)};
  Harness h{r};
  auto e = h.StepAt(0, {Dom("web-1", DomainState::kShutoff, {}, 1)});
  EXPECT_EQ(e.decision.outcome, Outcome::kHeld);
  EXPECT_EQ(e.decision.held_by, HeldBy::kMissingData);
  EXPECT_TRUE(e.decision.actions.empty());
  EXPECT_FALSE(e.decision.metrics.at(0).value.has_value());
  EXPECT_EQ(e.decision.metrics.at(0).missing_reason, "no running members");
  EXPECT_NE(e.decision.reason.find("on_missing_data: hold"), std::string::npos);
}

TEST(Evaluator, MembersWithoutCpuSamplesAreMissingData) {
  Harness h{CpuRule(1, 5)};
  auto doms = Running(3, 0);
  for (auto& d : doms) d.cpu_utilization.reset();
  auto e = h.StepAt(0, doms);
  EXPECT_EQ(e.decision.held_by, HeldBy::kMissingData);
  EXPECT_EQ(e.decision.metrics.at(0).missing_reason, "no cpu samples from 3 running members");
}

TEST(Evaluator, SourceErrorNeverReadsAsZero) {
  GroupRule r = CpuRule(1, 5);
  r.scale_up.when = {Cond(MetricKind::kSource, Comparison::kAbove, 100, 0, Aggregate::kAvg, "q")};
  r.scale_down.when = {Cond(MetricKind::kSource, Comparison::kBelow, 10, 0, Aggregate::kAvg, "q")};
  Harness h{r};
  h.sources["q"].error = "connection refused";
  for (int i = 0; i < 20; ++i) {
    auto e = h.StepAt(i * 10, Running(4, 0.5));
    ASSERT_EQ(e.decision.held_by, HeldBy::kMissingData);
    ASSERT_TRUE(e.decision.actions.empty());
    EXPECT_EQ(e.decision.metrics.at(0).missing_reason, "source error: connection refused");
  }
  // A source that never reported is missing too.
  h.sources.clear();
  auto e = h.StepAt(300, Running(4, 0.5));
  EXPECT_EQ(e.decision.held_by, HeldBy::kMissingData);
  EXPECT_EQ(e.decision.metrics.at(0).missing_reason, "no reading yet");
}

TEST(Evaluator, MissingDataPolicyScaleUpAndDown) {
  GroupRule r = CpuRule(1, 5);
  r.scale_up.cooldown = r.scale_down.cooldown = seconds(0);
  r.scale_up.when = {Cond(MetricKind::kSource, Comparison::kAbove, 10, 0, Aggregate::kAvg, "q")};
  r.scale_down.when = {Cond(MetricKind::kSource, Comparison::kBelow, 1, 0, Aggregate::kAvg, "q")};
  r.on_missing_data = MissingDataPolicy::kScaleUp;
  Harness h{r};
  h.sources["q"] =
      SourceReading{std::nullopt, "connection refused", {}, SourceHealth::kError, nullptr, ""};
  auto e = h.StepAt(0, Running(2, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_NE(e.decision.reason.find("source error: connection refused"), std::string::npos)
      << e.decision.reason;

  h.rule.on_missing_data = MissingDataPolicy::kScaleDown;
  e = h.StepAt(200, Running(3, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
}

// on_missing_data is about metric values; not knowing the group always holds.
TEST(Evaluator, StaleMembershipHoldsWhateverThePolicy) {
  for (auto policy :
       {MissingDataPolicy::kHold, MissingDataPolicy::kScaleUp, MissingDataPolicy::kScaleDown}) {
    GroupRule r = CpuRule(1, 5);
    r.scale_up.cooldown = r.scale_down.cooldown = seconds(0);
    r.on_missing_data = policy;
    Harness h{r};
    auto e = h.Step(Snap(At(0), Running(2, 0.5)), At(100));  // 100s old, limit 30s
    EXPECT_EQ(e.decision.held_by, HeldBy::kStaleSnapshot) << MissingDataPolicyName(policy);
    EXPECT_TRUE(e.decision.actions.empty());
    EXPECT_NE(e.decision.reason.find("snapshot is stale (100.0s old, limit 30s)"),
              std::string::npos)
        << e.decision.reason;
  }
}

TEST(Evaluator, SnapshotFromBeforeTheLatestReconnectHolds) {
  GroupRule r = CpuRule(3, 5);  // 1 running: would restore bounds at once
  r.on_missing_data = MissingDataPolicy::kScaleUp;
  Harness h{r};
  h.generation = 2;
  auto before = Snap(At(0), Running(1, 0.9));
  std::const_pointer_cast<Snapshot>(before)->connection_generation = 1;
  std::const_pointer_cast<Snapshot>(before)->sequence = 41;
  auto e = h.Step(before, At(1));
  EXPECT_EQ(e.decision.held_by, HeldBy::kStaleSnapshot);
  EXPECT_TRUE(e.decision.actions.empty());
  EXPECT_EQ(e.decision.reason,
            "snapshot #41 was taken before the latest libvirt reconnect (connection 1, now 2): "
            "membership unknown");
  auto after = Snap(At(2), Running(1, 0.9));
  std::const_pointer_cast<Snapshot>(after)->connection_generation = 2;
  e = h.Step(after, At(2));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp) << e.decision.reason;
}

TEST(Evaluator, LibvirtDownHoldsWhateverThePolicy) {
  for (auto policy :
       {MissingDataPolicy::kHold, MissingDataPolicy::kScaleUp, MissingDataPolicy::kScaleDown}) {
    GroupRule r = CpuRule(2, 5);
    r.on_missing_data = policy;
    Harness h{r};
    // The sampler's snapshot while libvirt is down lists no domains: not "0 running".
    auto e = h.Step(Snap(At(0), {}, /*libvirt_up=*/false), At(0));
    EXPECT_EQ(e.decision.held_by, HeldBy::kStaleSnapshot);
    EXPECT_TRUE(e.decision.actions.empty());
    EXPECT_EQ(e.decision.reason, "libvirt is down: membership and metrics unknown");
  }
}

TEST(Evaluator, StaleSnapshotDoesNotRestoreBounds) {
  Harness h{CpuRule(3, 5)};
  auto e = h.Step(Snap(At(0), Running(1, 0.5)), At(100));
  EXPECT_EQ(e.decision.held_by, HeldBy::kStaleSnapshot);
  EXPECT_TRUE(e.decision.actions.empty());
}

TEST(Evaluator, MissingDataThatCannotChangeTheOutcomeDoesNotHold) {
  // Up fires on cpu; the missing source could only add another reason to go up.
  GroupRule r = CpuRule(1, 5);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8),
                     Cond(MetricKind::kSource, Comparison::kAbove, 10, 0, Aggregate::kAvg, "q")};
  Harness h{r};
  auto e = h.StepAt(0, Running(2, 0.9));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  // Down has a known non-firing condition, so the missing one cannot complete it.
  r = CpuRule(1, 5);
  r.scale_up.when.clear();
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2),
                       Cond(MetricKind::kSource, Comparison::kBelow, 10, 0, Aggregate::kAvg, "q")};
  Harness h2{r};
  e = h2.StepAt(0, Running(2, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
  EXPECT_EQ(e.decision.held_by, HeldBy::kNone);
}

TEST(Evaluator, NoSnapshotHolds) {
  Harness h{CpuRule()};
  auto e = h.Step(nullptr, At(0));
  EXPECT_EQ(e.decision.held_by, HeldBy::kNoSnapshot);
  EXPECT_FALSE(e.decision.snapshot_time.has_value());
}

TEST(Evaluator, OutOfBoundsAtStartIsRestoredAndExplained) {
  Harness h{CpuRule(3, 5)};
  auto e = h.StepAt(
      0, {Dom("web-1", DomainState::kRunning, 0.1, 1), Dom("web-2", DomainState::kShutoff, {}, 2)});
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(e.decision.desired, 3);
  ASSERT_EQ(e.decision.actions.size(), 2u);
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kStart);
  EXPECT_EQ(e.decision.actions[0].operation.domain, "web-2");
  EXPECT_EQ(e.decision.actions[1].operation.kind, Operation::Kind::kCreate);
  EXPECT_NE(e.decision.reason.find("1 active is below min 3: restoring bounds"), std::string::npos)
      << e.decision.reason;

  Harness over{CpuRule(1, 2)};
  e = over.StepAt(0, Running(5, 0.99));  // above max even though cpu says up
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
  EXPECT_EQ(e.decision.desired, 2);
  ASSERT_EQ(e.decision.actions.size(), 3u);
  EXPECT_EQ(e.decision.actions[0].operation.domain, "web-5");
  EXPECT_NE(e.decision.reason.find("above max 2"), std::string::npos);
}

TEST(Evaluator, ScheduleMinRaisesTheFloorWhileItsWindowIsOpen) {
  GroupRule r = CpuRule(1, 5);
  r.schedules = {NightWindow(3, std::nullopt)};
  Harness h{r};
  auto e = h.StepAt(0, Running(1, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
  EXPECT_EQ(e.decision.min, 1);
  EXPECT_FALSE(e.decision.schedule);

  e = h.StepAt(2800, Running(1, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(e.decision.desired, 3);
  EXPECT_EQ(e.decision.min, 3);
  EXPECT_EQ(e.decision.max, 5);
  EXPECT_NE(e.decision.reason.find("1 active is below min 3: restoring bounds"), std::string::npos)
      << e.decision.reason;
  ASSERT_TRUE(e.decision.schedule);
  EXPECT_EQ(e.decision.schedule->line, 9);
  EXPECT_EQ(FormatTime(e.decision.schedule->ends_at), "2023-11-15T00:00:00.000Z");
  EXPECT_EQ(e.decision.ToJson()["schedule"]["min"], 3);

  // Down conditions cannot go below the window's min while it is open.
  e = h.StepAt(3000, Running(3, 0.05));
  e = h.StepAt(3100, Running(3, 0.05));
  EXPECT_EQ(e.decision.held_by, HeldBy::kBoundMin);
  EXPECT_NE(e.decision.reason.find("at min 3"), std::string::npos) << e.decision.reason;

  // After `duration` the group's own bounds apply again.
  e = h.StepAt(2800 + 3600, Running(3, 0.5));
  EXPECT_EQ(e.decision.min, 1);
  EXPECT_FALSE(e.decision.schedule);
  EXPECT_TRUE(e.decision.ToJson()["schedule"].is_null());
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
}

TEST(Evaluator, ScheduleMaxLowersTheCeiling) {
  GroupRule r = CpuRule(1, 5);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  r.schedules = {NightWindow(std::nullopt, 2)};
  Harness h{r};
  auto e = h.StepAt(2800, Running(4, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
  EXPECT_EQ(e.decision.desired, 2);
  EXPECT_NE(e.decision.reason.find("above max 2"), std::string::npos) << e.decision.reason;
  e = h.StepAt(2900, Running(2, 0.95));
  EXPECT_EQ(e.decision.held_by, HeldBy::kBoundMax);
  EXPECT_EQ(e.decision.max, 2);
}

TEST(Evaluator, PercentageStepsRoundUpAtLeastOne) {
  Step pct{true, 50};
  EXPECT_EQ(pct.Resolve(4), 2);
  EXPECT_EQ(pct.Resolve(3), 2);
  EXPECT_EQ(pct.Resolve(1), 1);
  EXPECT_EQ(pct.Resolve(0), 1);
  EXPECT_EQ((Step{true, 10}).Resolve(4), 1);
  EXPECT_EQ((Step{true, 10}).Resolve(11), 2);
  EXPECT_EQ((Step{false, 3}).Resolve(100), 3);

  GroupRule r = CpuRule(1, 20);
  r.scale_up.step = Step{true, 50};
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  Harness h{r};
  auto e = h.StepAt(0, Running(5, 0.9));
  EXPECT_EQ(e.decision.desired, 8);  // ceil(2.5) = 3
  EXPECT_EQ(e.decision.actions.size(), 3u);
}

TEST(Evaluator, StepIsClampedToMax) {
  GroupRule r = CpuRule(1, 4);
  r.scale_up.step = Step{false, 3};
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  Harness h{r};
  auto e = h.StepAt(0, Running(3, 0.9));
  EXPECT_EQ(e.decision.desired, 4);
  EXPECT_EQ(e.decision.actions.size(), 1u);
  e = h.StepAt(100, Running(4, 0.9));
  EXPECT_EQ(e.decision.held_by, HeldBy::kBoundMax);
  EXPECT_NE(e.decision.reason.find("at max 4"), std::string::npos);
}

TEST(Evaluator, HeldAtMinBound) {
  GroupRule r = CpuRule(2, 4);
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2)};
  Harness h{r};
  auto e = h.StepAt(0, Running(2, 0.05));
  EXPECT_EQ(e.decision.held_by, HeldBy::kBoundMin);
  EXPECT_EQ(e.decision.direction, Direction::kDown);
  EXPECT_TRUE(e.decision.actions.empty());
}

TEST(Evaluator, CooldownsPerDirection) {
  GroupRule r = CpuRule(1, 10);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2)};
  r.scale_up.cooldown = seconds(60);
  r.scale_down.cooldown = seconds(120);
  Harness h{r};
  EXPECT_EQ(h.StepAt(0, Running(2, 0.9)).decision.outcome, Outcome::kScaleUp);
  auto e = h.StepAt(30, Running(3, 0.9));
  EXPECT_EQ(e.decision.held_by, HeldBy::kCooldown);
  EXPECT_NE(e.decision.reason.find("30s left"), std::string::npos) << e.decision.reason;
  EXPECT_EQ(h.StepAt(60, Running(3, 0.9)).decision.outcome, Outcome::kScaleUp);
  // Scale-down waits its own cooldown from the last scale action (the up at 60s).
  e = h.StepAt(150, Running(4, 0.1));
  EXPECT_EQ(e.decision.held_by, HeldBy::kCooldown);
  EXPECT_EQ(h.StepAt(180, Running(4, 0.1)).decision.outcome, Outcome::kScaleDown);
  e = h.StepAt(200, Running(3, 0.1));
  EXPECT_EQ(e.decision.held_by, HeldBy::kCooldown);
  // Up is not blocked by the recent scale-down.
  EXPECT_EQ(h.StepAt(210, Running(3, 0.9)).decision.outcome, Outcome::kScaleUp);
}

// A restarted engine has no memory of its actions; the newest member it
// created still dates the last scale-up.
TEST(Evaluator, CooldownRunsFromTheNewestCreatedMemberAfterARestart) {
  GroupRule r = CpuRule(1, 10);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2)};
  const int64_t t0 = std::chrono::duration_cast<seconds>(T0().wall.time_since_epoch()).count();
  auto members = [&](double cpu) {
    return std::vector<DomainStats>{Dom("web-1", DomainState::kRunning, cpu, t0 - 86400),
                                    Dom("web-2", DomainState::kRunning, cpu, t0 - 20)};
  };
  Harness h{r};  // empty GroupState, as after a restart
  auto e = h.StepAt(0, members(0.1));
  EXPECT_EQ(e.decision.held_by, HeldBy::kCooldown) << e.decision.reason;
  EXPECT_NE(e.decision.reason.find("1m40s left"), std::string::npos) << e.decision.reason;
  e = h.StepAt(10, members(0.9));
  EXPECT_EQ(e.decision.held_by, HeldBy::kCooldown) << e.decision.reason;
  EXPECT_NE(e.decision.reason.find("30s left"), std::string::npos) << e.decision.reason;
  EXPECT_EQ(h.StepAt(40, members(0.9)).decision.outcome, Outcome::kScaleUp);
  // Members created long ago do not hold anything.
  Harness fresh{r};
  EXPECT_EQ(fresh.StepAt(0, Running(2, 0.1)).decision.outcome, Outcome::kScaleDown);
}

TEST(Evaluator, DryRunPlansButHolds) {
  GroupRule r = CpuRule(1, 5);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  Harness h{r};
  h.dry_run = true;
  auto e = h.StepAt(0, Running(2, 0.9));
  EXPECT_EQ(e.decision.outcome, Outcome::kHeld);
  EXPECT_EQ(e.decision.held_by, HeldBy::kDryRun);
  EXPECT_EQ(e.decision.result, DecisionResult::kDryRun);
  ASSERT_EQ(e.decision.actions.size(), 1u);
  EXPECT_EQ(e.decision.actions[0].result, ActionResult::kDryRun);
  EXPECT_FALSE(e.next.in_flight);

  h.dry_run = false;
  h.rule.dry_run = true;
  e = h.StepAt(100, Running(2, 0.9));
  EXPECT_EQ(e.decision.held_by, HeldBy::kDryRun);
  EXPECT_NE(e.decision.reason.find("group dry_run"), std::string::npos);
}

TEST(Evaluator, InFlightAndStaleSnapshotHold) {
  GroupRule r = CpuRule(1, 5);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  r.scale_up.cooldown = seconds(0);
  RuleSet rules;
  rules.groups.push_back(r);
  SourceReadings none;
  auto snap = Snap(At(0), Running(2, 0.9));
  auto m = IndexMembers(rules, snap.get());
  GroupState s;
  auto e = Evaluate(
      {.rule = r, .members = m[0], .snapshot = snap.get(), .sources = none, .now = At(0)}, s);
  ASSERT_EQ(e.decision.outcome, Outcome::kScaleUp);
  ASSERT_TRUE(e.next.in_flight);
  auto again = Evaluate(
      {.rule = r, .members = m[0], .snapshot = snap.get(), .sources = none, .now = At(10)}, e.next);
  EXPECT_EQ(again.decision.held_by, HeldBy::kInFlight);
  GroupState done = e.next;
  done.in_flight = false;
  done.settle_after = MonoAt(5);
  again = Evaluate(
      {.rule = r, .members = m[0], .snapshot = snap.get(), .sources = none, .now = At(10)}, done);
  EXPECT_EQ(again.decision.held_by, HeldBy::kAwaitingSnapshot);
  auto fresh = Snap(At(6), Running(3, 0.9));
  auto m2 = IndexMembers(rules, fresh.get());
  again = Evaluate(
      {.rule = r, .members = m2[0], .snapshot = fresh.get(), .sources = none, .now = At(10)}, done);
  EXPECT_EQ(again.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(again.decision.running, 3);
}

TEST(Evaluator, PerMemberScalesFromZero) {
  GroupRule r = CpuRule(0, 4);
  r.scale_up.when = {
      Cond(MetricKind::kSource, Comparison::kPerMemberAbove, 50, 0, Aggregate::kAvg, "jobs")};
  r.scale_down.when = {
      Cond(MetricKind::kSource, Comparison::kPerMemberBelow, 10, 0, Aggregate::kAvg, "jobs")};
  Harness h{r};
  h.sources["jobs"].value = 120;
  auto e = h.StepAt(0, {Dom("web-1", DomainState::kShutoff, {}, 1)});
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(e.decision.metrics.at(0).key, "source:jobs:per_member");
  EXPECT_DOUBLE_EQ(*e.decision.metrics.at(0).value, 120);
  h.sources["jobs"].value = 120;
  e = h.StepAt(100, Running(3, 0.5));  // 40 per member: neither
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
  EXPECT_DOUBLE_EQ(*e.decision.metrics.at(0).value, 40);
}

TEST(Evaluator, TargetTrackingMovesToCeilOfValueOverTarget) {
  GroupRule r = CpuRule(1, 6);
  r.scale_up.when.clear();
  r.scale_down.when.clear();
  r.scale_up.cooldown = r.scale_down.cooldown = seconds(0);
  r.target = Target(MetricKind::kSource, 50, "jobs");
  Harness h{r};
  h.sources["jobs"].value = 230;  // ceil(4.6) = 5
  auto e = h.StepAt(0, Running(2, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(e.decision.desired, 5);
  EXPECT_EQ(e.decision.actions.size(), 3u);
  h.sources["jobs"].value = 260;  // ceil(5.2) = 6, but 260 / (5 * 50) = 1.04: within tolerance
  e = h.StepAt(10, Running(5, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
  EXPECT_NE(e.decision.reason.find("gives 5 members (raw 6, within tolerance 0.1): no change"),
            std::string::npos)
      << e.decision.reason;
  h.sources["jobs"].value = 10;  // ceil(0.2) = 1
  e = h.StepAt(20, Running(5, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
  EXPECT_EQ(e.decision.desired, 1);
  h.sources["jobs"].value = 1e6;  // clamped to max 6, then to the rate limit: max(4, 100% of 1)
  e = h.StepAt(30, Running(1, 0.5));
  EXPECT_EQ(e.decision.desired, 5);
  EXPECT_NE(e.decision.reason.find("4 of 5 wanted (scale_up rate limit max(4, 100%) per 15s)"),
            std::string::npos)
      << e.decision.reason;
  // A step caps the change per action.
  h.rule.scale_up.step = Step{false, 2};
  h.rule.scale_up.step_set = true;
  e = h.StepAt(40, Running(1, 0.5));
  EXPECT_EQ(e.decision.desired, 3);
  h.sources["jobs"] = SourceReading{std::nullopt, "timeout", {}, SourceHealth::kError, nullptr, ""};
  e = h.StepAt(50, Running(3, 0.5));
  EXPECT_EQ(e.decision.held_by, HeldBy::kMissingData);
}

TEST(Evaluator, TimersResetWhenConditionsChange) {
  Harness h{CpuRule()};
  h.StepAt(0, Running(2, 0.9));
  h.rule.scale_up.when[0].threshold = 0.7;
  auto e = h.StepAt(30, Running(2, 0.9));
  EXPECT_EQ(e.decision.conditions[0].state, ConditionState::kPending);
  EXPECT_EQ(e.decision.conditions[0].held_for, seconds(0));
}

// Property: whatever the metrics and whatever happens to the domains, the
// evaluator never plans the group below min or above max once inside the bounds,
// and never deletes an adopted domain.
TEST(Evaluator, RandomInputsNeverLeaveBounds) {
  std::mt19937 rng(20261126);
  for (int round = 0; round < 20; ++round) {
    GroupRule r = CpuRule(2, 6);
    r.down_action = round % 2 ? DownAction::kDelete : DownAction::kStop;
    r.scale_up.step = round % 3 ? Step{false, 2} : Step{true, 50};
    r.scale_down.step = round % 4 ? Step{false, 3} : Step{true, 75};
    r.scale_up.cooldown = seconds(rng() % 40);
    r.scale_down.cooldown = seconds(rng() % 40);
    r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.7, rng() % 30)};
    r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.3, rng() % 30)};
    r.on_missing_data = static_cast<MissingDataPolicy>(rng() % 3);
    Harness h{r};
    // The world: domain name -> (running, created_at or adopted).
    std::map<std::string, std::pair<bool, std::optional<int64_t>>> world{
        {"web-a", {true, std::nullopt}}, {"web-b", {true, std::nullopt}}};
    int next_id = 1;
    for (int tick = 0; tick < 300; ++tick) {
      std::vector<DomainStats> doms;
      std::uniform_real_distribution<double> u(0, 1);
      for (const auto& [name, v] : world) {
        std::optional<double> cpu = u(rng) < 0.05 ? std::nullopt : std::optional<double>(u(rng));
        doms.push_back(
            Dom(name, v.first ? DomainState::kRunning : DomainState::kShutoff, cpu, v.second));
      }
      auto e = h.StepAt(tick * 10, doms);
      const Decision& d = e.decision;
      ASSERT_GE(d.desired, r.min) << d.reason;
      ASSERT_LE(d.desired, r.max) << d.reason;
      int64_t running = d.running;
      for (const ActionRecord& a : d.actions) {
        const Operation& op = a.operation;
        switch (op.kind) {
          case Operation::Kind::kStart:
            ASSERT_FALSE(world.at(op.domain).first);
            world[op.domain].first = true;
            ++running;
            break;
          case Operation::Kind::kCreate:
            world["web-n" + std::to_string(next_id)] = {true, tick * 10 + next_id};
            ++next_id;
            ++running;
            break;
          case Operation::Kind::kStop:
            ASSERT_TRUE(world.at(op.domain).first);
            world[op.domain].first = false;
            --running;
            break;
          case Operation::Kind::kDelete:
            ASSERT_TRUE(world.at(op.domain).second.has_value()) << "deleted adopted " << op.domain;
            world.erase(op.domain);
            --running;
            break;
        }
      }
      if (d.running >= r.min && d.running <= r.max) {
        ASSERT_GE(running, r.min) << d.reason;
        ASSERT_LE(running, r.max) << d.reason;
      }
      // Now and then someone else stops a member behind our back.
      if (u(rng) < 0.05) world.begin()->second.first = false;
    }
  }
}

// Absurd readings never act: every metric kind and every condition kind is fed
// each value; a sane value that would act is the control.
TEST(Evaluator, AbsurdReadingsNeverAct) {
  const double absurd[] = {1e300, -500, std::nan(""), std::numeric_limits<double>::infinity(),
                           9223372036854775808.0 /* 2^63 */};
  struct Case {
    std::string name;
    GroupRule rule;
    bool member_metric;  // fed as every member's value, else as source "q"
    MetricKind kind;
    double sane;  // a value that acts
  };
  auto source_rule = [](Comparison cmp, double threshold, bool up) {
    GroupRule r = CpuRule(1, 10);
    r.scale_up.when.clear();
    r.scale_down.when.clear();
    (up ? r.scale_up : r.scale_down)
        .when.push_back(Cond(MetricKind::kSource, cmp, threshold, 0, Aggregate::kAvg, "q"));
    return r;
  };
  auto member_rule = [](MetricKind kind, Comparison cmp, double threshold, Aggregate agg, bool up) {
    GroupRule r = CpuRule(1, 10);
    r.scale_up.when.clear();
    r.scale_down.when.clear();
    (up ? r.scale_up : r.scale_down).when.push_back(Cond(kind, cmp, threshold, 0, agg));
    return r;
  };
  auto target_rule = [](MetricKind kind, double per_member) {
    GroupRule r = CpuRule(1, 10);
    r.scale_up.when.clear();
    r.scale_down.when.clear();
    r.target = Target(kind, per_member, kind == MetricKind::kSource ? "q" : "");
    return r;
  };
  std::vector<Case> cases;
  for (MetricKind kind : {MetricKind::kCpu, MetricKind::kMemory}) {
    const std::string k = kind == MetricKind::kCpu ? "cpu" : "memory";
    for (Aggregate agg : {Aggregate::kAvg, Aggregate::kMax, Aggregate::kMin, Aggregate::kSum}) {
      cases.push_back({k + " above " + AggregateName(agg),
                       member_rule(kind, Comparison::kAbove, 0.8, agg, true), true, kind, 0.9});
      cases.push_back({k + " below " + AggregateName(agg),
                       member_rule(kind, Comparison::kBelow, 0.2, agg, false), true, kind, 0.05});
    }
    cases.push_back({k + " target", target_rule(kind, 0.5), true, kind, 0.9});
  }
  cases.push_back({"source above", source_rule(Comparison::kAbove, 100, true), false,
                   MetricKind::kSource, 1000});
  cases.push_back(
      {"source below", source_rule(Comparison::kBelow, 20, false), false, MetricKind::kSource, 1});
  cases.push_back({"source per_member_above", source_rule(Comparison::kPerMemberAbove, 100, true),
                   false, MetricKind::kSource, 1000});
  cases.push_back({"source per_member_below", source_rule(Comparison::kPerMemberBelow, 20, false),
                   false, MetricKind::kSource, 3});
  cases.push_back(
      {"source target", target_rule(MetricKind::kSource, 50), false, MetricKind::kSource, 1000});

  auto members = [](MetricKind kind, std::optional<double> v) {
    std::vector<DomainStats> doms = Running(3, 0.5);
    for (DomainStats& d : doms) {
      if (kind == MetricKind::kCpu) d.cpu_utilization = v;
      if (kind == MetricKind::kMemory) d.memory_utilization = v;
    }
    return doms;
  };
  int checked = 0;
  for (const Case& c : cases) {
    for (std::optional<double> value : {std::optional<double>(c.sane)}) {
      Harness h{c.rule};
      h.rule.scale_up.cooldown = h.rule.scale_down.cooldown = seconds(0);
      if (!c.member_metric) h.sources["q"].value = value;
      auto e = h.StepAt(0, members(c.kind, c.member_metric ? value : 0.5));
      EXPECT_FALSE(e.decision.actions.empty()) << c.name << ": the control must act";
    }
    for (double v : absurd) {
      Harness h{c.rule};
      h.rule.scale_up.cooldown = h.rule.scale_down.cooldown = seconds(0);
      if (!c.member_metric) h.sources["q"].value = v;
      for (int t = 0; t <= 60; t += 10) {
        auto e = h.StepAt(t, members(c.kind, c.member_metric ? std::optional<double>(v) : 0.5));
        EXPECT_TRUE(e.decision.actions.empty())
            << c.name << " fed " << v << ": " << e.decision.reason;
        EXPECT_EQ(e.decision.held_by, HeldBy::kMissingData) << c.name << " fed " << v;
        EXPECT_EQ(e.decision.desired, 3) << c.name << " fed " << v;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size()) * 5 * 7);
}

TEST(Evaluator, ImplausibleReadingsSayWhy) {
  EXPECT_EQ(ImplausibleReading(0.5, ReadingUse::kUtilization), std::nullopt);
  EXPECT_EQ(ImplausibleReading(1.0, ReadingUse::kUtilization), std::nullopt);
  EXPECT_EQ(*ImplausibleReading(1.5, ReadingUse::kUtilization), "is 1.5, outside 0..1");
  EXPECT_EQ(*ImplausibleReading(-500, ReadingUse::kCount), "is -500, negative");
  EXPECT_EQ(*ImplausibleReading(std::nan(""), ReadingUse::kCount), "is not a finite number");
  EXPECT_EQ(ImplausibleReading(9007199254740992.0, ReadingUse::kCount), std::nullopt);
  EXPECT_EQ(*ImplausibleReading(1e300, ReadingUse::kCount), "is 1e+300, beyond 2^53");
}

TEST(Evaluator, ClampedSizeIsOverflowSafe) {
  EXPECT_EQ(ClampedSize(1e300, 0, 6), 6);
  EXPECT_EQ(ClampedSize(-1e300, 1, 6), 1);
  EXPECT_EQ(ClampedSize(std::numeric_limits<double>::infinity(), 0, 6), 6);
  EXPECT_EQ(ClampedSize(std::nan(""), 2, 6), 2);
  EXPECT_EQ(ClampedSize(4, 0, 6), 4);
}

// max: 1000000 and one spike plan at most HPA's default: max(4, 100% of active) per 15 s.
TEST(Evaluator, ARateLimitCapsEachDirection) {
  GroupRule r = CpuRule(1, 1'000'000);
  r.scale_up.cooldown = r.scale_down.cooldown = seconds(0);
  r.target = Target(MetricKind::kSource, 1, "jobs");
  Harness h{r};
  h.sources["jobs"].value = 1e12;
  auto e = h.StepAt(0, Running(3, 0.5));
  EXPECT_EQ(e.decision.actions.size(), 4u) << e.decision.reason;
  e = h.StepAt(5, Running(7, 0.5));  // same 15 s window: 4 used of max(4, 100% of 3)
  EXPECT_EQ(e.decision.held_by, HeldBy::kRateLimit) << e.decision.reason;
  e = h.StepAt(15, Running(7, 0.5));  // a new window: 100% of 7
  EXPECT_EQ(e.decision.actions.size(), 7u) << e.decision.reason;

  h.rule.scale_down.rate_limit = {.members = 1, .percent = 0, .period = seconds(60)};
  h.sources["jobs"].value = 0;
  e = h.StepAt(30, Running(14, 0.5));
  EXPECT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  e = h.StepAt(60, Running(13, 0.5));
  EXPECT_EQ(e.decision.held_by, HeldBy::kRateLimit);
  EXPECT_NE(e.decision.reason.find("scale_down rate limit max(1, 0%) per 1m used up"),
            std::string::npos)
      << e.decision.reason;
}

// A percent-only limit would give 0 of 0 active: at least one member per period.
TEST(Evaluator, ARateLimitAlwaysAllowsOneMember) {
  GroupRule r = CpuRule(2, 5);
  r.scale_up.rate_limit = {.members = 0, .percent = 50, .period = seconds(15)};
  Harness h{r};
  auto e = h.StepAt(0, {});
  EXPECT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  EXPECT_EQ(r.scale_up.rate_limit.Allowed(0, 0, Direction::kUp), 1);
  EXPECT_EQ(r.scale_up.rate_limit.Allowed(10, 0, Direction::kUp), 5);
  EXPECT_EQ(r.scale_up.rate_limit.Allowed(10, 5, Direction::kUp), 0);  // 50% of 5 at the start
}

// After a restart the GroupState is empty; the scale stamps on the members
// still date the last action in each direction.
TEST(Evaluator, CooldownsRunFromScaleStampsAfterARestart) {
  GroupRule r = CpuRule(1, 10);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2)};
  const int64_t t0 = std::chrono::duration_cast<seconds>(T0().wall.time_since_epoch()).count();
  auto members = [&](double cpu, int64_t up_ago, int64_t down_ago) {
    std::vector<DomainStats> doms = Running(2, cpu);
    for (DomainStats& d : doms) d.metadata->created_at_unix = t0 - 86400;
    doms[1].scale_stamp = ScaleStamp{"web", t0 - up_ago, t0 - down_ago};
    return doms;
  };
  Harness down{r};
  auto e = down.StepAt(0, members(0.1, 3600, 30));  // stopped a member 30 s ago
  EXPECT_EQ(e.decision.held_by, HeldBy::kCooldown) << e.decision.reason;
  EXPECT_NE(e.decision.reason.find("1m30s left"), std::string::npos) << e.decision.reason;
  Harness up{r};
  e = up.StepAt(0, members(0.9, 20, 3600));  // started one 20 s ago: up cooldown 60 s
  EXPECT_EQ(e.decision.held_by, HeldBy::kCooldown) << e.decision.reason;
  EXPECT_NE(e.decision.reason.find("40s left"), std::string::npos) << e.decision.reason;
  Harness other_group{r};  // a stamp of another group is not this group's action
  auto doms = members(0.9, 20, 3600);
  doms[1].scale_stamp->group = "api";
  EXPECT_EQ(other_group.StepAt(0, doms).decision.outcome, Outcome::kScaleUp);
  Harness future{r};  // a stamp an hour ahead (the clock went back) is not trusted
  EXPECT_EQ(future.StepAt(0, members(0.9, -3600, 3600)).decision.outcome, Outcome::kScaleUp);
}

// Bounds count every active member: paused ones take room under max.
TEST(Evaluator, PausedMembersCountTowardsMax) {
  GroupRule r = CpuRule(1, 3);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  r.scale_up.cooldown = seconds(0);
  Harness h{r};
  std::vector<DomainStats> doms = Running(2, 0.95);
  doms.push_back(Dom("web-3", DomainState::kPaused, {}, 1003));
  auto e = h.StepAt(0, doms);
  EXPECT_EQ(e.decision.held_by, HeldBy::kBoundMax) << e.decision.reason;
  EXPECT_EQ(e.decision.active, 3);
  EXPECT_EQ(e.decision.by_state_count[static_cast<int>(MemberState::kPaused)], 1);
  const auto j = e.decision.ToJson();
  EXPECT_EQ(j["members"]["paused"], 1);
  EXPECT_EQ(j["members"]["by_state"]["paused"], nlohmann::json::array({"web-3"}));
  EXPECT_EQ(j["members"]["by_state"]["running"], nlohmann::json::array({"web-1", "web-2"}));
}

// FastRule(1, max) with a stabilization window in one direction.
GroupRule Windowed(Direction dir, Duration window, int64_t max) {
  GroupRule r = FastRule(1, max);
  (dir == Direction::kUp ? r.scale_up : r.scale_down).stabilization_window = window;
  return r;
}

// HPA's scale-down stabilization: the group shrinks only to the highest
// recommendation of the window, so a dip shorter than the window changes nothing.
TEST(Evaluator, ScaleDownWaitsForTheWindowsHighestRecommendationToAge) {
  Harness h{Windowed(Direction::kDown, seconds(60), 4)};
  for (int t = 0; t <= 20; t += 10) {
    auto e = h.StepAt(t, Running(3, 0.5));  // nothing wanted: recommends 3
    EXPECT_EQ(e.decision.outcome, Outcome::kNone) << t;
  }
  auto e = h.StepAt(30, Running(3, 0.1));  // recommends 2
  EXPECT_EQ(e.decision.outcome, Outcome::kHeld);
  EXPECT_EQ(e.decision.held_by, HeldBy::kStabilization);
  EXPECT_EQ(e.decision.desired, 2);
  ASSERT_TRUE(e.decision.stabilization);
  const StabilizationReport& s = *e.decision.stabilization;
  EXPECT_EQ(s.direction, Direction::kDown);
  EXPECT_EQ(s.window, seconds(60));
  EXPECT_EQ(s.recommendation, 2);
  EXPECT_EQ(s.stabilized, 3);
  ASSERT_EQ(s.history.size(), 2u);
  EXPECT_EQ(s.history[0], std::make_pair(At(20).wall, int64_t{3}));
  EXPECT_EQ(s.history[1], std::make_pair(At(30).wall, int64_t{2}));
  EXPECT_NE(e.decision.reason.find("scale_down.stabilization_window 1m: its highest "
                                   "recommendation is 3 members"),
            std::string::npos)
      << e.decision.reason;
  const nlohmann::json j = e.decision.ToJson();
  EXPECT_EQ(j["held_by"], "stabilization_window");
  EXPECT_EQ(j["stabilization"]["stabilized"], 3);
  EXPECT_EQ(j["stabilization"]["history"][0]["members"], 3);
  EXPECT_EQ(j["stabilization"]["history"][0]["at"], FormatTime(At(20).wall));

  for (int t = 40; t <= 70; t += 10) {
    e = h.StepAt(t, Running(3, 0.1));
    EXPECT_EQ(e.decision.held_by, HeldBy::kStabilization) << t;
  }
  e = h.StepAt(80, Running(3, 0.1));  // the 3 recommended at 20s is 60s old
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
  EXPECT_EQ(e.decision.desired, 2);
  ASSERT_EQ(e.decision.actions.size(), 1u);
}

// The flapping case of Kubernetes issue 116984: a metric that dips below the
// threshold now and then never shrinks the group, where `for: 0s` alone would.
TEST(Evaluator, ScaleDownWindowRemovesFlapping) {
  for (const bool windowed : {false, true}) {
    GroupRule r = FastRule(1, 4);
    if (windowed) r.scale_down.stabilization_window = seconds(60);
    Harness h{r};
    int scale_downs = 0;
    for (int t = 0; t < 300; t += 10) {
      auto e = h.StepAt(t, Running(3, (t / 10) % 3 == 2 ? 0.1 : 0.5));
      scale_downs += e.decision.outcome == Outcome::kScaleDown;
      if (e.decision.outcome == Outcome::kScaleDown) break;
    }
    EXPECT_EQ(scale_downs, windowed ? 0 : 1) << windowed;
  }
}

TEST(Evaluator, ScaleUpWindowActsOnTheWindowsLowestRecommendation) {
  Harness h{Windowed(Direction::kUp, seconds(30), 5)};
  auto e = h.StepAt(0, Running(2, 0.9));  // a fresh window starts at the active count
  EXPECT_EQ(e.decision.held_by, HeldBy::kStabilization);
  ASSERT_TRUE(e.decision.stabilization);
  EXPECT_EQ(e.decision.stabilization->direction, Direction::kUp);
  EXPECT_EQ(e.decision.stabilization->history.front().second, 2);
  EXPECT_NE(e.decision.reason.find("its lowest recommendation is 2 members"), std::string::npos)
      << e.decision.reason;
  for (int t = 10; t <= 20; t += 10)
    EXPECT_EQ(h.StepAt(t, Running(2, 0.9)).decision.held_by, HeldBy::kStabilization) << t;
  e = h.StepAt(30, Running(2, 0.9));  // the start of the window has aged out
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(e.decision.desired, 3);
}

// Down after a restart: the state is fresh, and the window starts full of the
// current size instead of empty, so a restart cannot skip it.
TEST(Evaluator, FreshStateWaitsAWholeScaleDownWindow) {
  Harness h{Windowed(Direction::kDown, seconds(60), 4)};
  for (int t = 0; t < 60; t += 10)
    EXPECT_EQ(h.StepAt(t, Running(3, 0.1)).decision.held_by, HeldBy::kStabilization) << t;
  EXPECT_EQ(h.StepAt(60, Running(3, 0.1)).decision.outcome, Outcome::kScaleDown);
}

TEST(Evaluator, WindowNarrowsAChangeToItsExtreme) {
  // Target tracking wants 6, then 4: the up window's lowest (4) is what is acted on.
  GroupRule r = FastRule(1, 10);
  r.scale_up.when.clear();
  r.scale_down.when.clear();
  r.target = TargetTracking{{MetricKind::kSource, "jobs"}, 10, 0.1};
  r.scale_up.stabilization_window = seconds(15);
  Harness h{r};
  h.sources["jobs"].value = 20;  // 2 members: no change
  EXPECT_EQ(h.StepAt(0, Running(2, 0.5)).decision.outcome, Outcome::kNone);
  h.sources["jobs"].value = 60;
  EXPECT_EQ(h.StepAt(10, Running(2, 0.5)).decision.held_by, HeldBy::kStabilization);
  h.sources["jobs"].value = 40;
  auto e = h.StepAt(20, Running(2, 0.5));  // window: 6 (10s), 4 (20s); 2 (0s) aged out
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(e.decision.desired, 4);
  ASSERT_TRUE(e.decision.stabilization);
  EXPECT_EQ(e.decision.stabilization->recommendation, 4);
  EXPECT_EQ(e.decision.stabilization->stabilized, 4);
}

// The window records target tracking's size before the `step` cap, which
// applies after it (as HPA's policies do): each step does not wait a window.
TEST(Evaluator, StepCapAppliesAfterTheWindow) {
  GroupRule r = FastRule(1, 10);
  r.scale_up.when.clear();
  r.scale_down.when.clear();
  r.target = TargetTracking{{MetricKind::kSource, "jobs"}, 10, 0.1};
  r.scale_down.step = Step{false, 1};
  r.scale_down.step_set = true;
  r.scale_down.stabilization_window = seconds(20);
  Harness h{r};
  h.sources["jobs"].value = 10;  // 1 member wanted, 4 active
  EXPECT_EQ(h.StepAt(0, Running(4, 0.5)).decision.held_by, HeldBy::kStabilization);
  EXPECT_EQ(h.StepAt(10, Running(4, 0.5)).decision.held_by, HeldBy::kStabilization);
  auto e = h.StepAt(20, Running(4, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
  EXPECT_EQ(e.decision.desired, 3);
  ASSERT_TRUE(e.decision.stabilization);
  EXPECT_EQ(e.decision.stabilization->recommendation, 1);
  e = h.StepAt(30, Running(3, 0.5));  // the window has wanted 1 throughout
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
  EXPECT_EQ(e.decision.desired, 2);
}

TEST(Evaluator, RestoringBoundsIsNeverHeldByAWindow) {
  Harness h{Windowed(Direction::kDown, seconds(600), 2)};
  auto e = h.StepAt(0, Running(4, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleDown);
  EXPECT_EQ(e.decision.desired, 2);
  EXPECT_FALSE(e.decision.stabilization);
}

TEST(Evaluator, MissingDataRecommendsNothing) {
  Harness h{Windowed(Direction::kDown, seconds(30), 4)};
  h.StepAt(0, Running(3, 0.5));
  // No cpu samples for 40s: held by missing data, and nothing recorded.
  for (int t = 10; t <= 40; t += 10) {
    auto members = Running(3, 0.5);
    for (auto& m : members) m.cpu_utilization.reset();
    EXPECT_EQ(h.StepAt(t, members).decision.held_by, HeldBy::kMissingData) << t;
  }
  // The 3 recommended at 0s has aged out: low cpu now scales down at once.
  EXPECT_EQ(h.StepAt(50, Running(3, 0.1)).decision.outcome, Outcome::kScaleDown);
}

// refresh: members made from an older template are swapped one at a time.

// Applies a decision's actions to `doms` as the actuator would: a create adds a
// running member from the current template.
void Apply(const Decision& d, const GroupRule& rule, std::vector<DomainStats>& doms, int& next_n) {
  for (const ActionRecord& a : d.actions) {
    const Operation& op = a.operation;
    if (op.kind == Operation::Kind::kCreate) {
      const int n = next_n++;
      doms.push_back(Made("web-" + std::to_string(n), DomainState::kRunning, 2000 + n,
                          rule.template_doc->content_hash()));
    } else if (op.kind == Operation::Kind::kDelete) {
      std::erase_if(doms, [&](const DomainStats& x) { return x.name == op.domain; });
    } else if (op.kind == Operation::Kind::kStop) {
      for (DomainStats& x : doms)
        if (x.name == op.domain) x.state = DomainState::kShutoff;
    }
  }
}

TEST(EvaluatorRefresh, ReplacesOneAtATimeOldestFirstAndNeverRunsFewerThanDesired) {
  Harness h{RefreshRule()};
  std::vector<DomainStats> doms;
  for (int i = 1; i <= 3; ++i)
    doms.push_back(Made("web-" + std::to_string(i), DomainState::kRunning, 1000 + i, "old"));
  int next_n = 4;
  std::vector<std::string> replaced;
  for (int64_t s = 0; s < 300; s += 10) {
    auto e = h.StepAt(s, doms);
    const Decision& d = e.decision;
    ASSERT_TRUE(d.refresh);
    EXPECT_LE(d.actions.size(), 1u) << d.reason;
    if (!d.actions.empty() && d.actions[0].operation.kind == Operation::Kind::kDelete)
      replaced.push_back(d.actions[0].operation.domain);
    Apply(d, h.rule, doms, next_n);
    int64_t running = 0;
    for (const DomainStats& x : doms) running += x.state == DomainState::kRunning;
    EXPECT_GE(running, 3) << "at " << s << ": " << d.reason;  // surge first: never below 3
    EXPECT_LE(running, 4) << "at " << s << ": " << d.reason;  // one swap at a time
  }
  EXPECT_EQ(replaced, (std::vector<std::string>{"web-1", "web-2", "web-3"}));
  auto e = h.StepAt(300, doms);
  EXPECT_EQ(e.decision.refresh->due, 0);
  EXPECT_TRUE(e.decision.actions.empty());
  EXPECT_EQ(doms.size(), 3u);
}

TEST(EvaluatorRefresh, DecisionShowsProgressAndTheSwap) {
  Harness h{RefreshRule()};
  std::vector<DomainStats> doms = {Made("web-1", DomainState::kRunning, 1001, "old"),
                                   Made("web-2", DomainState::kRunning, 1002, "old")};
  auto e = h.StepAt(0, doms);
  ASSERT_EQ(e.decision.actions.size(), 1u);
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kCreate);
  EXPECT_EQ(e.decision.replacing, "web-1");
  EXPECT_EQ(e.decision.refresh->due, 2);
  EXPECT_EQ(e.decision.refresh->max_unavailable, 1);
  EXPECT_EQ(e.decision.refresh->template_hash, h.rule.template_doc->content_hash());
  const nlohmann::json j = e.decision.ToJson();
  EXPECT_EQ(j["refresh"]["due"], 2);
  EXPECT_EQ(j["refresh"]["replacing"], "web-1");
  EXPECT_NE(e.decision.reason.find("refresh web-1"), std::string::npos) << e.decision.reason;
}

TEST(EvaluatorRefresh, AdoptedMembersCopiesAndMembersWithoutAHashAreNeverRefreshed) {
  Harness h{RefreshRule()};
  DomainStats copy = Made("web-2", DomainState::kRunning, 1002, "old");
  copy.uuid = "uuid-of-the-copy";  // its metadata records the original's UUID
  DomainStats no_hash = Made("web-3", DomainState::kRunning, 1003, "");
  std::vector<DomainStats> doms = {Dom("web-1", DomainState::kRunning, 0.5), copy, no_hash};
  for (int64_t s = 0; s < 60; s += 10) {
    auto e = h.StepAt(s, doms);
    EXPECT_TRUE(e.decision.actions.empty()) << e.decision.reason;
    EXPECT_EQ(e.decision.refresh->due, 0);
    EXPECT_EQ(e.decision.refresh->without_hash, 1);
  }
}

TEST(EvaluatorRefresh, WithoutTheKeyNothingIsRefreshed) {
  GroupRule r = RefreshRule();
  r.refresh.reset();
  Harness h{r};
  auto e = h.StepAt(0, {Made("web-1", DomainState::kRunning, 1001, "old")});
  EXPECT_TRUE(e.decision.actions.empty());
  EXPECT_FALSE(e.decision.refresh);
}

TEST(EvaluatorRefresh, StaleStoppedMembersAreDeletedOnlyWhenOwnedAndNeverStarted) {
  Harness h{RefreshRule()};
  const std::string current = h.rule.template_doc->content_hash();
  DomainStats adopted = Dom("web-4", DomainState::kShutoff, {});
  std::vector<DomainStats> doms = {Made("web-1", DomainState::kRunning, 1001, current),
                                   Made("web-2", DomainState::kShutoff, 1002, "old"),
                                   Made("web-3", DomainState::kShutoff, 1003, current), adopted};
  auto e = h.StepAt(0, doms);
  ASSERT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kDelete);
  EXPECT_EQ(e.decision.actions[0].operation.domain, "web-2");

  // Scale-up starts the current stopped member, then creates: never the stale one.
  RuleSet rules;
  rules.groups.push_back(h.rule);
  auto snap = Snap(At(10), doms);
  Plan plan = PlanScaleUp(h.rule, IndexMembers(rules, snap.get())[0], 3);
  ASSERT_EQ(plan.operations.size(), 3u);
  EXPECT_EQ(plan.operations[0].kind, Operation::Kind::kStart);
  EXPECT_EQ(plan.operations[0].domain, "web-3");
  EXPECT_EQ(plan.operations[1].domain, "web-4");  // adopted: started, never refreshed
  EXPECT_EQ(plan.operations[2].kind, Operation::Kind::kCreate);
}

TEST(EvaluatorRefresh, NoSwapBeginsDuringCooldownInFlightAScaleActionOrAStaleSnapshot) {
  std::vector<DomainStats> doms = {Made("web-1", DomainState::kRunning, 1001, "old"),
                                   Made("web-2", DomainState::kRunning, 1002, "old")};
  {
    Harness h{RefreshRule()};
    h.state.last_scale_up = MonoAt(-10);  // scale_up.cooldown is 60s
    auto e = h.StepAt(0, doms);
    EXPECT_TRUE(e.decision.actions.empty()) << e.decision.reason;
    e = h.StepAt(60, doms);  // scale_down.cooldown (120s) runs from the scale-up too
    EXPECT_TRUE(e.decision.actions.empty()) << e.decision.reason;
    e = h.StepAt(120, doms);
    EXPECT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  }
  {
    Harness h{RefreshRule()};
    h.state.in_flight = true;
    auto e = h.Step(Snap(At(0), doms), At(0));
    EXPECT_TRUE(e.decision.actions.empty());
    EXPECT_EQ(e.decision.held_by, HeldBy::kInFlight);
  }
  {
    Harness h{RefreshRule()};
    auto e = h.Step(Snap(At(0), doms), At(100));  // 100s old
    EXPECT_TRUE(e.decision.actions.empty());
    EXPECT_EQ(e.decision.held_by, HeldBy::kStaleSnapshot);
  }
  {
    Harness h{RefreshRule()};
    std::vector<DomainStats> busy = doms;
    for (DomainStats& d : busy) d.cpu_utilization = 0.95;
    h.StepAt(0, busy);
    auto e = h.StepAt(30, busy);  // scale-up fires: it wins, refresh waits
    ASSERT_EQ(e.decision.outcome, Outcome::kScaleUp);
    EXPECT_TRUE(e.decision.replacing.empty());
  }
}

// Evaluates `members` (health and states as given) once with `state`.
Evaluation EvaluateMembers(const GroupRule& rule, Membership members, const GroupState& state,
                           int64_t s) {
  auto snap = Snap(At(s), {});
  SourceReadings none;
  return Evaluate(
      {.rule = rule, .members = members, .snapshot = snap.get(), .sources = none, .now = At(s)},
      state);
}

Membership MembersOf(const GroupRule& rule, std::vector<DomainStats> doms) {
  RuleSet rules;
  rules.groups.push_back(rule);
  auto snap = Snap(T0(), std::move(doms));
  return IndexMembers(rules, snap.get())[0];
}

// A refresh swap of `doms` (every member healthy) begun: the state after its
// first evaluation, and the membership once its new member `name` runs, healthy too.
struct SwapBegun {
  GroupState state;
  Membership members;
};
SwapBegun BeginSwap(const GroupRule& rule, std::vector<DomainStats> doms, const std::string& name) {
  Membership m = MembersOf(rule, doms);
  for (Member& x : m.members) x.health = "healthy";
  Evaluation e = EvaluateMembers(rule, m, GroupState{}, 0);
  EXPECT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  e.next.in_flight = false;
  doms.push_back(Made(name, DomainState::kRunning, 2000, rule.template_doc->content_hash()));
  m = MembersOf(rule, doms);
  for (Member& x : m.members) x.health = "healthy";
  return {e.next, m};
}

TEST(EvaluatorRefresh, TheOldMemberGoesOnlyOnceItsReplacementIsHealthyAndEnoughOthersAreUp) {
  for (int64_t max_unavailable : {1, 2}) {
    GroupRule rule = RefreshRule(max_unavailable);
    std::vector<DomainStats> doms;
    for (int i = 1; i <= 3; ++i)
      doms.push_back(Made("web-" + std::to_string(i), DomainState::kRunning, 1000 + i, "old"));
    auto [state, m] = BeginSwap(rule, doms, "web-4");
    m.members[3].health = "grace";  // web-4 not checked yet
    Evaluation e = EvaluateMembers(rule, m, state, 10);
    EXPECT_TRUE(e.decision.actions.empty());
    EXPECT_NE(e.decision.reason.find("waiting for the replacement"), std::string::npos)
        << e.decision.reason;

    m.members[3].health = "healthy";
    m.members[1].health = m.members[2].health = "failing";  // web-2 and web-3 fail their checks
    e = EvaluateMembers(rule, m, e.next, 20);
    // Removing web-1 leaves 1 of 3 up: 2 short, allowed only with max_unavailable 2.
    if (max_unavailable == 1) {
      EXPECT_TRUE(e.decision.actions.empty()) << e.decision.reason;
      EXPECT_NE(e.decision.reason.find("max_unavailable 1"), std::string::npos);
    } else {
      ASSERT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
      EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kDelete);
      EXPECT_EQ(e.decision.actions[0].operation.domain, "web-1");
    }
  }
}

TEST(EvaluatorRefresh, AtMaxTheSwapsOwnMaxPlusOneDoesNotScaleTheNewMemberAway) {
  GroupRule rule = RefreshRule();
  rule.max = 2;
  auto [state, m] = BeginSwap(rule,
                              {Made("web-1", DomainState::kRunning, 1001, "old"),
                               Made("web-2", DomainState::kRunning, 1002, "old")},
                              "web-3");
  m.members[2].health = "grace";  // 3 active at max 2, the new member not healthy yet
  Evaluation e = EvaluateMembers(rule, m, state, 10);
  EXPECT_TRUE(e.decision.actions.empty()) << e.decision.reason;
  EXPECT_EQ(e.decision.replacing, "web-1");
  m.members[2].health = "healthy";
  e = EvaluateMembers(rule, m, e.next, 20);
  ASSERT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kDelete);
  EXPECT_EQ(e.decision.actions[0].operation.domain, "web-1");
}

TEST(EvaluatorRefresh, AHealthReplacementWaitsForTheRefreshSwapUnderWay) {
  GroupRule rule = RefreshRule();
  rule.health = HealthPolicy{};
  rule.health->replace = true;
  const std::string current = rule.template_doc->content_hash();
  auto [state, m] = BeginSwap(rule,
                              {Made("web-1", DomainState::kRunning, 1001, "old"),
                               Made("web-2", DomainState::kRunning, 1002, current)},
                              "web-3");
  m.members[1].state = MemberState::kUnhealthy;  // web-2 fails meanwhile
  --m.running;
  Evaluation e = EvaluateMembers(rule, m, state, 10);
  // The refresh swap finishes first (web-3 is up): web-1 goes, no second replacement yet.
  ASSERT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kDelete);
  EXPECT_EQ(e.decision.actions[0].operation.domain, "web-1");
}

TEST(EvaluatorRefresh, AGroupHeldAtABoundByItsConditionsIsRefreshed) {
  GroupRule rule = RefreshRule();
  rule.min = 0;
  rule.scale_up.when.clear();
  rule.scale_down.when = {
      Cond(MetricKind::kSource, Comparison::kPerMemberBelow, 20, 0, Aggregate::kAvg, "q")};
  Harness h{rule};
  h.sources["q"].value = 0;  // scale down, at min 0 already
  auto e = h.StepAt(0, {Made("web-1", DomainState::kShutoff, 1001, "old")});
  ASSERT_EQ(e.decision.direction, Direction::kDown) << e.decision.reason;
  ASSERT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kDelete);
}

TEST(EvaluatorRefresh, ASwapOfAKindAReloadTurnedOffIsDropped) {
  GroupRule rule = RefreshRule();
  auto [state, m] = BeginSwap(rule, {Made("web-1", DomainState::kRunning, 1001, "old")}, "web-2");
  ASSERT_TRUE(state.replacing);
  rule.refresh.reset();
  rule.health = HealthPolicy{};
  rule.health->replace = true;
  m.members[1].state = MemberState::kUnhealthy;  // web-2 fails: replaced, not blocked
  --m.running;
  Evaluation e = EvaluateMembers(rule, m, state, 10);
  ASSERT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  EXPECT_EQ(e.decision.replacing, "web-2");
  EXPECT_FALSE(e.next.replacing->refresh);
}

TEST(EvaluatorRefresh, AReplacementThatNeverCameIsPlannedAgain) {
  Harness h{RefreshRule()};
  std::vector<DomainStats> doms = {Made("web-1", DomainState::kRunning, 1001, "old")};
  auto e = h.StepAt(0, doms);
  ASSERT_EQ(e.decision.actions.size(), 1u);
  // The create failed: no new member. The next pass creates again instead of waiting forever.
  e = h.StepAt(10, doms);
  ASSERT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kCreate);
}

// A scale-down its stabilization window holds is not due: the refresh goes on.
TEST(EvaluatorRefresh, AScaleDownHeldByItsWindowDoesNotBlockTheRefresh) {
  GroupRule rule = RefreshRule();
  rule.scale_down.cooldown = seconds(0);
  rule.scale_down.when = {
      Cond(MetricKind::kSource, Comparison::kPerMemberBelow, 20, 0, Aggregate::kAvg, "q")};
  rule.scale_down.stabilization_window = seconds(600);
  Harness h{rule};
  h.sources["q"].value = 0;  // wants fewer members, for less than the window
  auto e = h.StepAt(0, {Made("web-1", DomainState::kRunning, 1001, "old"),
                        Made("web-2", DomainState::kRunning, 1002, "old")});
  ASSERT_EQ(e.decision.actions.size(), 1u) << e.decision.reason;
  EXPECT_EQ(e.decision.actions[0].operation.kind, Operation::Kind::kCreate);
  EXPECT_EQ(e.decision.replacing, "web-1");
}

// forecast: a group tracking 50 jobs per member, with two days of history in
// which the queue stood at 250 from 5m to 20m after this time of day, else 50.
GroupRule ForecastRule(ForecastMode mode) {
  GroupRule r = CpuRule(0, 6);
  r.scale_up.when.clear();
  r.scale_down.when.clear();
  r.scale_up.cooldown = r.scale_down.cooldown = seconds(0);
  r.target = Target(MetricKind::kSource, 50, "jobs");
  r.forecast = ForecastPolicy{
      .source = "jobs", .horizon = std::chrono::minutes(15), .mode = mode, .line = 7};
  return r;
}

std::shared_ptr<SourceHistory> TwoDaysWithAPeakAhead(Instant now, double peak = 250) {
  auto h = std::make_shared<SourceHistory>();
  const double end = std::chrono::duration<double>(now.wall.time_since_epoch()).count();
  for (double t = end - 2 * 86400; t < end; t += 60) {
    const double into_day = std::fmod(t - (end - 2 * 86400), 86400);
    h->samples.emplace_back(t, into_day >= 300 && into_day < 1200 ? peak : 50);
  }
  h->fetched_at = now.wall;
  return h;
}

TEST(EvaluatorForecast, ForecastOnlyReportsTheForecastAndDoesNotAct) {
  Harness h{ForecastRule(ForecastMode::kForecastOnly)};
  h.sources["jobs"].value = 50;
  h.sources["jobs"].history = TwoDaysWithAPeakAhead(At(0));
  auto e = h.StepAt(0, Running(1, 0.5));
  ASSERT_TRUE(e.decision.forecast.has_value());
  const ForecastReport& f = *e.decision.forecast;
  ASSERT_TRUE(f.members.has_value()) << f.unavailable;
  EXPECT_EQ(*f.members, 5);  // ceil(250 / 50)
  EXPECT_FALSE(f.applied);
  EXPECT_NE(f.model.find("daily 2 days"), std::string::npos) << f.model;
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
  EXPECT_TRUE(e.decision.actions.empty());
  EXPECT_EQ(e.decision.ToJson()["forecast"]["members"], 5);
  EXPECT_EQ(e.decision.ToJson()["forecast"]["mode"], "forecast_only");
}

TEST(EvaluatorForecast, ScaleAheadScalesToTheForecastBeforeTheLoad) {
  Harness h{ForecastRule(ForecastMode::kScaleAhead)};
  h.sources["jobs"].value = 50;
  h.sources["jobs"].history = TwoDaysWithAPeakAhead(At(0));
  auto e = h.StepAt(0, Running(1, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kScaleUp);
  EXPECT_EQ(e.decision.desired, 5);
  EXPECT_EQ(e.decision.actions.size(), 4u);
  EXPECT_TRUE(e.decision.forecast->applied);
  EXPECT_NE(e.decision.reason.find("scale_ahead: 1 now, the forecast for the next 15m asks for 5"),
            std::string::npos)
      << e.decision.reason;
  // A current load above the forecast wins: max(recommendation, forecast).
  h.sources["jobs"].value = 300;
  e = h.StepAt(10, Running(5, 0.5));
  EXPECT_EQ(e.decision.desired, 6);
  EXPECT_FALSE(e.decision.forecast->applied);
}

TEST(EvaluatorForecast, ScaleAheadStaysWithinBoundsAndKeepsAForecastSizeFromShrinking) {
  Harness h{ForecastRule(ForecastMode::kScaleAhead)};
  h.sources["jobs"].value = 50;
  h.sources["jobs"].history = TwoDaysWithAPeakAhead(At(0), 1e12);
  auto e = h.StepAt(0, Running(2, 0.5));
  EXPECT_EQ(*e.decision.forecast->members, 6);  // within max 6
  EXPECT_EQ(e.decision.desired, 6);
  // 6 running, the load asks for 1 and the forecast for 6: no scale-down.
  e = h.StepAt(10, Running(6, 0.5));
  EXPECT_EQ(e.decision.outcome, Outcome::kNone) << e.decision.reason;
}

TEST(EvaluatorForecast, ScaleAheadNeverActsOnTheForecastAloneWhenTheLoadIsMissing) {
  Harness h{ForecastRule(ForecastMode::kScaleAhead)};
  h.sources["jobs"].error = "timeout";
  h.sources["jobs"].history = TwoDaysWithAPeakAhead(At(0));
  auto e = h.StepAt(0, Running(1, 0.5));
  EXPECT_EQ(e.decision.held_by, HeldBy::kMissingData);
  EXPECT_TRUE(e.decision.actions.empty());
  EXPECT_EQ(*e.decision.forecast->members, 5);
  EXPECT_FALSE(e.decision.forecast->applied);
}

TEST(EvaluatorForecast, NoHistoryAStaleOneOrLessThanADayGivesNoForecastAndTheLoadAlone) {
  Harness h{ForecastRule(ForecastMode::kScaleAhead)};
  h.sources["jobs"].value = 150;
  h.sources["jobs"].history_error = "connection: refused";
  auto e = h.StepAt(0, Running(1, 0.5));
  EXPECT_FALSE(e.decision.forecast->members.has_value());
  EXPECT_EQ(e.decision.forecast->unavailable, "no history fetched yet: connection: refused");
  EXPECT_EQ(e.decision.desired, 3);  // the target alone

  auto old = TwoDaysWithAPeakAhead(At(0));
  old->fetched_at = At(-31 * 60).wall;
  h.sources["jobs"].history = old;
  e = h.StepAt(10, Running(3, 0.5));
  EXPECT_NE(e.decision.forecast->unavailable.find("history fetched 31m10s ago, more than 30m"),
            std::string::npos)
      << e.decision.forecast->unavailable;
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);

  auto short_history = std::make_shared<SourceHistory>();
  const double end = std::chrono::duration<double>(At(20).wall.time_since_epoch()).count();
  for (double t = end - 20 * 3600; t < end; t += 60) short_history->samples.emplace_back(t, 500);
  short_history->fetched_at = At(20).wall;
  h.sources["jobs"].history = short_history;
  e = h.StepAt(20, Running(3, 0.5));
  EXPECT_EQ(e.decision.forecast->unavailable, "the history covers less than a day before now");
  EXPECT_EQ(e.decision.outcome, Outcome::kNone);
}

}  // namespace
}  // namespace virtscale::autoscale
