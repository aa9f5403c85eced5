#pragma once
// A simulated world for one scaling group, driven through the REAL Engine (and
// so the real evaluator and planner) on a simulated clock: `virtscale test
// rules` and `virtscale simulate` both run on it, so what they show is what the
// agent would do with the same inputs.
//
// The world: a group of members named "{group}-{n}" that virtscale created
// (they carry its metadata, so they can be stopped and deleted), each member's
// cpu/memory utilisation read from input series, named source values read from
// series, and a fake actuator that applies every planned operation at once to
// the simulated membership (start: running; create: a new member; stop:
// stopped; delete: gone). Every `step` the world is sampled into a Snapshot
// taken at the simulated time and ticked into the engine, which evaluates the
// group when its interval elapsed, exactly as the agent does after each sample.
//
//   SimulationSpec spec{.rule = rules.groups[0], .start = t0, .end = t0 + 1h,
//                       .step = 10s, .initial_running = 2};
//   spec.member_inputs.push_back({.kind = MetricKind::kCpu,
//                                 .series = Series::FromValues(t0, 10s, *ParseSeriesValues(
//                                     "0.9x10 0.1x30"))});
//   SimulationResult r = RunSimulation(spec);
//   std::cout << FormatTimeline(r, spec);
//
// Series notation (promtool's expanding notation, `ParseSeriesValues`):
//   "1+2x3" -> 1 3 5 7;  "5x3" -> 5 5 5 5;  "1-1x2" -> 1 0 -1;  "_" -> no sample;
//   "_x3" -> 4 missing;  "stale" -> no sample;  "1 2 3" -> 1 2 3.
// A value is read at time t from the newest sample at or before t, if that
// sample is younger than the series' lookback (one step for notation series);
// a missing sample, or none recent enough, reads as missing data, never 0.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "autoscale/decision.h"
#include "autoscale/rules.h"
#include "common/yaml_reader.h"

namespace virtscale::autoscale {

// Expands promtool series notation; nullopt values are missing samples.
// Returns nullopt and sets `error` on bad input.
[[nodiscard]] std::optional<std::vector<std::optional<double>>> ParseSeriesValues(
    std::string_view text, std::string* error = nullptr);

// A time series of optional values with a lookback (see the header comment).
class Series {
 public:
  struct Point {
    TimePoint time;
    std::optional<double> value;
  };
  Series() = default;
  Series(std::vector<Point> points, Duration lookback);
  // values[i] is the sample at start + i * step; lookback = step.
  static Series FromValues(TimePoint start, Duration step,
                           const std::vector<std::optional<double>>& values);

  std::optional<double> At(TimePoint t) const;
  const std::vector<Point>& points() const { return points_; }
  bool empty() const { return points_.empty(); }

 private:
  std::vector<Point> points_;  // sorted by time
  Duration lookback_{0};
};

// Where a member's cpu or memory comes from.
struct MemberInput {
  MetricKind kind = MetricKind::kCpu;  // kCpu or kMemory
  std::string member;  // this member only; empty: every member without its own input
  // The value is the whole group's demand in members (1.5 = one and a half
  // fully busy members), shared evenly by the running members: each reads
  // value / running, at most 1. Scaling up then lowers each member's load.
  bool shared = false;
  Series series;
};

// The group is paused (as through POST .../pause) from `from` until `until`,
// offsets from the start; without `until` to the end.
struct PauseWindow {
  Duration from{0};
  std::optional<Duration> until;
};

struct SimulationSpec {
  GroupRule rule;
  TimePoint start{};
  TimePoint end{};                          // inclusive: the last sample is taken at or before it
  Duration step{std::chrono::seconds(10)};  // sample interval (engine ticks)
  int64_t initial_running = 0;
  int64_t initial_stopped = 0;
  std::vector<MemberInput> member_inputs;
  std::map<std::string, Series> sources;  // by source name
  bool dry_run = false;                   // decisions only: the membership never changes
  std::vector<PauseWindow> pauses;        // Engine::SetPaused at each window's edges
  // Members (by name, also ones created later) protected from scale-down, as
  // if stored through POST .../protect before the start.
  std::set<std::string> protected_members;
  // Modelled health-check results by member: 1 passes, 0 fails, a missing
  // sample is unknown; members without a series pass. Used only by groups with
  // `health:` (each round gives every check the same result).
  std::map<std::string, Series> health;
};

// One engine tick.
struct SimulationStep {
  TimePoint time{};
  int64_t running_before = 0;  // in the snapshot the tick saw
  int64_t running = 0;         // after the tick's actions
  int64_t stopped = 0;
  std::optional<Decision> decision;   // absent when the group's interval had not elapsed
  std::optional<Decision> lifecycle;  // a pause or resume made just before the tick
};

struct SimulationResult {
  std::vector<SimulationStep> steps;
  int64_t scale_ups = 0;  // decisions that acted, by direction
  int64_t scale_downs = 0;
  int64_t members_added = 0;    // operations (start + create)
  int64_t members_removed = 0;  // operations (stop + delete)

  // The newest step at or before `t`, nullptr before the first.
  const SimulationStep* At(TimePoint t) const;
};

[[nodiscard]] SimulationResult RunSimulation(const SimulationSpec& spec);

// The decision timeline: condition state changes (pending, firing, resolved),
// every action, and every change of what held the group, with reasons; then a
// summary line. Times print as offsets from spec.start ("+1h2m"), and absolute
// when `absolute_times`.
std::string FormatTimeline(const SimulationResult& result, const SimulationSpec& spec,
                           bool absolute_times = false);

// Loads rule files as LoadRuleFiles does, without an agent config: every
// `source:NAME` the files mention counts as a configured source.
RuleSet LoadRulesForSimulation(const std::vector<std::string>& globs, const std::string& base_dir,
                               Duration default_interval, Diagnostics& diags);

// "+1h2m3s" from `start`; "+0s" at start.
std::string FormatOffset(TimePoint t, TimePoint start);

}  // namespace virtscale::autoscale
