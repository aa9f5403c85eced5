#include "autoscale/planner.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <string_view>
#include <unordered_map>

#include "autoscale/domain_template.h"
#include "autoscale/evaluator.h"
#include "autoscale/health_check.h"

namespace virtscale::autoscale {

MemberState MemberStateOf(DomainState s) {
  switch (s) {
    case DomainState::kRunning:
      return MemberState::kRunning;
    case DomainState::kPaused:
      return MemberState::kPaused;
    case DomainState::kShutoff:
      return MemberState::kStopped;
    default:
      return MemberState::kOther;
  }
}

namespace {

bool IsRunning(const Member& m) { return m.state == MemberState::kRunning; }
bool IsStopped(const Member& m) { return m.state == MemberState::kStopped; }

// UUIDs compare case-insensitively (libvirt prints lower case; a hand edit may not).
bool SameUuid(std::string_view a, std::string_view b) {
  return !a.empty() && a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::vector<Membership> IndexMembers(const RuleSet& rules, const Snapshot* snapshot) {
  std::vector<Membership> out(rules.groups.size());
  if (snapshot == nullptr) return out;
  std::unordered_map<std::string_view, size_t> by_name;
  std::unordered_map<std::string_view, size_t> by_prefix;
  std::set<size_t, std::greater<>> prefix_lengths;  // longest first
  for (size_t i = 0; i < rules.groups.size(); ++i) {
    const GroupRule& g = rules.groups[i];
    by_name.emplace(g.name, i);
    if (!g.name_prefix.empty()) {
      by_prefix.emplace(g.name_prefix, i);
      prefix_lengths.insert(g.name_prefix.size());
    }
  }
  for (const DomainStats& d : snapshot->domains) {
    std::optional<size_t> group;
    bool by_metadata = false;
    if (d.metadata) {
      if (auto it = by_name.find(d.metadata->group); it != by_name.end()) {
        group = it->second;
        by_metadata = true;
      }
    }
    if (!group) {
      const std::string_view name = d.name;
      for (size_t len : prefix_lengths) {
        if (len > name.size()) continue;
        if (auto it = by_prefix.find(name.substr(0, len)); it != by_prefix.end()) {
          group = it->second;
          break;
        }
      }
    }
    // A domain created for another (maybe removed) group is not adopted by prefix.
    if (!group || (d.metadata && !by_metadata)) continue;
    Membership& m = out[*group];
    Member member;
    member.name = d.name;
    member.domain_state = d.state;
    member.state_reason = d.state_reason;
    member.state = MemberStateOf(d.state);
    member.owned = by_metadata && SameUuid(d.metadata->uuid, d.uuid);
    if (member.owned) {
      member.created_at_unix = d.metadata->created_at_unix;
      member.template_hash = d.metadata->template_hash;
    }
    if (d.scale_stamp && d.scale_stamp->group == rules.groups[*group].name) {
      member.last_scale_up_unix = d.scale_stamp->last_up_unix;
      member.last_scale_down_unix = d.scale_stamp->last_down_unix;
    }
    if (d.lifecycle && d.lifecycle->group == rules.groups[*group].name) {
      member.is_protected = d.lifecycle->is_protected;
      member.protected_changed_ms = d.lifecycle->protected_changed_ms;
      if (d.lifecycle->paused_changed_ms > m.paused_changed_ms) {
        m.paused = d.lifecycle->paused;
        m.paused_changed_ms = d.lifecycle->paused_changed_ms;
      }
    }
    member.cpu = d.cpu_utilization;
    member.memory = d.memory_utilization;
    ++m.count[static_cast<int>(member.state)];
    if (IsRunning(member)) ++m.running;
    if (IsStopped(member)) ++m.stopped;
    m.members.push_back(std::move(member));
  }
  // Snapshot domains are sorted by name, so members already are.
  return out;
}

bool IsStale(const GroupRule& rule, const Member& m) {
  return rule.refresh && rule.template_doc && m.owned && !m.template_hash.empty() &&
         m.template_hash != rule.template_doc->content_hash();
}

bool IsReady(const Member& m) {
  return IsRunning(m) && (m.health.empty() || m.health == MemberHealthName(MemberHealth::kHealthy));
}

namespace {

using MemberLess = bool (*)(const Member&, const Member&);

// Newest created_at first; ties: name descending.
bool Newer(const Member& a, const Member& b) {
  if (a.created_at_unix != b.created_at_unix) return a.created_at_unix > b.created_at_unix;
  return a.name > b.name;
}

// Oldest created_at first; ties: name ascending.
bool Older(const Member& a, const Member& b) { return Newer(b, a); }

// The member's cpu as the evaluator reads it: an absurd reading is no reading.
std::optional<double> Cpu(const Member& m) {
  if (!m.cpu || ImplausibleReading(*m.cpu, ReadingUse::kUtilization)) return std::nullopt;
  return m.cpu;
}

// Lowest CPU utilisation first; members without a reading after those with
// one; ties (equal or both missing): newest first.
bool LessLoaded(const Member& a, const Member& b) {
  const std::optional<double> ca = Cpu(a);
  const std::optional<double> cb = Cpu(b);
  if (ca.has_value() != cb.has_value()) return ca.has_value();
  if (ca && *ca != *cb) return *ca < *cb;
  return Newer(a, b);
}

MemberLess OwnedLess(DownOrder order) {
  switch (order) {
    case DownOrder::kNewest:
      return &Newer;
    case DownOrder::kOldest:
      return &Older;
    case DownOrder::kLeastLoaded:
      return &LessLoaded;
  }
  return &Newer;
}

bool NameAscending(const Member& a, const Member& b) { return a.name < b.name; }
bool NameDescending(const Member& a, const Member& b) { return a.name > b.name; }

// The members `pick` selects: owned first, by `owned_less`; then adopted, by
// `adopted_less`.
std::vector<const Member*> Order(const Membership& members, bool (*pick)(const Member&),
                                 MemberLess owned_less, MemberLess adopted_less) {
  std::vector<const Member*> out;
  for (const Member& m : members.members)
    if (pick(m)) out.push_back(&m);
  std::stable_sort(out.begin(), out.end(), [&](const Member* a, const Member* b) {
    if (a->owned != b->owned) return a->owned;
    return a->owned ? owned_less(*a, *b) : adopted_less(*a, *b);
  });
  return out;
}

Operation MakeOp(const GroupRule& rule, Operation::Kind kind, std::string domain) {
  Operation op;
  op.kind = kind;
  op.group = rule.name;
  op.domain = std::move(domain);
  if (kind == Operation::Kind::kCreate) {
    op.template_path = rule.template_path;
    op.tmpl = rule.template_doc;
  }
  op.shutdown_timeout = rule.shutdown_timeout;
  return op;
}

}  // namespace

Plan PlanScaleUp(const GroupRule& rule, const Membership& members, int64_t n) {
  Plan plan;
  auto stopped = Order(members, &IsStopped, &Newer, &NameAscending);
  for (const Member* m : stopped) {
    if (static_cast<int64_t>(plan.operations.size()) >= n) break;
    if (IsStale(rule, *m)) continue;
    plan.operations.push_back(MakeOp(rule, Operation::Kind::kStart, m->name));
  }
  const int64_t missing = n - static_cast<int64_t>(plan.operations.size());
  if (missing > 0) {
    if (rule.template_path.empty()) {
      plan.shortfall = fmt::format(
          "{} of {} planned: no stopped member left and the group has no template", n - missing, n);
    } else {
      for (int64_t i = 0; i < missing; ++i)
        plan.operations.push_back(MakeOp(rule, Operation::Kind::kCreate, ""));
    }
  }
  return plan;
}

Plan PlanScaleDown(const GroupRule& rule, const Membership& members, int64_t n) {
  Plan plan;
  const bool del = rule.down_action == DownAction::kDelete;
  auto running = Order(members, &IsRunning, OwnedLess(rule.down_order), &NameDescending);
  std::vector<std::string> skipped;  // protected
  for (const Member* m : running) {
    if (static_cast<int64_t>(plan.operations.size()) >= n) break;
    if (!m->owned && del) break;  // adopted domains are never deleted, nor stopped instead
    if (m->is_protected) {
      skipped.push_back(m->name);
      continue;
    }
    plan.operations.push_back(
        MakeOp(rule, del ? Operation::Kind::kDelete : Operation::Kind::kStop, m->name));
  }
  const int64_t planned = static_cast<int64_t>(plan.operations.size());
  if (planned < n) {
    plan.shortfall =
        del ? fmt::format(
                  "{} of {} planned: only members the group owns can be deleted "
                  "(adopted domains and copies are never deleted)",
                  planned, n)
            : fmt::format("{} of {} planned: no running member left to stop", planned, n);
  }
  if (!skipped.empty()) {
    plan.shortfall += fmt::format("{}protected, never chosen: {}",
                                  plan.shortfall.empty() ? "" : "; ", fmt::join(skipped, ", "));
  }
  return plan;
}

}  // namespace virtscale::autoscale
