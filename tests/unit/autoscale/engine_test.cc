#include "autoscale/engine.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>

#include "engine_test_util.h"

namespace virtscale::autoscale {
namespace {

using namespace testing;  // NOLINT: test builders

struct EngineTest : ::testing::Test {
  FakeActuator actuator;
  FakeClock clock{At(0)};
  EngineOptions Options(bool dry_run = false) {
    EngineOptions o;
    o.dry_run = dry_run;
    o.change_history = 20;
    o.evaluation_history = 50;
    o.retry_backoff = seconds(20);
    o.clock = &clock;
    return o;
  }
  // Ticks at `s` with the clock at `s`, then lets the worker finish.
  void TickAt(Engine& e, int64_t s, std::vector<DomainStats> doms, SourceReadings src = {}) {
    clock.Set(At(s));
    e.Tick(Snap(At(s), std::move(doms)), src, At(s));
    e.WaitIdle();
  }
};

TEST_F(EngineTest, ExecutesPlannedOperationsAndRecordsResults) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0,
         {Dom("web-1", DomainState::kRunning, 0.9, 1), Dom("web-2", DomainState::kShutoff, {}, 2)});
  auto calls = actuator.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].kind, Operation::Kind::kStart);
  EXPECT_EQ(calls[0].domain, "web-2");

  auto decisions = engine.DecisionsJson(10);
  ASSERT_EQ(decisions.size(), 1u);
  EXPECT_EQ(decisions[0]["outcome"], "scale_up");
  EXPECT_EQ(decisions[0]["result"], "ok");
  EXPECT_EQ(decisions[0]["actions"][0]["kind"], "start");
  EXPECT_EQ(decisions[0]["actions"][0]["domain"], "web-2");
  EXPECT_EQ(decisions[0]["actions"][0]["result"], "ok");
  EXPECT_EQ(decisions[0]["metrics"]["cpu:avg"], 0.9);
  EXPECT_EQ(decisions[0]["conditions"][0]["state"], "firing");

  auto groups = engine.GroupsJson();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0]["name"], "web");
  EXPECT_EQ(groups[0]["running"], 1);
  EXPECT_EQ(groups[0]["members"].size(), 2u);
  EXPECT_EQ(groups[0]["last_decision"]["result"], "ok");
  EXPECT_EQ(groups[0]["last_outcome"], "scale_up: ok");
  EXPECT_EQ(groups[0]["desired"], 2);
  EXPECT_EQ(groups[0]["scale_down_action"], "stop");
  EXPECT_EQ(groups[0]["scale_down_order"], "newest");
  EXPECT_EQ(groups[0]["stabilization_window"], nlohmann::json({{"up", "0s"}, {"down", "0s"}}));
}

TEST_F(EngineTest, GroupsShowTheBoundsInForceAndTheNextWindow) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule(1, 4);
  r.schedules = {NightWindow(3, std::nullopt)};
  engine.SetRules(Rules({r}));
  TickAt(engine, 0, Running(1, 0.5));
  nlohmann::json g = engine.GroupsJson()[0];
  EXPECT_EQ(g["effective_min"], 1);
  EXPECT_EQ(g["effective_max"], 4);
  EXPECT_TRUE(g["schedule"].is_null());
  EXPECT_EQ(g["next_schedule"], "2023-11-14T23:00:00.000Z");

  TickAt(engine, 2800, Running(1, 0.5));
  g = engine.GroupsJson()[0];
  EXPECT_EQ(g["min"], 1);  // the group's own
  EXPECT_EQ(g["effective_min"], 3);
  EXPECT_EQ(g["effective_max"], 4);
  EXPECT_EQ(g["schedule"]["cron"], "0 23 * * *");
  EXPECT_EQ(g["schedule"]["ends_at"], "2023-11-15T00:00:00.000Z");
  EXPECT_EQ(g["next_schedule"], "2023-11-15T23:00:00.000Z");
  EXPECT_EQ(g["last_decision"]["schedule"]["line"], 9);
  EXPECT_EQ(g["last_decision"]["min"], 3);
  EXPECT_EQ(actuator.calls().size(), 2u);  // restoring the window's min: 1 -> 3
}

// An actuator whose operations on group "web" block until released.
class GatedActuator : public Actuator {
 public:
  OperationResult Execute(const Operation& op) override {
    std::unique_lock lock(mu_);
    if (op.group == "web") cv_.wait(lock, [this] { return open_; });
    done_.push_back(op.group);
    cv_.notify_all();
    OperationResult r;
    r.ok = true;
    r.domain = op.group + "-new";
    return r;
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits up to 30 s for an operation of `group` to have finished.
  bool WaitDone(const std::string& group) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] {
      return std::find(done_.begin(), done_.end(), group) != done_.end();
    });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::vector<std::string> done_;
};

TEST_F(EngineTest, ASlowActionInOneGroupDoesNotHoldAnother) {
  GatedActuator gated;
  Engine engine(gated, Options());
  GroupRule web = FastRule();
  GroupRule api = FastRule();
  api.name = "api";
  api.name_prefix = "api-";
  engine.SetRules(Rules({web, api}));
  engine.Tick(Snap(At(0), {Dom("web-1", DomainState::kRunning, 0.9, 1, "web"),
                           Dom("api-1", DomainState::kRunning, 0.9, 1, "api")}),
              {}, At(0));
  // web's create is blocked; api's runs meanwhile.
  EXPECT_TRUE(gated.WaitDone("api"));
  gated.Open();
  EXPECT_TRUE(gated.WaitDone("web"));
  engine.WaitIdle();
  auto groups = engine.GroupsJson();
  ASSERT_EQ(groups.size(), 2u);
  for (const auto& g : groups) EXPECT_EQ(g["last_decision"]["result"], "ok") << g.dump();
}

TEST_F(EngineTest, DoesNotActTwiceOnASnapshotOlderThanTheAction) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule();
  r.interval = seconds(1);
  engine.SetRules(Rules({r}));
  auto stale = Snap(At(0), Running(1, 0.9));
  clock.Set(At(0));
  engine.Tick(stale, {}, At(0));
  engine.WaitIdle();
  ASSERT_EQ(actuator.calls().size(), 1u);
  clock.Set(At(5));
  engine.Tick(stale, {}, At(5));  // same snapshot: still shows 1 running
  engine.WaitIdle();
  EXPECT_EQ(actuator.calls().size(), 1u);
  EXPECT_EQ(engine.DecisionsJson(1)[0]["held_by"], "awaiting_snapshot");
  TickAt(engine, 10, Running(2, 0.9));
  EXPECT_EQ(actuator.calls().size(), 2u);
}

TEST_F(EngineTest, GroupsAreEvaluatedOnTheirInterval) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule();
  r.interval = seconds(30);
  engine.SetRules(Rules({r}));
  TickAt(engine, 0, Running(2, 0.5));
  TickAt(engine, 10, Running(2, 0.5));
  TickAt(engine, 29, Running(2, 0.5));
  EXPECT_EQ(engine.DecisionsJson(100).size(), 1u);
  TickAt(engine, 30, Running(2, 0.5));
  EXPECT_EQ(engine.DecisionsJson(100).size(), 2u);
}

TEST_F(EngineTest, GlobalDryRunChangesNothing) {
  Engine engine(actuator, Options(/*dry_run=*/true));
  engine.SetRules(Rules({FastRule()}));
  for (int i = 0; i < 10; ++i) TickAt(engine, i * 10, Running(1, 0.95));
  EXPECT_TRUE(actuator.calls().empty());
  auto d = engine.DecisionsJson(1)[0];
  EXPECT_EQ(d["held_by"], "dry_run");
  EXPECT_EQ(d["result"], "dry_run");
  EXPECT_EQ(d["actions"][0]["result"], "dry_run");  // the word of the metric below
  std::vector<prometheus::MetricFamily> fams = engine.Collect();
  bool found = false;
  for (const auto& f : fams) {
    if (f.name != "virtscale_scale_actions_total") continue;
    for (const auto& m : f.metric) {
      if (m.label[2].value == "dry_run") {
        found = true;
        EXPECT_EQ(m.counter.value, 10);
      } else {
        EXPECT_EQ(m.counter.value, 0) << m.label[1].value << "/" << m.label[2].value;
      }
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(EngineTest, GroupDryRunChangesNothingForThatGroupOnly) {
  Engine engine(actuator, Options());
  GroupRule dry = FastRule();
  dry.dry_run = true;
  GroupRule live = FastRule();
  live.name = "api";
  live.name_prefix = "api-";
  engine.SetRules(Rules({dry, live}));
  auto doms = Running(1, 0.95);
  doms.push_back(Dom("api-1", DomainState::kRunning, 0.95));
  TickAt(engine, 0, doms);
  auto calls = actuator.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].group, "api");
}

// A Leadership whose answers the test sets; counts the confirmations asked.
class FakeLeadership : public Leadership {
 public:
  bool IsLeader() const override { return leader_; }
  std::string WhyNotLeader() const override { return "the leader is ctl-b:9177-2"; }
  bool ConfirmLeadership() override {
    ++confirmations_;
    return confirms_;
  }
  std::atomic<bool> leader_{false};
  std::atomic<bool> confirms_{true};
  std::atomic<int> confirmations_{0};
};

TEST_F(EngineTest, AFollowerDecidesAsADryRunAndNamesTheLeader) {
  FakeLeadership leadership;
  EngineOptions options = Options();
  options.leadership = &leadership;
  Engine engine(actuator, options);
  // The follower's plans must neither start this cooldown nor use this rate limit.
  GroupRule rule = FastRule();
  rule.scale_up.cooldown = seconds(300);
  rule.scale_up.rate_limit = RateLimit{.members = 1, .percent = 0, .period = seconds(300)};
  engine.SetRules(Rules({rule}));
  for (int i = 0; i < 3; ++i) TickAt(engine, i * 10, Running(1, 0.95));
  EXPECT_TRUE(actuator.calls().empty());
  EXPECT_EQ(leadership.confirmations_, 0);
  auto d = engine.DecisionsJson(1)[0];
  EXPECT_EQ(d["outcome"], "held");
  EXPECT_EQ(d["held_by"], "follower");
  EXPECT_EQ(d["result"], "dry_run");
  EXPECT_EQ(d["actions"][0]["kind"], "create");
  EXPECT_EQ(d["actions"][0]["result"], "dry_run");
  EXPECT_NE(d["reason"].get<std::string>().find("follower: the leader is ctl-b:9177-2"),
            std::string::npos)
      << d["reason"];

  // Leading now: the same evaluation acts at once, after one confirmation.
  leadership.leader_ = true;
  TickAt(engine, 30, Running(1, 0.95));
  ASSERT_EQ(actuator.calls().size(), 1u) << engine.DecisionsJson(1)[0].dump();
  EXPECT_EQ(leadership.confirmations_, 1);
  EXPECT_EQ(engine.DecisionsJson(1)[0]["result"], "ok");
  // Its own action does start the cooldown.
  TickAt(engine, 40, Running(2, 0.95));
  EXPECT_EQ(engine.DecisionsJson(1)[0]["held_by"], "cooldown");
}

TEST_F(EngineTest, AConfiguredDryRunIsNamedBeforeFollowing) {
  FakeLeadership leadership;
  EngineOptions options = Options(/*dry_run=*/true);
  options.leadership = &leadership;
  Engine engine(actuator, options);
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(1, 0.95));
  EXPECT_EQ(engine.DecisionsJson(1)[0]["held_by"], "dry_run");
  EXPECT_TRUE(actuator.calls().empty());
}

TEST_F(EngineTest, AnActionWhoseLeadershipIsNotConfirmedNeverRuns) {
  FakeLeadership leadership;
  leadership.leader_ = true;     // the cached answer still says leader...
  leadership.confirms_ = false;  // ...but etcd no longer does
  EngineOptions options = Options();
  options.leadership = &leadership;
  Engine engine(actuator, options);
  engine.SetRules(Rules({FastRule()}));
  TickAt(engine, 0, Running(1, 0.95));
  EXPECT_TRUE(actuator.calls().empty());
  EXPECT_EQ(leadership.confirmations_, 1);
  auto d = engine.DecisionsJson(1)[0];
  EXPECT_EQ(d["outcome"], "scale_up");
  EXPECT_EQ(d["result"], "cancelled");
  EXPECT_EQ(d["actions"][0]["result"], "cancelled");
  EXPECT_NE(d["actions"][0]["error"].get<std::string>().find("leadership was not confirmed"),
            std::string::npos);
  // Neither a failure (no backoff) nor a scale (no cooldown, no stamp): once
  // confirmed, the next evaluation acts.
  EXPECT_EQ(engine.GroupsJson()[0]["consecutive_failures"], 0);
  EXPECT_TRUE(actuator.stamps().empty());
  leadership.confirms_ = true;
  TickAt(engine, 10, Running(1, 0.95));
  EXPECT_EQ(actuator.calls().size(), 1u);
  std::map<std::string, double> by_result;
  for (const auto& f : engine.Collect())
    if (f.name == "virtscale_scale_actions_total")
      for (const auto& m : f.metric) by_result[m.label[2].value] = m.counter.value;
  EXPECT_EQ(by_result["ok"], 1);
  EXPECT_EQ(by_result["error"], 0);
}

TEST_F(EngineTest, NeverDeletesADomainWithoutMetadata) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule(0, 4);
  r.down_action = DownAction::kDelete;
  engine.SetRules(Rules({r}));
  for (int i = 0; i < 10; ++i)
    TickAt(engine, i * 10,
           {Dom("web-a", DomainState::kRunning, 0.05), Dom("web-b", DomainState::kRunning, 0.05)});
  EXPECT_TRUE(actuator.calls().empty());
  EXPECT_EQ(engine.DecisionsJson(1)[0]["held_by"], "no_candidate");
}

TEST_F(EngineTest, FailedActionsBackOffAndAreCounted) {
  Engine engine(actuator, Options());
  engine.SetRules(Rules({FastRule()}));
  actuator.set_fail(true);
  TickAt(engine, 0, Running(1, 0.95));
  ASSERT_EQ(actuator.calls().size(), 1u);
  EXPECT_EQ(engine.DecisionsJson(1)[0]["result"], "error");
  EXPECT_EQ(engine.DecisionsJson(1)[0]["actions"][0]["error"], "injected failure");
  TickAt(engine, 10, Running(1, 0.95));  // backoff 20s from the failure at 0
  EXPECT_EQ(actuator.calls().size(), 1u);
  EXPECT_EQ(engine.DecisionsJson(1)[0]["held_by"], "backoff");
  TickAt(engine, 20, Running(1, 0.95));  // retried, fails again: backoff doubles to 40s
  EXPECT_EQ(actuator.calls().size(), 2u);
  TickAt(engine, 50, Running(1, 0.95));
  EXPECT_EQ(actuator.calls().size(), 2u);
  actuator.set_fail(false);
  TickAt(engine, 60, Running(1, 0.95));
  EXPECT_EQ(actuator.calls().size(), 3u);
  EXPECT_EQ(engine.GroupsJson()[0]["consecutive_failures"], 0);

  std::vector<prometheus::MetricFamily> fams = engine.Collect();
  std::map<std::string, double> by_result;
  for (const auto& f : fams)
    if (f.name == "virtscale_scale_actions_total")
      for (const auto& m : f.metric) by_result[m.label[2].value] = m.counter.value;
  EXPECT_EQ(by_result["error"], 2);
  EXPECT_EQ(by_result["ok"], 1);
}

TEST_F(EngineTest, OnChangeFinishedGetsTheDecisionWithItsResults) {
  std::mutex mu;
  std::vector<Decision> finished;
  EngineOptions options = Options();
  options.on_change_finished = [&](const Decision& d) {
    std::lock_guard lock(mu);
    finished.push_back(d);
  };
  Engine engine(actuator, options);
  engine.SetRules(Rules({FastRule()}));
  actuator.set_fail(true);
  TickAt(engine, 0, Running(1, 0.95));  // WaitIdle waits for the callback too
  TickAt(engine, 5, Running(1, 0.5));   // no change: no callback
  std::lock_guard lock(mu);
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].outcome, Outcome::kScaleUp);
  EXPECT_EQ(finished[0].result, DecisionResult::kError);
  ASSERT_EQ(finished[0].actions.size(), 1u);
  EXPECT_EQ(finished[0].actions[0].result, ActionResult::kError);
  EXPECT_EQ(finished[0].actions[0].error, "injected failure");
}

TEST_F(EngineTest, ReloadKeepsStateOfGroupsThatPersist) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule();
  r.scale_up.cooldown = seconds(300);
  engine.SetRules(Rules({r}));
  TickAt(engine, 0, Running(1, 0.95));
  ASSERT_EQ(actuator.calls().size(), 1u);
  GroupRule other = FastRule();
  other.name = "api";
  other.name_prefix = "api-";
  other.min = 0;  // no members and no data: holds
  r.max = 10;
  engine.SetRules(Rules({other, r}));
  TickAt(engine, 100, Running(2, 0.95));
  EXPECT_EQ(actuator.calls().size(), 1u);  // web's cooldown survived the reload
  auto groups = engine.GroupsJson();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[1]["name"], "web");
  EXPECT_EQ(groups[1]["max"], 10);
  EXPECT_EQ(groups[1]["last_decision"]["held_by"], "cooldown");
}

TEST_F(EngineTest, DecisionHistoryIsBoundedNewestFirst) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule();
  r.interval = seconds(1);
  engine.SetRules(Rules({r}));
  for (int i = 0; i < 80; ++i) TickAt(engine, i, Running(2, 0.5));
  auto all = engine.DecisionsJson(1000);
  EXPECT_EQ(all.size(), 50u);
  EXPECT_GT(all[0]["id"].get<uint64_t>(), all[1]["id"].get<uint64_t>());
  EXPECT_EQ(engine.DecisionsJson(3).size(), 3u);
}

TEST_F(EngineTest, ActionsSurviveAnyAmountOfIdleEvaluation) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule();
  r.interval = seconds(1);
  engine.SetRules(Rules({r}));
  TickAt(engine, 0, Running(1, 0.95));
  ASSERT_EQ(actuator.calls().size(), 1u);
  for (int i = 1; i <= 500; ++i) TickAt(engine, i, Running(2, 0.5));  // ten times the no-op ring

  auto all = engine.DecisionsJson(1000);
  ASSERT_EQ(all.size(), 51u);  // 50 no-ops and the action
  EXPECT_EQ(all[0]["outcome"], "none");
  EXPECT_EQ(all[50]["outcome"], "scale_up");
  EXPECT_EQ(all[50]["result"], "ok");  // its result arrived after it was logged
  EXPECT_EQ(all[50]["actions"][0]["result"], "ok");

  DecisionFilter changes;
  changes.changes_only = true;
  auto only = engine.DecisionsJson(changes);
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0]["id"], all[50]["id"]);
}

TEST_F(EngineTest, ChangeHistoryIsBoundedOnItsOwn) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule(1, 100);
  r.interval = seconds(1);
  engine.SetRules(Rules({r}));
  // An action every 16 s (past the default 15 s rate-limit window), idle in between.
  for (int i = 0; i < 30; ++i) {
    TickAt(engine, i * 16, Running(1, 0.95));
    TickAt(engine, i * 16 + 1, Running(1, 0.5));
  }
  ASSERT_EQ(actuator.calls().size(), 30u);
  DecisionFilter changes;
  changes.changes_only = true;
  changes.limit = 1000;
  auto kept = engine.DecisionsJson(changes);
  ASSERT_EQ(kept.size(), 20u);  // change_history
  EXPECT_EQ(kept[0]["time"], FormatTime(At(29 * 16).wall));
  EXPECT_EQ(kept[19]["time"], FormatTime(At(10 * 16).wall));
  EXPECT_EQ(engine.DecisionsJson(1000).size(), 50u);  // 30 no-ops, and 20 changes
}

TEST_F(EngineTest, DecisionFiltersReachTheLog) {
  Engine engine(actuator, Options());
  GroupRule web = FastRule();
  GroupRule api = FastRule();
  api.name = "api";
  api.name_prefix = "api-";
  engine.SetRules(Rules({web, api}));
  TickAt(engine, 0,
         {Dom("web-1", DomainState::kRunning, 0.95), Dom("api-1", DomainState::kRunning, 0.5)});
  DecisionFilter f;
  f.groups = {"api"};
  auto api_only = engine.DecisionsJson(f);
  ASSERT_EQ(api_only.size(), 1u);
  EXPECT_EQ(api_only[0]["group"], "api");
  f.groups.clear();
  f.outcomes = {Outcome::kScaleUp};
  auto up = engine.DecisionsJson(f);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0]["group"], "web");
}

TEST_F(EngineTest, ExportsGroupFamiliesWithHelp) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule(1, 4);
  r.scale_up.when.push_back(
      Cond(MetricKind::kSource, Comparison::kPerMemberAbove, 100, 60, Aggregate::kAvg, "jobs"));
  engine.SetRules(Rules({r}));
  std::vector<prometheus::MetricFamily> before = engine.Collect();
  for (const auto& f : before) EXPECT_NE(f.name, "virtscale_group_members");  // unknown yet

  SourceReadings src;
  src["jobs"].value = 500;
  TickAt(engine, 0,
         {Dom("web-1", DomainState::kRunning, 0.5, 1), Dom("web-2", DomainState::kRunning, 0.7, 2),
          Dom("web-3", DomainState::kShutoff, {}, 3)},
         src);
  std::vector<prometheus::MetricFamily> fams = engine.Collect();
  std::map<std::string, const prometheus::MetricFamily*> by_name;
  for (const auto& f : fams) {
    EXPECT_FALSE(f.help.empty()) << f.name;
    by_name[f.name] = &f;
  }
  for (const char* name :
       {"virtscale_group_members", "virtscale_group_desired_members", "virtscale_group_min_members",
        "virtscale_group_max_members", "virtscale_group_metric_value",
        "virtscale_group_condition_state", "virtscale_group_threshold",
        "virtscale_rule_evaluation_duration_seconds"}) {
    EXPECT_TRUE(by_name.count(name)) << name;
  }
  const auto& members = *by_name.at("virtscale_group_members");
  ASSERT_EQ(members.metric.size(), 5u);  // every state, zeros included
  EXPECT_EQ(members.metric[0].label[1].value, "running");
  EXPECT_EQ(members.metric[0].gauge.value, 2);
  EXPECT_EQ(members.metric[2].label[1].value, "stopped");
  EXPECT_EQ(members.metric[2].gauge.value, 1);
  std::map<std::string, double> values;
  for (const auto& m : by_name.at("virtscale_group_metric_value")->metric)
    values[m.label[1].value] = m.gauge.value;
  EXPECT_DOUBLE_EQ(values.at("cpu:avg"), 0.6);
  EXPECT_DOUBLE_EQ(values.at("source:jobs:per_member"), 250);
  std::vector<double> states;
  for (const auto& m : by_name.at("virtscale_group_condition_state")->metric)
    states.push_back(m.gauge.value);
  EXPECT_EQ(states, (std::vector<double>{0, 1, 0}));  // cpu up, jobs up (pending), cpu down
}

// Every timer is monotonic: an NTP step of an hour either way changes no
// `for`, cooldown or backoff. The same ticks run twice, once with wall steps.
TEST_F(EngineTest, WallClockStepsChangeNoTimer) {
  auto run = [&](bool step_wall) {
    FakeActuator fake;
    FakeClock clock(At(0));
    EngineOptions o = Options();
    o.clock = &clock;
    Engine engine(fake, o);
    GroupRule r = CpuRule(1, 6);
    r.scale_up.cooldown = seconds(60);
    r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8, /*for_s=*/30)};
    r.scale_down.cooldown = seconds(120);
    r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2, /*for_s=*/40)};
    engine.SetRules(Rules({r}));
    std::vector<std::string> seen;
    for (int t = 0; t <= 400; t += 10) {
      if (step_wall && t == 50) clock.StepWall(std::chrono::hours(1));
      if (step_wall && t == 150) clock.StepWall(-std::chrono::hours(2));
      if (step_wall && t == 250) clock.StepWall(std::chrono::hours(1));
      fake.set_fail(t == 150);  // one failure: a backoff of 20s
      const double cpu = t < 200 ? 0.95 : 0.05;
      const Instant now = clock.Now();
      engine.Tick(Snap(now, Running(2, cpu)), {}, now);
      engine.WaitIdle();
      clock.Advance(seconds(10));
      const auto d = engine.DecisionsJson(1)[0];
      seen.push_back(fmt::format("{} {} {} {}", t, d["outcome"].get<std::string>(),
                                 d.value("held_by", ""), d["actions"].size()));
    }
    return seen;
  };
  const std::vector<std::string> steady = run(false);
  const std::vector<std::string> stepped = run(true);
  EXPECT_EQ(steady, stepped);
  // The run exercised what it claims: a pending `for`, an action, a cooldown and a backoff.
  auto count = [&](const std::string& what) {
    return std::count_if(steady.begin(), steady.end(),
                         [&](const std::string& l) { return l.find(what) != std::string::npos; });
  };
  EXPECT_GT(count("scale_up  1"), 0);
  EXPECT_GT(count("cooldown"), 0);
  EXPECT_GT(count("backoff"), 0);
  EXPECT_GT(count("scale_down  1"), 0);
}

TEST_F(EngineTest, StampsTheScaleTimeOnTheMembersLeftAfterTheAction) {
  Engine engine(actuator, Options());
  GroupRule r = FastRule(0, 4);
  r.down_action = DownAction::kDelete;
  engine.SetRules(Rules({r}));
  TickAt(engine, 0, Running(2, 0.95));   // creates one: web-new1
  TickAt(engine, 10, Running(3, 0.05));  // deletes the newest: web-3
  auto stamps = actuator.stamps();
  ASSERT_EQ(stamps.size(), 2u);
  EXPECT_EQ(stamps[0].direction, Direction::kUp);
  EXPECT_EQ(stamps[0].domains, (std::vector<std::string>{"web-1", "web-2", "web-new1"}));
  EXPECT_EQ(stamps[0].unix_seconds, 1'700'000'000);
  EXPECT_EQ(stamps[1].direction, Direction::kDown);
  EXPECT_EQ(stamps[1].domains, (std::vector<std::string>{"web-1", "web-2"}));
  EXPECT_EQ(stamps[1].unix_seconds, 1'700'000'010);
  // A failed action changed nothing: no stamp.
  actuator.set_fail(true);
  TickAt(engine, 20, Running(2, 0.95));
  EXPECT_EQ(actuator.stamps().size(), 2u);
}

// Operations of one job run side by side: a slow one does not delay the rest.
TEST_F(EngineTest, RunsAJobsOperationsInParallel) {
  struct GateActuator : FakeActuator {
    std::mutex mu;
    std::condition_variable cv;
    int inside = 0;
    int most = 0;
    OperationResult Execute(const Operation& op) override {
      std::unique_lock lock(mu);
      most = std::max(most, ++inside);
      cv.notify_all();
      // Waits until a second operation is inside too (or gives up after 5 s).
      cv.wait_for(lock, std::chrono::seconds(5), [&] { return inside >= 2; });
      --inside;
      lock.unlock();
      return FakeActuator::Execute(op);
    }
  } gate;
  Engine engine(gate, Options());
  GroupRule r = FastRule(4, 8);
  engine.SetRules(Rules({r}));
  engine.Tick(Snap(At(0), Running(1, 0.5)), {}, At(0));  // below min: 3 creates
  engine.WaitIdle();
  EXPECT_EQ(gate.calls().size(), 3u);
  EXPECT_GE(gate.most, 2);
}

TEST_F(EngineTest, ShutdownCancelsTheActuatorOnce) {
  {
    Engine engine(actuator, Options());
    engine.Shutdown();
    engine.Shutdown();  // idempotent
  }
  EXPECT_EQ(actuator.cancels(), 1);
}

TEST_F(EngineTest, RefreshShowsStaleMembersInGroupsAndMetricsAndSwapsThemOneAtATime) {
  Engine engine(actuator, Options());
  GroupRule rule = RefreshRule();
  const std::string current = rule.template_doc->content_hash();
  engine.SetRules(Rules({rule}));
  std::vector<DomainStats> doms = {Made("web-1", DomainState::kRunning, 1001, "old"),
                                   Made("web-2", DomainState::kRunning, 1002, current),
                                   Dom("web-9", DomainState::kRunning, 0.5)};
  TickAt(engine, 0, doms);
  auto calls = actuator.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].kind, Operation::Kind::kCreate);
  auto g = engine.GroupsJson()[0];
  EXPECT_EQ(g["template_hash"], current);
  EXPECT_EQ(g["refresh"]["due"], 1);
  EXPECT_EQ(g["members"][0]["template_current"], false);
  EXPECT_EQ(g["members"][1]["template_current"], true);
  EXPECT_TRUE(g["members"][2]["template_current"].is_null());  // adopted: unknown
  EXPECT_EQ(g["last_decision"]["refresh"]["replacing"], "web-1");
  std::vector<prometheus::MetricFamily> fams = engine.Collect();
  auto due = std::find_if(fams.begin(), fams.end(), [](const prometheus::MetricFamily& f) {
    return f.name == "virtscale_group_refresh_due_members";
  });
  ASSERT_NE(due, fams.end());
  ASSERT_EQ(due->metric.size(), 1u);
  EXPECT_EQ(due->metric[0].gauge.value, 1);

  doms.push_back(Made("web-new1", DomainState::kRunning, 2000, current));
  TickAt(engine, 10, doms);  // the replacement runs: web-1 is deleted
  calls = actuator.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].kind, Operation::Kind::kDelete);
  EXPECT_EQ(calls[1].domain, "web-1");

  doms.erase(doms.begin());
  TickAt(engine, 20, doms);
  TickAt(engine, 30, doms);
  EXPECT_EQ(actuator.calls().size(), 2u);  // nothing stale left
  EXPECT_EQ(engine.GroupsJson()[0]["refresh"]["due"], 0);
}

TEST_F(EngineTest, ForecastIsExportedAndShownInGroups) {
  Engine engine(actuator, Options());
  GroupRule rule = CpuRule(0, 6);
  rule.scale_up.when.clear();
  rule.scale_down.when.clear();
  rule.target = Target(MetricKind::kSource, 50, "jobs");
  rule.forecast = ForecastPolicy{.source = "jobs",
                                 .horizon = std::chrono::minutes(30),
                                 .mode = ForecastMode::kForecastOnly,
                                 .line = 3};
  engine.SetRules(Rules({rule}));
  auto metric = [&]() -> std::optional<double> {
    std::vector<prometheus::MetricFamily> fams = engine.Collect();
    for (const auto& f : fams)
      if (f.name == "virtscale_group_forecast_members" && f.metric.size() == 1)
        return f.metric[0].gauge.value;
    return std::nullopt;
  };
  SourceReadings src;
  src["jobs"].value = 50;
  TickAt(engine, 0, Running(1, 0.5), src);
  EXPECT_EQ(metric(), std::nullopt);  // no history yet: no forecast, no series
  auto g = engine.GroupsJson()[0];
  EXPECT_EQ(g["forecast"]["mode"], "forecast_only");
  EXPECT_EQ(g["forecast"]["horizon"], "30m");
  EXPECT_EQ(g["last_decision"]["forecast"]["unavailable"], "no history fetched yet");

  auto history = std::make_shared<SourceHistory>();  // a flat day at 120 jobs
  const double now = std::chrono::duration<double>(At(10).wall.time_since_epoch()).count();
  for (double t = now - 86400 - 600; t < now; t += 60) history->samples.emplace_back(t, 120);
  history->fetched_at = At(10).wall;
  src["jobs"].history = history;
  TickAt(engine, 10, Running(1, 0.5), src);
  EXPECT_EQ(metric(), std::optional<double>(3));  // ceil(120 / 50)
  EXPECT_TRUE(actuator.calls().empty());          // forecast_only
}

}  // namespace
}  // namespace virtscale::autoscale
