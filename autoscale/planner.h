#pragma once
// Group membership and the planner: which domains belong to a group, and which
// Operations carry out "up by n" / "down by n". Pure functions of the snapshot.
//
// Membership. A domain belongs to group G when its virtscale metadata names G
// (it was created by virtscale), else when its name starts with G's
// `members.name_prefix` (adopted; the longest matching prefix wins when
// prefixes nest). Metadata wins over a prefix. States: running and blocked
// count as running; shutoff and crashed as stopped (startable warm pool);
// paused, shutdown-in-progress, pmsuspended and nostate as neither.
//
// Scale up: start stopped members first (virtscale-created ones newest first,
// then adopted ones by name), then kCreate from the template for the rest.
//
// Scale down: running members that virtscale created, newest created_at first
// (ties: name descending), get kStop or kDelete per `scale_down.action`.
// Adopted domains (no metadata) are never deleted: with `action: delete` they
// are never touched; with `action: stop` they may be stopped, but only after
// every running virtscale-created member (by name, descending). This keeps a
// group of pre-defined VMs usable as a start/stop warm pool.
//
//   auto members = IndexMembers(rules, snapshot);      // one pass for all groups
//   Plan plan = PlanScaleUp(rule, members[i], 2);       // {start web-2, create}
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autoscale/actuator.h"
#include "autoscale/rules.h"
#include "collectors/snapshot.h"

namespace virtscale::autoscale {

struct Member {
  std::string name;
  DomainState state = DomainState::kNoState;
  bool created = false;  // carries virtscale metadata for this group
  int64_t created_at_unix = 0;
  std::optional<double> cpu;     // DomainStats::cpu_utilization
  std::optional<double> memory;  // DomainStats::memory_utilization
};

bool IsRunning(DomainState s);  // running, blocked
bool IsStopped(DomainState s);  // shutoff, crashed

struct Membership {
  std::vector<Member> members;  // sorted by name
  int64_t running = 0;
  int64_t stopped = 0;
};

// Membership of every group of `rules` (same order), in one pass over the
// snapshot. A null snapshot yields empty memberships.
std::vector<Membership> IndexMembers(const RuleSet& rules, const Snapshot* snapshot);

struct Plan {
  std::vector<Operation> operations;
  // Why fewer than the requested operations were planned; empty when complete.
  std::string shortfall;
};

Plan PlanScaleUp(const GroupRule& rule, const Membership& members, int64_t n);
Plan PlanScaleDown(const GroupRule& rule, const Membership& members, int64_t n);

}  // namespace virtscale::autoscale
