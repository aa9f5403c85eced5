// Rule evaluation cost: one evaluation of 1000 groups x 10 members (DESIGN.md
// target: well under one sample interval). Prints figures; asserts nothing.
//
//   BM_EvaluateAll   membership index + the pure evaluator for every group
//   BM_EngineTick    Engine::Tick with every group due (decision log, metrics
//                    state; dry run so no actuator work is timed)
#include <benchmark/benchmark.h>

#include <memory>
#include <random>

#include "autoscale/engine.h"
#include "autoscale/evaluator.h"
#include "autoscale/planner.h"

namespace virtscale::autoscale {
namespace {

constexpr int kMembers = 10;

class NullActuator : public Actuator {
 public:
  OperationResult Execute(const Operation& op) override { return {true, op.domain, "", 0}; }
};

RuleSet MakeRules(int groups) {
  RuleSet rules;
  for (int i = 0; i < groups; ++i) {
    GroupRule g;
    g.name = "g" + std::to_string(i);
    g.name_prefix = g.name + "-";
    g.template_path = "/etc/virtscale/templates/g.xml";
    g.min = 2;
    g.max = 20;
    g.interval = std::chrono::seconds(10);
    Condition up;
    up.metric.kind = MetricKind::kCpu;
    up.comparison = Comparison::kAbove;
    up.threshold = 0.8;
    up.for_duration = std::chrono::seconds(30);
    Condition jobs;
    jobs.metric.kind = MetricKind::kSource;
    jobs.metric.source = "jobs";
    jobs.comparison = Comparison::kPerMemberAbove;
    jobs.threshold = 100;
    g.scale_up.when = {up, jobs};
    Condition down = up;
    down.comparison = Comparison::kBelow;
    down.threshold = 0.2;
    down.aggregate = Aggregate::kMax;
    g.scale_down.when = {down};
    g.scale_up.cooldown = std::chrono::seconds(60);
    rules.groups.push_back(std::move(g));
  }
  return rules;
}

// Half the members carry virtscale metadata, half are adopted by prefix.
SnapshotPtr MakeSnapshot(int groups, Instant at) {
  auto s = std::make_shared<Snapshot>();
  s->taken_at = at.wall;
  s->taken_at_steady = at.mono;
  s->libvirt_up = true;
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> cpu(0, 1);
  for (int i = 0; i < groups; ++i) {
    for (int j = 0; j < kMembers; ++j) {
      DomainStats d;
      d.name = "g" + std::to_string(i) + "-" + std::to_string(j);
      d.state = j == kMembers - 1 ? DomainState::kShutoff : DomainState::kRunning;
      d.active = d.state == DomainState::kRunning;
      if (d.active) d.cpu_utilization = cpu(rng);
      d.uuid = "uuid-" + d.name;
      if (j % 2 == 0)
        d.metadata = VirtscaleMetadata{"g" + std::to_string(i), "/t.xml", 1000 + j, d.uuid, ""};
      s->domains.push_back(std::move(d));
    }
  }
  std::sort(s->domains.begin(), s->domains.end(),
            [](const DomainStats& a, const DomainStats& b) { return a.name < b.name; });
  return s;
}

void BM_EvaluateAll(benchmark::State& state) {
  const int groups = static_cast<int>(state.range(0));
  const RuleSet rules = MakeRules(groups);
  Instant now{MonoTime(std::chrono::seconds(1'000)), WallTime(std::chrono::seconds(1'700'000'000))};
  const SnapshotPtr snap = MakeSnapshot(groups, now);
  SourceReadings sources{
      {"jobs", SourceReading{350.0, "", now.wall, SourceHealth::kOk, nullptr, ""}}};
  std::vector<GroupState> states(rules.groups.size());
  int64_t actions = 0;
  for (auto _ : state) {
    now.mono += std::chrono::seconds(10);
    now.wall += std::chrono::seconds(10);
    auto members = IndexMembers(rules, snap.get());
    for (size_t i = 0; i < rules.groups.size(); ++i) {
      Evaluation e = Evaluate({.rule = rules.groups[i],
                               .members = members[i],
                               .snapshot = snap.get(),
                               .sources = sources,
                               .now = now,
                               .stale_after = std::chrono::hours(24 * 365),
                               .dry_run = true},
                              states[i]);
      actions += static_cast<int64_t>(e.decision.actions.size());
      states[i] = std::move(e.next);
    }
    benchmark::DoNotOptimize(actions);
  }
  state.counters["groups"] = groups;
  state.counters["members"] = groups * kMembers;
}
BENCHMARK(BM_EvaluateAll)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_EngineTick(benchmark::State& state) {
  const int groups = static_cast<int>(state.range(0));
  NullActuator actuator;
  EngineOptions options;
  options.dry_run = true;
  options.stale_after = std::chrono::hours(24 * 365);
  Engine engine(actuator, options);
  engine.SetRules(MakeRules(groups));
  Instant now{MonoTime(std::chrono::seconds(1'000)), WallTime(std::chrono::seconds(1'700'000'000))};
  const SnapshotPtr snap = MakeSnapshot(groups, now);
  SourceReadings sources{
      {"jobs", SourceReading{350.0, "", now.wall, SourceHealth::kOk, nullptr, ""}}};
  for (auto _ : state) {
    now.mono += std::chrono::seconds(10);  // every group due
    now.wall += std::chrono::seconds(10);
    engine.Tick(snap, sources, now);
  }
  state.counters["groups"] = groups;
  state.counters["members"] = groups * kMembers;
}
BENCHMARK(BM_EngineTick)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace virtscale::autoscale

BENCHMARK_MAIN();
