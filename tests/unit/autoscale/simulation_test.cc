#include "autoscale/simulation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <pugixml.hpp>

#include "autoscale/svg_plot.h"

namespace virtscale::autoscale {
namespace {

using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;

std::vector<std::optional<double>> Values(std::string_view text) {
  std::string error;
  auto v = ParseSeriesValues(text, &error);
  EXPECT_TRUE(v) << text << ": " << error;
  return v.value_or(std::vector<std::optional<double>>{});
}

TEST(SeriesNotation, ExpandsLikePromtool) {
  EXPECT_THAT(Values("1+2x3"), ElementsAre(1, 3, 5, 7));
  EXPECT_THAT(Values("5x3"), ElementsAre(5, 5, 5, 5));
  EXPECT_THAT(Values("-2+4x3"), ElementsAre(-2, 2, 6, 10));
  EXPECT_THAT(Values(" 1-2x4"), ElementsAre(1, -1, -3, -5, -7));
  EXPECT_THAT(Values("1e2+1e1x1"), ElementsAre(100, 110));
  EXPECT_THAT(Values("1 _x3 stale"),
              ElementsAre(1, std::nullopt, std::nullopt, std::nullopt, std::nullopt));
  EXPECT_THAT(Values("0.5 _ 2"), ElementsAre(0.5, std::nullopt, 2));
}

TEST(SeriesNotation, RejectsBadTerms) {
  for (const char* bad : {"", "abc", "1x", "1+x3", "1+2x-3", "1xx2", "nan"}) {
    std::string error;
    EXPECT_FALSE(ParseSeriesValues(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(Series, ReadsTheNewestSampleWithinTheLookback) {
  const TimePoint t0{};
  Series s = Series::FromValues(t0, seconds(10), Values("1 _ 3"));
  EXPECT_EQ(s.At(t0 - seconds(1)), std::nullopt);
  EXPECT_THAT(s.At(t0), Optional(1.0));
  EXPECT_THAT(s.At(t0 + seconds(9)), Optional(1.0));
  EXPECT_EQ(s.At(t0 + seconds(10)), std::nullopt);  // `_`
  EXPECT_THAT(s.At(t0 + seconds(25)), Optional(3.0));
  EXPECT_EQ(s.At(t0 + seconds(30)), std::nullopt);  // past the end
}

GroupRule CpuRule() {
  GroupRule r;
  r.name = "web";
  r.template_path = "/tmp/web.xml";
  r.min = 1;
  r.max = 4;
  r.interval = seconds(10);
  r.scale_up.cooldown = seconds(30);
  r.scale_up.when.push_back(
      Condition{{MetricKind::kCpu, ""}, Aggregate::kAvg, Comparison::kAbove, 0.8, seconds(20)});
  r.scale_down.cooldown = seconds(60);
  r.down_action = DownAction::kDelete;
  r.scale_down.when.push_back(
      Condition{{MetricKind::kCpu, ""}, Aggregate::kAvg, Comparison::kBelow, 0.2, seconds(30)});
  return r;
}

SimulationSpec CpuSpec(std::string_view cpu, bool shared, seconds length) {
  SimulationSpec spec;
  spec.rule = CpuRule();
  spec.step = seconds(10);
  spec.end = spec.start + length;
  spec.initial_running = 1;
  spec.member_inputs.push_back(
      {MetricKind::kCpu, "", shared, Series::FromValues(spec.start, seconds(10), Values(cpu))});
  return spec;
}

TEST(Simulation, FiresAfterForThenCreatesAndCoolsDown) {
  SimulationSpec spec = CpuSpec("0.9x30", false, seconds(120));
  SimulationResult r = RunSimulation(spec);
  ASSERT_EQ(r.steps.size(), 13u);
  // 0s pending, 10s pending, 20s firing -> create.
  const SimulationStep* s = r.At(spec.start + seconds(10));
  ASSERT_TRUE(s && s->decision);
  EXPECT_EQ(s->decision->conditions[0].state, ConditionState::kPending);
  EXPECT_EQ(s->running, 1);
  s = r.At(spec.start + seconds(20));
  ASSERT_TRUE(s && s->decision);
  EXPECT_EQ(s->decision->outcome, Outcome::kScaleUp);
  ASSERT_EQ(s->decision->actions.size(), 1u);
  EXPECT_EQ(s->decision->actions[0].operation.kind, Operation::Kind::kCreate);
  EXPECT_EQ(s->decision->actions[0].result, ActionResult::kOk);
  EXPECT_EQ(s->decision->actions[0].domain, "web-2");
  EXPECT_EQ(s->running_before, 1);
  EXPECT_EQ(s->running, 2);
  s = r.At(spec.start + seconds(40));
  ASSERT_TRUE(s && s->decision);
  EXPECT_EQ(s->decision->held_by, HeldBy::kCooldown);
  // 20s, 50s, 80s: one per 30s cooldown until max 4.
  EXPECT_EQ(r.At(spec.start + seconds(50))->running, 3);
  EXPECT_EQ(r.At(spec.start + seconds(80))->running, 4);
  EXPECT_EQ(r.At(spec.start + seconds(90))->decision->held_by, HeldBy::kBoundMax);
  EXPECT_EQ(r.scale_ups, 3);
  EXPECT_EQ(r.members_added, 3);
  EXPECT_EQ(r.scale_downs, 0);
}

TEST(Simulation, SharedDemandIsSplitOverRunningMembers) {
  // 1.8 members of demand: 1.0 (capped) with one member, 0.9 with two, 0.6 with three.
  SimulationSpec spec = CpuSpec("1.8x30", true, seconds(120));
  SimulationResult r = RunSimulation(spec);
  EXPECT_THAT(r.steps[0].decision->metrics[0].value, Optional(1.0));
  const SimulationStep* after_first = r.At(spec.start + seconds(30));
  ASSERT_EQ(after_first->running_before, 2);
  EXPECT_THAT(after_first->decision->metrics[0].value, Optional(0.9));
  EXPECT_EQ(r.steps.back().running, 3);
  EXPECT_THAT(r.steps.back().decision->metrics[0].value, Optional(0.6));
}

TEST(Simulation, ScaleDownDeletesNewestCreatedMemberAndKeepsMin) {
  SimulationSpec spec = CpuSpec("0.1x60", false, seconds(200));
  spec.initial_running = 3;
  SimulationResult r = RunSimulation(spec);
  const SimulationStep* s = r.At(spec.start + seconds(30));
  ASSERT_TRUE(s->decision);
  ASSERT_EQ(s->decision->actions.size(), 1u);
  EXPECT_EQ(s->decision->actions[0].operation.kind, Operation::Kind::kDelete);
  EXPECT_EQ(s->decision->actions[0].operation.domain, "web-3");
  EXPECT_EQ(s->running, 2);
  EXPECT_EQ(s->stopped, 0);
  EXPECT_EQ(r.steps.back().running, 1);
  EXPECT_EQ(r.steps.back().decision->held_by, HeldBy::kBoundMin);
}

TEST(Simulation, StoppedMembersAreStartedFirst) {
  SimulationSpec spec = CpuSpec("0.9x10", false, seconds(20));
  spec.initial_stopped = 1;
  SimulationResult r = RunSimulation(spec);
  const SimulationStep& s = r.steps.back();
  ASSERT_TRUE(s.decision);
  ASSERT_EQ(s.decision->actions.size(), 1u);
  EXPECT_EQ(s.decision->actions[0].operation.kind, Operation::Kind::kStart);
  EXPECT_EQ(s.running, 2);
  EXPECT_EQ(s.stopped, 0);
}

TEST(Simulation, MissingSamplesHoldAndDryRunChangesNothing) {
  SimulationSpec spec = CpuSpec("0.9 _x2 0.9x10", false, seconds(30));
  spec.dry_run = true;
  SimulationResult r = RunSimulation(spec);
  EXPECT_EQ(r.At(spec.start + seconds(10))->decision->held_by, HeldBy::kMissingData);
  // Pending again from 30s: no action yet.
  EXPECT_EQ(r.steps.back().decision->conditions[0].state, ConditionState::kPending);

  spec = CpuSpec("0.9x30", false, seconds(60));
  spec.dry_run = true;
  r = RunSimulation(spec);
  const SimulationStep* s = r.At(spec.start + seconds(20));
  EXPECT_EQ(s->decision->held_by, HeldBy::kDryRun);
  EXPECT_EQ(s->decision->actions.size(), 1u);
  EXPECT_EQ(s->running, 1);
  EXPECT_EQ(r.steps.back().running, 1);
}

TEST(Simulation, GroupIntervalLongerThanStepSkipsTicks) {
  SimulationSpec spec = CpuSpec("0.5x30", false, seconds(60));
  spec.rule.interval = seconds(30);
  SimulationResult r = RunSimulation(spec);
  ASSERT_EQ(r.steps.size(), 7u);
  int evaluated = 0;
  for (const auto& s : r.steps) evaluated += s.decision ? 1 : 0;
  EXPECT_EQ(evaluated, 3);  // 0s, 30s, 60s
}

TEST(Timeline, ShowsTransitionsActionsAndHolds) {
  SimulationSpec spec = CpuSpec("0.9x12 0.1x30", false, seconds(300));
  SimulationResult r = RunSimulation(spec);
  const std::string t = FormatTimeline(r, spec);
  EXPECT_THAT(t, HasSubstr("+0s  up[0] cpu:avg > 0.8 for 20s: pending (value 0.9"));
  EXPECT_THAT(t, HasSubstr("+20s  up[0] cpu:avg > 0.8 for 20s: firing"));
  EXPECT_THAT(t, HasSubstr("+20s  scale_up 1 -> 2: create web-2 ok"));
  EXPECT_THAT(t, HasSubstr("held (cooldown): "));
  EXPECT_THAT(t, HasSubstr("up[0] cpu:avg > 0.8 for 20s: resolved (0.1)"));
  EXPECT_THAT(t, HasSubstr("down[0] cpu:avg < 0.2 for 30s: firing"));
  EXPECT_THAT(t, HasSubstr("scale_down 4 -> 3: delete web-4 ok"));
  EXPECT_THAT(t, HasSubstr("summary: 31 evaluations, 3 scale-ups (+3 members), 3 scale-downs "
                           "(-3 members), running 1..4, final 1"));
}

Hook ModelledHook(std::vector<std::string> command, HookFailure on_failure) {
  Hook h;
  h.command = std::move(command);
  h.timeout = seconds(60);
  h.on_failure = on_failure;
  return h;
}

// 3 members at cpu 0.1: the down condition fires at 30s and deletes web-3.
SimulationSpec DrainSpec(HookModel model, HookFailure on_failure, seconds length) {
  SimulationSpec spec = CpuSpec("0.1x60", false, length);
  spec.initial_running = 3;
  spec.rule.min = 2;
  spec.rule.hooks = HookPolicy{};
  spec.rule.hooks->before_scale_down = ModelledHook({"/usr/local/bin/drain"}, on_failure);
  spec.before_scale_down = SimulatedHook{model, {}};
  return spec;
}

TEST(SimulatedHooks, ADrainTakesSimulatedTimeWhileTheMemberRuns) {
  SimulationSpec spec =
      DrainSpec({seconds(30), HookOutcome::kOk}, HookFailure::kAbandon, seconds(90));
  SimulationResult r = RunSimulation(spec);
  const SimulationStep* s = r.At(spec.start + seconds(30));
  ASSERT_TRUE(s && s->decision);
  ASSERT_EQ(s->decision->actions.size(), 1u);
  EXPECT_EQ(s->decision->actions[0].operation.domain, "web-3");
  EXPECT_EQ(s->decision->actions[0].result, ActionResult::kPending);
  EXPECT_TRUE(s->finished.empty());
  for (int t : {30, 40, 50}) {
    s = r.At(spec.start + seconds(t));
    EXPECT_EQ(s->running, 3) << t;
    EXPECT_THAT(s->running_hooks,
                ElementsAre(std::make_pair(std::string("before_scale_down"), std::string("web-3"))))
        << t;
    if (t > 30) {
      EXPECT_EQ(s->decision->held_by, HeldBy::kInFlight) << t;
    }
  }
  s = r.At(spec.start + seconds(60));
  EXPECT_EQ(s->running, 2);
  EXPECT_TRUE(s->running_hooks.empty());
  ASSERT_EQ(s->finished.size(), 1u);
  EXPECT_EQ(s->finished[0].time, spec.start + seconds(30));
  EXPECT_EQ(s->finished[0].actions[0].result, ActionResult::kOk);
  EXPECT_EQ(s->finished[0].actions[0].detail, "before_scale_down hook /usr/local/bin/drain: ok");
  ASSERT_EQ(s->hooks.size(), 1u);
  EXPECT_EQ(s->hooks[0].started, spec.start + seconds(30));
  EXPECT_EQ(s->hooks[0].ended, spec.start + seconds(60));
  EXPECT_EQ(r.members_removed, 1);
  EXPECT_EQ(r.steps.back().decision->held_by, HeldBy::kBoundMin);
  const std::string t = FormatTimeline(r, spec);
  EXPECT_THAT(t, HasSubstr("+30s  scale_down 3 -> 2: delete web-3 pending"));
  EXPECT_THAT(t, HasSubstr("+40s  held (action_in_flight)"));
  EXPECT_THAT(t, HasSubstr("+1m  hook before_scale_down web-3 ok after 30s\n"));
  EXPECT_THAT(t, HasSubstr("+1m  scale_down of +30s finished: delete web-3 ok (before_scale_down "
                           "hook /usr/local/bin/drain: ok)"));
  EXPECT_THAT(t, HasSubstr("1 scale-downs (-1 members)"));
}

TEST(SimulatedHooks, AFailedDrainKeepsTheMemberOrRemovesItAnyway) {
  SimulationSpec spec =
      DrainSpec({seconds(20), HookOutcome::kFail}, HookFailure::kAbandon, seconds(60));
  SimulationResult r = RunSimulation(spec);
  const SimulationStep* s = r.At(spec.start + seconds(50));
  ASSERT_EQ(s->finished.size(), 1u);
  EXPECT_EQ(s->finished[0].actions[0].result, ActionResult::kError);
  EXPECT_THAT(s->finished[0].actions[0].error,
              HasSubstr("hook /usr/local/bin/drain: exit status 1: simulated failure; the member "
                        "keeps running (on_failure: abandon)"));
  EXPECT_EQ(s->running, 3);
  EXPECT_EQ(r.At(spec.start + seconds(60))->decision->held_by, HeldBy::kCooldown);
  EXPECT_EQ(r.members_removed, 0);
  EXPECT_THAT(FormatTimeline(r, spec),
              HasSubstr("+50s  hook before_scale_down web-3 failed after 20s (exit status 1): "
                        "member kept (on_failure: abandon)"));

  spec = DrainSpec({seconds(20), HookOutcome::kFail}, HookFailure::kContinue, seconds(60));
  r = RunSimulation(spec);
  s = r.At(spec.start + seconds(50));
  ASSERT_EQ(s->finished.size(), 1u);
  EXPECT_EQ(s->finished[0].actions[0].result, ActionResult::kOk);
  EXPECT_EQ(s->running, 2);
  EXPECT_THAT(FormatTimeline(r, spec), HasSubstr("member removed anyway (on_failure: continue)"));
}

TEST(SimulatedHooks, ATimeoutTakesTheHooksTimeoutAndAMemberMayHaveItsOwnModel) {
  SimulationSpec spec =
      DrainSpec({seconds(0), HookOutcome::kTimeout}, HookFailure::kAbandon, seconds(120));
  spec.before_scale_down->members["web-3"] = {seconds(10), HookOutcome::kOk};
  SimulationResult r = RunSimulation(spec);
  EXPECT_EQ(r.At(spec.start + seconds(40))->running, 2);  // web-3: its own 10s
  spec.before_scale_down->members.clear();
  r = RunSimulation(spec);
  EXPECT_EQ(r.At(spec.start + seconds(80))->running_hooks.size(), 1u);
  const SimulationStep* s = r.At(spec.start + seconds(90));  // 30s + the 60s timeout
  ASSERT_EQ(s->hooks.size(), 1u);
  EXPECT_EQ(s->hooks[0].outcome, "timed out after 1m");
  EXPECT_EQ(s->running, 3);
}

TEST(SimulatedHooks, AFailedEnlistRemovesTheNewMemberInALaterStep) {
  SimulationSpec spec = CpuSpec("0.9x30", false, seconds(60));
  spec.rule.hooks = HookPolicy{};
  spec.rule.hooks->after_scale_up = ModelledHook({"/usr/local/bin/enlist"}, HookFailure::kAbandon);
  spec.after_scale_up = SimulatedHook{{seconds(10), HookOutcome::kFail}, {}};
  SimulationResult r = RunSimulation(spec);
  // Fires at 20s: web-2 is created and runs while it enlists, then goes again.
  EXPECT_EQ(r.At(spec.start + seconds(20))->running, 2);
  const SimulationStep* s = r.At(spec.start + seconds(30));
  EXPECT_EQ(s->running, 1);
  ASSERT_EQ(s->finished.size(), 1u);
  EXPECT_EQ(s->finished[0].actions[0].domain, "web-2");
  EXPECT_THAT(s->finished[0].actions[0].error, HasSubstr("; delete web-2 again: ok"));
  EXPECT_THAT(FormatTimeline(r, spec),
              HasSubstr("+30s  hook after_scale_up web-2 failed after 10s (exit status 1): member "
                        "removed again (on_failure: abandon)"));
}

TEST(SimulatedHooks, AHookStillRunningAtTheEndIsReleased) {
  SimulationSpec spec =
      DrainSpec({seconds(50), HookOutcome::kOk}, HookFailure::kAbandon, seconds(50));
  SimulationResult r = RunSimulation(spec);  // returns: the engine shuts down
  ASSERT_EQ(r.steps.back().hooks.size(), 1u);
  EXPECT_FALSE(r.steps.back().hooks[0].finished);
  EXPECT_EQ(r.steps.back().running, 3);
  EXPECT_THAT(FormatTimeline(r, spec),
              HasSubstr("+50s  hook before_scale_down web-3 still running at the end (started "
                        "+30s)"));
}

TEST(SimulatedHooks, HookCommandsNeverRun) {
  const std::string marker =
      (std::filesystem::temp_directory_path() / "virtscale-simhook-ran").string();
  std::filesystem::remove(marker);
  SimulationSpec spec = CpuSpec("0.9x12 0.1x30", false, seconds(200));
  spec.rule.hooks = HookPolicy{};
  spec.rule.hooks->before_scale_down =
      ModelledHook({"/bin/sh", "-c", "touch " + marker}, HookFailure::kAbandon);
  spec.rule.hooks->after_scale_up =
      ModelledHook({"/bin/sh", "-c", "touch " + marker}, HookFailure::kAbandon);
  SimulationResult r = RunSimulation(spec);  // no model: each succeeds at once
  EXPECT_GT(r.members_added, 0);
  EXPECT_GT(r.members_removed, 0);
  EXPECT_FALSE(std::filesystem::exists(marker));
}

TEST(SimulatedHooks, CheckHookModelRejectsWhatCannotHappen) {
  GroupRule rule = CpuRule();
  EXPECT_THAT(CheckHookModel(rule, "before_scale_down", {}),
              HasSubstr("group web has no hooks.before_scale_down"));
  rule.hooks = HookPolicy{};
  rule.hooks->before_scale_down = ModelledHook({"/bin/drain"}, HookFailure::kAbandon);
  EXPECT_EQ(CheckHookModel(rule, "before_scale_down", {seconds(59), HookOutcome::kFail}), "");
  EXPECT_THAT(CheckHookModel(rule, "before_scale_down", {seconds(60), HookOutcome::kOk}),
              HasSubstr("takes 1m is not less than the hook's timeout 1m"));
  EXPECT_EQ(CheckHookModel(rule, "before_scale_down", {seconds(0), HookOutcome::kTimeout}), "");
  EXPECT_THAT(CheckHookModel(rule, "before_scale_down", {seconds(-1), HookOutcome::kOk}),
              HasSubstr("negative"));
  EXPECT_THAT(CheckHookModel(rule, "after_scale_up", {}), HasSubstr("no hooks.after_scale_up"));
  EXPECT_THAT(CheckHookModel(rule, "during", {}), HasSubstr("unknown hook"));
  EXPECT_THAT(ParseHookOutcome("fail"), Optional(HookOutcome::kFail));
  EXPECT_FALSE(ParseHookOutcome("FAIL").has_value());
}

TEST(SvgPlot, IsValidXmlWithSeriesThresholdsBandsAndMembers) {
  SimulationSpec spec = CpuSpec("0.9x12 0.1x30", false, seconds(300));
  SimulationResult r = RunSimulation(spec);
  const std::string svg = RenderPlotSvg(r, spec);
  pugi::xml_document doc;
  const pugi::xml_parse_result parsed = doc.load_string(svg.c_str());
  ASSERT_TRUE(parsed) << parsed.description();
  pugi::xml_node root = doc.child("svg");
  ASSERT_TRUE(root);

  auto points = [](pugi::xml_node n) {
    std::string p = n.attribute("points").value();
    return p.empty() ? 0 : static_cast<int>(std::count(p.begin(), p.end(), ' ')) + 1;
  };
  int metric_lines = 0;
  for (auto n : root.select_nodes("//polyline[@class='metric']")) {
    EXPECT_STREQ(n.node().attribute("data-key").value(), "cpu:avg");
    EXPECT_EQ(points(n.node()), 31);  // one per evaluation, no gaps
    ++metric_lines;
  }
  EXPECT_EQ(metric_lines, 1);
  EXPECT_EQ(root.select_nodes("//line[@class='threshold up'][@data-condition='up[0]']").size(), 1u);
  EXPECT_EQ(root.select_nodes("//line[@class='threshold down'][@data-condition='down[0]']").size(),
            1u);
  // up[0]: pending 0-20s, firing 20s..; down[0] pending then firing once the load drops.
  EXPECT_EQ(root.select_nodes("//rect[@class='band pending up']").size(), 1u);
  EXPECT_EQ(root.select_nodes("//rect[@class='band firing up']").size(), 1u);
  EXPECT_EQ(root.select_nodes("//rect[@class='band pending down']").size(), 1u);
  EXPECT_EQ(root.select_nodes("//rect[@class='band firing down']").size(), 1u);
  auto members = root.select_nodes("//polyline[@class='members']");
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(points(members.first().node()), 2 * 31);  // before and after each tick
  EXPECT_EQ(root.select_nodes("//circle[@class='action up']").size(), 3u);
  EXPECT_EQ(root.select_nodes("//circle[@class='action down']").size(), 3u);
  EXPECT_EQ(root.select_nodes("//line[@class='bound max']").size(), 1u);
}

TEST(SvgPlot, GapsSplitTheMetricLine) {
  SimulationSpec spec = CpuSpec("0.5x3 _x2 0.5x3", false, seconds(80));
  SimulationResult r = RunSimulation(spec);
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_string(RenderPlotSvg(r, spec).c_str()));
  EXPECT_EQ(doc.select_nodes("//polyline[@class='metric']").size(), 2u);
}

// Two days of a queue at 50 jobs that jumps to 250 from 01:00 to 02:00 every
// day; a worker group tracking 50 per member, simulated over the second day's
// first three hours.
SimulationSpec QueueDaySpec(ForecastMode mode) {
  SimulationSpec spec;
  GroupRule& r = spec.rule;
  r.name = "workers";
  r.min = 1;
  r.max = 6;
  r.interval = seconds(60);
  r.target = TargetTracking{{MetricKind::kSource, "jobs"}, 50, 0.1};
  r.forecast = ForecastPolicy{
      .source = "jobs", .horizon = std::chrono::minutes(15), .mode = mode, .line = 1};
  const TimePoint day0{seconds(1714521600)};  // 2024-05-01T00:00:00Z
  std::vector<std::optional<double>> jobs;
  for (int minute = 0; minute < 2 * 1440; ++minute)
    jobs.push_back(minute % 1440 >= 60 && minute % 1440 < 120 ? 250 : 50);
  spec.sources["jobs"] = Series::FromValues(day0, seconds(60), jobs);
  spec.start = day0 + std::chrono::hours(24);
  spec.end = spec.start + std::chrono::hours(3);
  spec.step = seconds(60);
  spec.initial_running = 1;
  spec.initial_stopped = 5;  // a warm pool: the group has no template
  return spec;
}

TEST(SimulationForecast, ScaleAheadIsReadyBeforeThePeakThatForecastOnlyMeetsLate) {
  SimulationSpec only = QueueDaySpec(ForecastMode::kForecastOnly);
  SimulationResult r = RunSimulation(only);
  ASSERT_TRUE(r.under_provisioned.has_value());
  // Reactive: the jump at 01:00 is met one evaluation later.
  EXPECT_EQ(*r.under_provisioned, seconds(60));
  const SimulationStep* before = r.At(only.start + std::chrono::minutes(50));
  ASSERT_TRUE(before && before->decision && before->decision->forecast);
  EXPECT_THAT(before->decision->forecast->members, Optional(5));
  EXPECT_EQ(before->running, 1);  // forecast_only does not act

  SimulationSpec ahead = QueueDaySpec(ForecastMode::kScaleAhead);
  SimulationResult a = RunSimulation(ahead);
  ASSERT_TRUE(a.under_provisioned.has_value());
  EXPECT_EQ(*a.under_provisioned, seconds(0));
  // 15 minutes ahead: 5 workers run from 00:45 (the peak's bins enter the horizon).
  EXPECT_EQ(a.At(ahead.start + std::chrono::minutes(50))->running, 5);
  EXPECT_EQ(a.At(ahead.start + std::chrono::minutes(40))->running, 1);

  const std::string timeline = FormatTimeline(a, ahead);
  EXPECT_THAT(timeline, HasSubstr("forecast (scale_ahead): 5 members for the next 15m: peak 250"));
  EXPECT_THAT(timeline, HasSubstr("under-provisioned: 0s (0 minutes)"));
  EXPECT_THAT(FormatTimeline(r, only), HasSubstr("under-provisioned: 1m (1 minutes)"));
  const std::string svg = RenderPlotSvg(a, ahead);
  EXPECT_THAT(svg, HasSubstr("<polyline class=\"forecast\""));
  EXPECT_THAT(svg, HasSubstr("the forecast (scale_ahead, 15m ahead, dashed)"));
}

TEST(SimulationForecast, TheForecastNeverSeesTheFuture) {
  // Only the first day is history: at its start nothing came before.
  SimulationSpec spec = QueueDaySpec(ForecastMode::kScaleAhead);
  spec.start = spec.start - std::chrono::hours(24);
  spec.end = spec.start + std::chrono::hours(3);
  SimulationResult r = RunSimulation(spec);
  const SimulationStep* s = r.At(spec.start + std::chrono::minutes(50));
  ASSERT_TRUE(s && s->decision && s->decision->forecast);
  EXPECT_FALSE(s->decision->forecast->members.has_value());
  EXPECT_EQ(s->decision->forecast->unavailable, "the history covers less than a day before now");
  EXPECT_EQ(s->running, 1);
}

}  // namespace
}  // namespace virtscale::autoscale
