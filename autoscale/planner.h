#pragma once
// Group membership and the planner: which domains belong to a group, and which
// Operations carry out "up by n" / "down by n". Pure functions of the snapshot.
//
// Membership. A domain belongs to group G when its virtscale metadata names G,
// else when its name starts with G's `members.name_prefix` (the longest
// matching prefix wins when prefixes nest). A member is OWNED (may be deleted)
// only when that metadata also records the domain's own UUID (DESIGN.md
// "Ownership"): a copy made with virt-clone or `dumpxml | define` carries the
// element but not its UUID and is adopted like any hand-made member. States
// follow DESIGN.md "Member states": every state but stopped (shut off) is
// active and counts towards `max`.
//
// Scale up: start stopped members first (owned ones newest first, then adopted
// ones by name), then kCreate from the template for the rest. A stale stopped
// member (IsStale) is never started: refresh deletes it, and a create takes its place.
//
// Scale down: running members the group owns, in `scale_down.order` (newest:
// newest created_at first, ties name descending; oldest: the reverse;
// least_loaded: lowest cpu first, members without a cpu reading last, ties
// newest first), get kStop or kDelete per `scale_down.action`. Adopted
// members are never deleted: with `action: delete` they are never touched;
// with `action: stop` they may be stopped, but only after every running owned
// member (by name, descending). Members in other states (paused, crashed, ...)
// are never chosen: someone else is handling them. Protected members (the
// lifecycle API) are never chosen either; the plan's shortfall names them.
//
//   auto members = IndexMembers(rules, snapshot);      // one pass for all groups
//   Plan plan = PlanScaleUp(rule, members[i], 2);       // {start web-2, create}
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autoscale/actuator.h"
#include "autoscale/decision.h"
#include "autoscale/rules.h"
#include "collectors/snapshot.h"

namespace virtscale::autoscale {

struct Member {
  std::string name;
  DomainState domain_state = DomainState::kNoState;
  int state_reason = 0;  // libvirt's reason for domain_state
  MemberState state = MemberState::kOther;
  bool owned = false;           // created for this group: its metadata records its own UUID
  int64_t created_at_unix = 0;  // owned members only
  // The group's scale stamps found on this member (0: none); see ScaleStamp.
  int64_t last_scale_up_unix = 0;
  int64_t last_scale_down_unix = 0;
  // Set through the lifecycle API: never chosen for scale-down.
  bool is_protected = false;
  int64_t protected_changed_ms = 0;  // unix ms of the stored change; 0: never
  // With `health:` checks: MemberHealthName ("grace", "healthy", "unhealthy", ...);
  // "" without. A member unhealthy_after rounds in a row failing has state kUnhealthy.
  std::string health;
  std::string health_output;  // while failing or unhealthy: "check: output"
  // Owned members only: DomainTemplate::content_hash of the template it was made
  // from ("" when created before `refresh:` existed, or adopted).
  std::string template_hash;
  std::optional<double> cpu;     // DomainStats::cpu_utilization
  std::optional<double> memory;  // DomainStats::memory_utilization
};

// running: running; paused: paused; stopped: shut off; other: blocked, shutting
// down, crashed, pmsuspended, no state. (kUnhealthy comes from health checks.)
MemberState MemberStateOf(DomainState s);

struct Membership {
  std::vector<Member> members;  // sorted by name
  int64_t running = 0;
  int64_t stopped = 0;
  int64_t count[kMemberStates] = {};  // by MemberState
  // Paused through the lifecycle API: the newest stored change among the
  // members (LifecycleStamp), or the engine's own newer one.
  bool paused = false;
  int64_t paused_changed_ms = 0;  // unix ms; 0: never
  int64_t active() const { return static_cast<int64_t>(members.size()) - stopped; }
};

// Membership of every group of `rules` (same order), in one pass over the
// snapshot. A null snapshot yields empty memberships.
std::vector<Membership> IndexMembers(const RuleSet& rules, const Snapshot* snapshot);

// With `refresh:`, whether `m` was made from an older template: owned, with a
// recorded hash that differs from the loaded template's. Adopted members and
// members without a recorded hash (created before 0.3) are never stale.
bool IsStale(const GroupRule& rule, const Member& m);

// Running and, with health checks, healthy: what refresh counts as available.
bool IsReady(const Member& m);

struct Plan {
  std::vector<Operation> operations;
  // Why fewer than the requested operations were planned; empty when complete.
  std::string shortfall;
};

Plan PlanScaleUp(const GroupRule& rule, const Membership& members, int64_t n);
Plan PlanScaleDown(const GroupRule& rule, const Membership& members, int64_t n);

}  // namespace virtscale::autoscale
