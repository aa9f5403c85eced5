#pragma once
// The evaluator: a pure function of (rule, membership, snapshot, source
// readings, clock, previous group state) -> (decision, next group state). No
// libvirt, no I/O, no wall clock: tests drive it with a fake clock.
//
// Semantics (DESIGN.md "Rules"):
// - Conditions follow Prometheus alert `for`: inactive -> pending (true, held
//   less than `for`) -> firing; the timer resets whenever the condition is false
//   or its data is missing.
// - Scale up when ANY up condition fires; scale down only when ALL down
//   conditions fire; both -> up wins. Empty `when` never triggers.
// - Target tracking (`target:`): desired = ceil(value / per_member_target),
//   unchanged within the tolerance; `step`, when written, caps each change.
// - Steps are counts or percentages of the running members (ceil, >= 1); the
//   result is clamped to [min, max]. A group found outside its bounds is brought
//   back inside first, regardless of metrics and cooldowns.
// - Cooldowns: scale_up.cooldown runs from the last scale-up; scale_down.cooldown
//   runs from the last scale action in EITHER direction, so a fresh scale-up is
//   not undone at once (the usual anti-thrash rule).
// - Missing data is never 0. cpu/memory with no running members or no samples,
//   a snapshot older than `stale_after` or with libvirt down, and a source error
//   or absent reading make the condition "missing". When a missing value could
//   change the outcome, `on_missing_data` decides: hold (default), scale_up or
//   scale_down (still bounded and cooled down).
// - per_member_*: source value / max(running, 1), so a queue can scale a group
//   up from zero running members.
//
//   Evaluation e = Evaluate({.rule = r, .members = m, .snapshot = snap.get(),
//                            .sources = readings, .now = now, .stale_after = 30s}, state);
//   state = e.next;  // e.decision says what to do (e.decision.actions) or what held it
#include <optional>
#include <string>
#include <vector>

#include "autoscale/decision.h"
#include "autoscale/planner.h"
#include "autoscale/rules.h"
#include "collectors/snapshot.h"
#include "collectors/sources/reading.h"

namespace virtscale::autoscale {

// Per-group memory between evaluations. Owned by the engine, rebuilt empty on
// restart: membership comes from libvirt, and cooldowns also run from the
// newest created member's created-at (see Evaluate).
struct GroupState {
  std::string signature;  // conditions the timers belong to; a change resets them
  std::vector<std::optional<TimePoint>> up_since;    // per scale_up condition: true since
  std::vector<std::optional<TimePoint>> down_since;  // per scale_down condition
  std::optional<TimePoint> last_scale_up;            // cooldown starts
  std::optional<TimePoint> last_scale_down;
  bool in_flight = false;                 // the engine is executing this group's actions
  std::optional<TimePoint> settle_after;  // act only on snapshots taken after this
  std::optional<TimePoint> retry_after;   // backoff after a failed action
  int consecutive_failures = 0;
};

struct EvaluationInput {
  const GroupRule& rule;
  const Membership& members;
  const Snapshot* snapshot = nullptr;  // nullptr: no sample yet
  const SourceReadings& sources;
  TimePoint now{};
  Duration stale_after{std::chrono::seconds(30)};
  bool dry_run = false;  // global --dry-run (the rule's own dry_run is read too)
};

struct Evaluation {
  Decision decision;  // actions: planned operations (result "pending", or "skipped" in dry run)
  GroupState next;
};

[[nodiscard]] Evaluation Evaluate(const EvaluationInput& in, const GroupState& state);

// Identifies a rule's conditions; GroupState timers are kept only while it matches.
std::string ConditionSignature(const GroupRule& rule);

}  // namespace virtscale::autoscale
