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

// How a modelled lifecycle hook ends: it exits 0, exits 1, or runs past the
// hook's own `timeout` (and so takes that long).
enum class HookOutcome { kOk, kFail, kTimeout };
const char* HookOutcomeName(HookOutcome o);  // "ok", "fail", "timeout"
// "ok", "fail", "timeout" -> the outcome; nullopt otherwise.
std::optional<HookOutcome> ParseHookOutcome(std::string_view text);

// One modelled hook run: how long it takes in simulated time, and its result.
struct HookModel {
  Duration takes{0};  // ignored for kTimeout, which takes the hook's timeout
  HookOutcome result = HookOutcome::kOk;
};

// The model of one of the group's hooks: `model` for every member but those
// in `members`, which have their own.
struct SimulatedHook {
  HookModel model;
  std::map<std::string, HookModel> members;  // by member name
  const HookModel& For(const std::string& member) const;
};

// Empty when `model` can model the group's hook `which` ("before_scale_down",
// "after_scale_up"), else why not: the group has no such hook, or an ok or
// failing run that takes at least the hook's timeout (it would time out).
std::string CheckHookModel(const GroupRule& rule, std::string_view which, const HookModel& model);

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
  // Windows in which another controller leads (leader_election): the group
  // decides as a dry run there (held_by follower), and the membership it
  // left stays as it is.
  std::vector<PauseWindow> follower;
  // Members (by name, also ones created later) protected from scale-down, as
  // if stored through POST .../protect before the start.
  std::set<std::string> protected_members;
  // Modelled health-check results by member: 1 passes, 0 fails, a missing
  // sample is unknown; members without a series pass. Used only by groups with
  // `health:` (each round gives every check the same result).
  std::map<std::string, Series> health;
  // Modelled lifecycle hooks. The group's hook commands never run in a
  // simulation: a hook without a model succeeds at once. A hook that takes
  // time takes simulated time: its member keeps running meanwhile and the
  // group's action stays in flight (held action_in_flight) until the first
  // step at or after its end; the action's results arrive in that step.
  std::optional<SimulatedHook> before_scale_down;
  std::optional<SimulatedHook> after_scale_up;
};

// A modelled hook run that ended (or was still running at the end).
struct HookEvent {
  std::string which;   // "before_scale_down", "after_scale_up"
  std::string domain;  // the member it ran for
  TimePoint started{};
  TimePoint ended{};
  HookOutcome result = HookOutcome::kOk;
  bool finished = true;   // false: still running when the simulation ended (cancelled)
  bool proceed = false;   // the action went on (HookRun::proceed)
  std::string outcome;    // SubprocessResult::Describe(): "exit status 1", "timed out after 5m"
  std::string described;  // HookRun::Describe(), as in the action's detail or error
};

// One engine tick.
struct SimulationStep {
  TimePoint time{};
  int64_t running_before = 0;  // in the snapshot the tick saw
  int64_t running = 0;         // after the tick's actions
  int64_t stopped = 0;
  std::optional<Decision> decision;   // absent when the group's interval had not elapsed
  std::optional<Decision> lifecycle;  // a pause or resume made just before the tick
  // Decisions whose actions finished in this step, with their results: this
  // step's own decision, or an earlier one whose hooks took simulated time.
  std::vector<Decision> finished;
  std::vector<HookEvent> hooks;  // hook runs that ended in this step
  // (hook, member) of the hook runs still going on after this step.
  std::vector<std::pair<std::string, std::string>> running_hooks;
};

struct SimulationResult {
  std::vector<SimulationStep> steps;
  int64_t scale_ups = 0;  // decisions that acted (or began to), by direction
  int64_t scale_downs = 0;
  int64_t members_added = 0;    // operations that succeeded (start + create)
  int64_t members_removed = 0;  // operations that succeeded (stop + delete)
  // Target tracking on a source: the simulated time (steps times `step`) in
  // which fewer members ran than ceil(source value / per_member_target), counting
  // the members running when the value was read (before the step's actions).
  // nullopt for other groups.
  std::optional<Duration> under_provisioned;

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
