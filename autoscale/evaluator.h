#pragma once
// The evaluator: a pure function of (rule, membership, snapshot, source
// readings, clock, previous group state) -> (decision, next group state). No
// libvirt, no I/O, no clock of its own: tests drive it with a fake clock.
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
//   and a source error, absent or stale reading make the condition "missing".
//   So does an ABSURD reading: non-finite, negative, a cpu/memory utilisation
//   above 1, or a source value (a count or level: queue depth, ...) beyond 2^53. When a missing
//   value could change the outcome, `on_missing_data` decides: hold (default), scale_up or
//   scale_down (still bounded, cooled down and rate limited).
// - An unknown membership always holds, whatever on_missing_data says:
//   libvirt down, a snapshot older than `stale_after`, or one taken before the
//   latest libvirt reconnect (held_by stale_snapshot).
// - Every count is overflow-safe: the wanted size is clamped to [min, max]
//   before any step logic, then to the direction's rate limit
//   (RateLimit, HPA defaults). Bounds count ACTIVE members (every state but
//   stopped), so paused or crashed members still count towards max.
// - Stabilization windows (HPA `behavior`): every evaluation with trusted data
//   records its recommendation (the wanted size, or the active count when
//   nothing is wanted). Scale down goes only to the HIGHEST recommendation of
//   scale_down.stabilization_window, scale up only to the LOWEST of
//   scale_up.stabilization_window, this evaluation's included; when that is
//   the current size the group holds (held_by stabilization_window). Restoring
//   bounds is never held by a window. A fresh state (agent start) starts each
//   window at the active count, so a restart waits out a whole window.
// - per_member_*: source value / max(running, 1), so a queue can scale a group
//   up from zero running members.
// - Schedules (`schedules:`, autoscale/schedule.h): while a window is open at
//   `now.wall`, its min/max replace the group's in every step above, and the
//   decision names the window (Decision::schedule).
// - Timers (`for`, cooldowns, backoff, settle, rate-limit windows, staleness)
//   run on the monotonic clock; wall time only dates the decision, opens
//   schedule windows and converts the timestamps read back from libvirt
//   (created-at, scale stamps).
//
// - Swaps (health.replace, refresh): one member at a time is replaced by a new
//   one, the new one first (max + 1 active at most), the old one removed once
//   its replacement is up. A health swap comes before scaling; a refresh swap
//   begins only when no scale action is due and no cooldown runs, and deletes
//   stale stopped members first (DESIGN.md "Behaviour keys", docs/configuration.md).
//
// Evaluate runs these steps (functions in evaluator.cc, tested through
// Evaluate; the pure helpers they share are declared below and tested alone):
//   MembershipDoubt -> read conditions -> ChooseIntent -> Replace (health) ->
//   DeleteStaleStopped, Replace (refresh) -> ApplyGuards -> plan.
//
//   Evaluation e = Evaluate({.rule = r, .members = m, .snapshot = snap.get(),
//                            .sources = readings, .now = clock.Now(), .stale_after = 30s,
//                            .connection_generation = conn.generation()}, state);
//   state = e.next;  // e.decision says what to do (e.decision.actions) or what held it
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "autoscale/decision.h"
#include "autoscale/planner.h"
#include "autoscale/rules.h"
#include "collectors/snapshot.h"
#include "collectors/sources/reading.h"
#include "common/clock.h"

namespace virtscale::autoscale {

// Per-group memory between evaluations, all on the monotonic clock. Owned by
// the engine, rebuilt empty on restart: membership comes from libvirt, and
// cooldowns also run from the members' created-at and scale stamps.
struct Recommendation {
  MonoTime at;
  int64_t members = 0;
};

struct GroupState {
  std::string signature;  // conditions the timers belong to; a change resets them
  std::vector<std::optional<MonoTime>> up_since;    // per scale_up condition: true since
  std::vector<std::optional<MonoTime>> down_since;  // per scale_down condition
  std::optional<MonoTime> last_scale_up;            // cooldown starts
  std::optional<MonoTime> last_scale_down;
  bool in_flight = false;                // the engine is executing this group's actions
  std::optional<MonoTime> settle_after;  // act only on snapshots taken after this
  std::optional<MonoTime> retry_after;   // backoff after a failed action
  int consecutive_failures = 0;
  // Members changed per direction (index: Direction), for the rate limits.
  struct Change {
    MonoTime at;
    int64_t members = 0;
  };
  std::vector<Change> changes[2];
  // Stabilization windows (HPA): the recommendations of the window that can
  // still be its extreme, oldest first. For scale_down (the window's highest)
  // each is higher than every later one; for scale_up (the lowest), lower.
  // So the front is the extreme, and its age says when it stops holding.
  std::deque<Recommendation> stabilization[2];  // index: Direction
  bool stabilization_started = false;           // the windows were started at the active count
  // The member being swapped for a new one: unhealthy (health.replace) or made
  // from an older template (refresh). One swap at a time: a new member first,
  // then the old one is removed once a member that was not up at planning runs
  // (refresh: runs and is healthy).
  struct Replacement {
    std::string member;
    bool refresh = false;
    int64_t active_before = 0;           // active members when the replacement was planned
    std::vector<std::string> up_before;  // members up then
  };
  std::optional<Replacement> replacing;
};

struct EvaluationInput {
  const GroupRule& rule;
  const Membership& members;
  const Snapshot* snapshot = nullptr;  // nullptr: no sample yet
  const SourceReadings& sources;
  Instant now{};
  Duration stale_after{std::chrono::seconds(30)};
  // LibvirtConnection::generation() now; a snapshot of an older one is not trusted.
  uint64_t connection_generation = 0;
  bool dry_run = false;  // global --dry-run (the rule's own dry_run is read too)
  // Set when another controller acts (leader_election): this one decides as a
  // dry run, held_by "follower", and the text (Leadership::WhyNotLeader) says why.
  std::optional<std::string> follower = std::nullopt;
};

struct Evaluation {
  Decision decision;  // actions: planned operations (result "pending", or "dry_run")
  GroupState next;
};

[[nodiscard]] Evaluation Evaluate(const EvaluationInput& in, const GroupState& state);

// Identifies a rule's conditions; GroupState timers are kept only while it matches.
std::string ConditionSignature(const GroupRule& rule);

// Helpers of Evaluate's steps, exposed for their own tests.

// Copies the membership's counts and member states (and health failures) into `d`.
void DescribeMembers(const Membership& members, Decision& d);

// Why the membership cannot be trusted (libvirt down, stale, before the latest
// reconnect), or "" when it can.
std::string MembershipDoubt(const EvaluationInput& in);

// What a reading may be, by kind; nullopt when plausible, else why not.
enum class ReadingUse { kUtilization, kCount };
std::optional<std::string> ImplausibleReading(double v, ReadingUse use);

// A wanted group size (any double, NaN and infinities included) as a count in
// [lo, hi]; never overflows.
int64_t ClampedSize(double wanted, int64_t lo, int64_t hi);

}  // namespace virtscale::autoscale
