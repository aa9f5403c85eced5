#include "autoscale/simulation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace virtscale::autoscale
