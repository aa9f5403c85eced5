#pragma once
// Decision records: every evaluation of a group leaves one, saying what the
// evaluator saw (metric values, each condition's state and how long it held) and
// what came of it: an action (and how it ended) or what held the group.
// Served newest first by /api/v1/decisions and on the landing page.
//
// Records that change something are kept apart from no-op evaluations (see
// DecisionLog), so a busy history of holds never pushes the actions out.
//
//   {"id": 7, "group": "web", "time": "2026-11-26T22:10:01.000Z",
//    "members": {"running": 2, "paused": 0, "stopped": 1, "unhealthy": 0, "other": 0,
//                "active": 2, "by_state": {"running": ["web-1", "web-2"], "stopped": ["web-3"]}},
//    "min": 1, "max": 6, "schedule": null, "desired": 3,
//    "metrics": {"cpu:avg": 0.91},
//    "conditions": [{"direction": "up", "index": 0, "condition": "cpu:avg > 0.8 for 30s",
//                    "state": "firing", "held_seconds": 40, "value": 0.91}],
//    "outcome": "scale_up", "direction": "up", "reason": "...",
//    "actions": [{"kind": "start", "domain": "web-3", "result": "ok", ...}], "result": "ok"}
// With `refresh:` also "refresh": {"due": 2, "max_unavailable": 1, "without_hash": 0,
// "template_hash": "9f86...", "replacing": "web-1"} ("replacing": null between swaps).
#include <chrono>
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "autoscale/actuator.h"
#include "autoscale/rules.h"
#include "common/clock.h"

namespace virtscale::autoscale {

// Wall time, for display; timers use MonoTime (common/clock.h).
using TimePoint = WallTime;

enum class ConditionState { kInactive = 0, kPending = 1, kFiring = 2 };
const char* ConditionStateName(ConditionState s);  // "inactive", "pending", "firing"

// kPaused / kResumed: an operator paused or resumed the group (lifecycle API).
enum class Outcome { kNone, kScaleUp, kScaleDown, kHeld, kPaused, kResumed };
const char* OutcomeName(Outcome o);  // "none", "scale_up", "scale_down", "held", "paused", ...
std::optional<Outcome> OutcomeFromName(std::string_view name);  // inverse of OutcomeName

// What kept a group from acting although a direction was wanted (or, for
// kNoSnapshot / kMissingData, from knowing whether to act).
enum class HeldBy {
  kNone,
  kNoSnapshot,        // no sample yet: membership unknown
  kMissingData,       // on_missing_data: hold
  kCooldown,          // direction's cooldown still running
  kBoundMin,          // already at min
  kBoundMax,          // already at max
  kDryRun,            // global --dry-run or the group's dry_run
  kInFlight,          // a previous action is still running
  kAwaitingSnapshot,  // the last action finished after the newest snapshot was taken
  kBackoff,           // the last action failed; retry after a backoff
  kNoCandidate,       // nothing to start/create/stop/delete
  kStaleSnapshot,     // membership unknown: libvirt down, snapshot stale or before a reconnect
  kRateLimit,         // the direction's rate limit is used up for its period
  kPaused,            // an operator paused the group (lifecycle API)
  kStabilization,     // the direction's stabilization window allows no change yet
  kFollower,          // another controller is the leader (leader_election): a dry run here
};
inline constexpr int kHeldByCount = static_cast<int>(HeldBy::kFollower) + 1;
const char* HeldByName(HeldBy h);  // "cooldown", "bound_max", "missing_data", ...

struct MetricValue {
  std::string key;              // "cpu:avg", "source:jobs", "source:jobs:per_member"
  std::optional<double> value;  // absent when missing
  std::string missing_reason;   // why absent, e.g. "source error: connection refused"
};

struct ConditionReport {
  Direction direction = Direction::kUp;
  size_t index = 0;
  std::string description;  // "cpu:avg > 0.8 for 30s"
  std::string metric_key;
  double threshold = 0;
  ConditionState state = ConditionState::kInactive;
  Duration held_for{0};  // time true so far (0 when inactive)
  std::optional<double> value;
  bool missing = false;
};

// The words are those of virtscale_scale_actions_total{result} (ok, error,
// dry_run); pending and cancelled actions are not counted there.
enum class ActionResult { kPending, kOk, kError, kDryRun, kCancelled };
const char* ActionResultName(ActionResult r);  // "pending", "ok", "error", "dry_run", "cancelled"

// How a decision's actions ended, as a whole.
enum class DecisionResult { kNone, kPending, kOk, kError, kPartial, kDryRun, kCancelled };
const char* DecisionResultName(DecisionResult r);  // "", "pending", "ok", ..., "dry_run"

struct ActionRecord {
  Operation operation;
  ActionResult result = ActionResult::kPending;
  std::string domain;  // the domain acted on (new name for kCreate)
  std::string error;
  std::string detail;  // on success, e.g. hook output: "before_scale_down hook /bin/drain: ok"
  double duration_seconds = 0;
};

// Member states (DESIGN.md "Member states"); every state but kStopped is active
// and counts towards `max`.
enum class MemberState { kRunning = 0, kPaused, kStopped, kUnhealthy, kOther };
inline constexpr int kMemberStates = 5;
const char* MemberStateName(MemberState s);  // "running", "paused", "stopped", ...

// What a stabilization window made of a recommendation (evaluator.h).
struct StabilizationReport {
  Direction direction = Direction::kDown;
  Duration window{0};
  int64_t recommendation = 0;  // this evaluation's
  int64_t stabilized = 0;      // what the window allows: the size acted towards
  // The window's recommendations that can still be its extreme, oldest first
  // (the first is the extreme); at most kMaxReported of them.
  std::vector<std::pair<TimePoint, int64_t>> history;
  size_t history_omitted = 0;  // newer ones beyond kMaxReported
  static constexpr size_t kMaxReported = 20;
};

// What `forecast:` predicted at a decision (evaluator.h), as JSON:
//   {"mode": "scale_ahead", "source": "jobs", "horizon": "15m", "members": 4,
//    "model": "peak 180.2 (daily 7 days, level +2.1)", "applied": true}
// or, without a forecast, "members": null and "unavailable": why.
struct ForecastReport {
  ForecastMode mode = ForecastMode::kForecastOnly;
  std::string source;
  Duration horizon{0};
  std::optional<int64_t> members;  // ceil(peak / per_member_target), within the bounds in force
  std::string model;               // LoadForecast::Describe()
  std::string unavailable;         // why there is no forecast: no history yet, stale, too short
  bool applied = false;            // scale_ahead raised the recommendation to it
  nlohmann::json ToJson() const;
};

// The `schedules:` window whose bounds a decision used, as JSON:
//   {"line": 12, "cron": "0 8 * * 1-5", "timezone": "Europe/Berlin", "min": 4, "max": null,
//    "started_at": "2026-12-01T07:00:00.000Z", "ends_at": "2026-12-01T17:00:00.000Z"}
struct ScheduleInForce {
  int line = 0;  // in the rule file
  std::string cron;
  std::string timezone;
  std::optional<int64_t> min;  // absent: the group's own applies
  std::optional<int64_t> max;
  TimePoint started_at{};
  TimePoint ends_at{};

  static ScheduleInForce Of(const ActiveSchedule& window);
  nlohmann::json ToJson() const;
};

struct Decision {
  uint64_t id = 0;  // assigned by DecisionLog
  std::string group;
  TimePoint time{};
  std::optional<TimePoint> snapshot_time;
  int64_t running = 0;
  int64_t stopped = 0;
  int64_t active = 0;                                              // every state but stopped
  int64_t by_state_count[kMemberStates] = {};                      // by MemberState
  std::vector<std::pair<std::string, MemberState>> member_states;  // by name
  // Members whose health checks fail (failing or unhealthy): name -> "health: check: output".
  std::vector<std::pair<std::string, std::string>> health_failures;
  // health.replace or refresh: the member this decision's actions replace.
  std::string replacing;
  // With `refresh:`: members made from an older template still to replace
  // (running and stopped), and the owned members without a recorded hash.
  struct RefreshProgress {
    int64_t due = 0;
    int64_t max_unavailable = 0;
    int64_t without_hash = 0;
    std::string template_hash;  // of the loaded template
  };
  std::optional<RefreshProgress> refresh;
  std::optional<StabilizationReport> stabilization;
  std::optional<ForecastReport> forecast;  // with `forecast:`
  int64_t min = 0;  // the bounds in force: the group's, or its open schedule window's
  int64_t max = 0;
  std::optional<ScheduleInForce> schedule;  // the open window, if any
  int64_t desired = 0;                      // what the group should have after this decision
  std::vector<MetricValue> metrics;
  std::vector<ConditionReport> conditions;
  Outcome outcome = Outcome::kNone;
  std::optional<Direction> direction;  // wanted direction, also when held
  HeldBy held_by = HeldBy::kNone;
  std::string reason;  // one human sentence: why this outcome
  std::vector<ActionRecord> actions;
  DecisionResult result = DecisionResult::kNone;

  // Planned actions, whether they ran, failed, were cancelled or were a dry
  // run: the records an operator looks for. Everything else is a no-op.
  // A pause or resume is a change too.
  bool IsChange() const {
    return !actions.empty() || outcome == Outcome::kPaused || outcome == Outcome::kResumed;
  }
  nlohmann::json ToJson() const;
};

// RFC 3339 UTC with milliseconds: "2026-11-26T22:10:01.123Z".
std::string FormatTime(TimePoint t);

// Which records a reader wants (/api/v1/decisions, the landing page). An
// empty set matches everything.
struct DecisionFilter {
  std::set<std::string> groups;
  std::set<Outcome> outcomes;
  std::optional<TimePoint> since;  // records at or after this time
  bool changes_only = false;       // Decision::IsChange() records only
  size_t limit = 100;
};

// Two bounded rings, one id sequence: changes (Decision::IsChange) and no-op
// evaluations, so that the last `changes` actions survive any number of idle
// evaluations. Readers get both merged, newest (highest id) first. Not
// thread-safe (the engine locks).
//
//   DecisionLog log(1000, 500);
//   log.Add(std::move(decision));
//   DecisionFilter recent;
//   recent.changes_only = true;
//   log.Json(recent);  // the newest 100 changes
class DecisionLog {
 public:
  DecisionLog(size_t changes, size_t evaluations);
  uint64_t Add(Decision d);     // assigns and returns the id
  Decision* Find(uint64_t id);  // nullptr once evicted
  nlohmann::json Json(const DecisionFilter& filter) const;
  size_t changes() const { return changes_.ring.size(); }
  size_t evaluations() const { return evaluations_.ring.size(); }

 private:
  struct Ring {
    size_t capacity;
    std::deque<Decision> ring;  // ids increasing
  };
  uint64_t next_id_ = 1;
  Ring changes_;
  Ring evaluations_;
};

}  // namespace virtscale::autoscale
