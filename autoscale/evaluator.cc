#include "autoscale/evaluator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace virtscale::autoscale {
namespace {

// Durations in reasons read "42s", not "42s17ms"; `round_up` for time left.
std::string Whole(Duration d, bool round_up = false) {
  if (d < std::chrono::seconds(1)) return FormatDuration(d);
  return FormatDuration(round_up ? std::chrono::ceil<std::chrono::seconds>(d)
                                 : std::chrono::floor<std::chrono::seconds>(d));
}

struct Observed {
  std::optional<double> value;
  std::string missing_reason;
};

class MetricReader {
 public:
  explicit MetricReader(const EvaluationInput& in) : in_(in) {
    const Snapshot* s = in.snapshot;
    if (!s->libvirt_up) {
      stale_reason_ = "libvirt is down";
    } else if (in.now - s->taken_at > in.stale_after) {
      stale_reason_ = fmt::format("snapshot is stale ({:.1f}s old, limit {})",
                                  std::chrono::duration<double>(in.now - s->taken_at).count(),
                                  FormatDuration(in.stale_after));
    }
  }

  const std::string& stale_reason() const { return stale_reason_; }

  // `key` doubles as the cache key and the metric's name in the decision.
  const Observed& Get(const std::string& key, const MetricRef& metric, Aggregate aggregate,
                      bool per_member) {
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    Observed o = metric.kind == MetricKind::kSource ? Source(metric.source, per_member)
                                                    : Members(metric.kind, aggregate);
    order_.push_back(key);
    return cache_.emplace(key, std::move(o)).first->second;
  }

  std::vector<MetricValue> Values() const {
    std::vector<MetricValue> out;
    for (const std::string& key : order_) {
      const Observed& o = cache_.at(key);
      out.push_back({key, o.value, o.missing_reason});
    }
    return out;
  }

 private:
  Observed Members(MetricKind kind, Aggregate aggregate) const {
    const char* name = kind == MetricKind::kCpu ? "cpu" : "memory";
    if (!stale_reason_.empty()) return {std::nullopt, stale_reason_};
    if (in_.members.running == 0) return {std::nullopt, "no running members"};
    std::vector<double> values;
    for (const Member& m : in_.members.members) {
      if (!IsRunning(m.state)) continue;
      const auto& v = kind == MetricKind::kCpu ? m.cpu : m.memory;
      if (v) values.push_back(*v);
    }
    if (values.empty()) {
      return {std::nullopt,
              fmt::format("no {} samples from {} running members", name, in_.members.running)};
    }
    double out = 0;
    switch (aggregate) {
      case Aggregate::kAvg:
      case Aggregate::kSum:
        for (double v : values) out += v;
        if (aggregate == Aggregate::kAvg) out /= static_cast<double>(values.size());
        break;
      case Aggregate::kMax:
        out = *std::max_element(values.begin(), values.end());
        break;
      case Aggregate::kMin:
        out = *std::min_element(values.begin(), values.end());
        break;
    }
    return {out, ""};
  }

  Observed Source(const std::string& source, bool per_member) const {
    auto it = in_.sources.find(source);
    if (it == in_.sources.end()) return {std::nullopt, "no reading yet"};
    const SourceReading& r = it->second;
    if (!r.value) return {std::nullopt, r.error.empty() ? "no value" : "source error: " + r.error};
    if (!std::isfinite(*r.value)) return {std::nullopt, "source value is not a finite number"};
    if (!per_member) return {*r.value, ""};
    return {*r.value / static_cast<double>(std::max<int64_t>(in_.members.running, 1)), ""};
  }

  const EvaluationInput& in_;
  std::string stale_reason_;
  std::map<std::string, Observed> cache_;
  std::vector<std::string> order_;
};

bool Holds(const Condition& c, double v) {
  switch (c.comparison) {
    case Comparison::kAbove:
    case Comparison::kPerMemberAbove:
      return v > c.threshold;
    case Comparison::kBelow:
    case Comparison::kPerMemberBelow:
      return v < c.threshold;
  }
  return false;
}

struct ConditionPass {
  bool any_firing = false;
  bool all_firing = false;
  bool any_missing = false;
  bool blocked_by_known = false;  // some condition has data and is not firing
  std::vector<std::string> firing;
  std::vector<std::string> missing;
};

ConditionPass UpdateConditions(Direction dir, const std::vector<Condition>& conds,
                               std::vector<std::optional<TimePoint>>& since, TimePoint now,
                               MetricReader& reader, std::vector<ConditionReport>& reports) {
  ConditionPass pass;
  pass.all_firing = !conds.empty();
  for (size_t i = 0; i < conds.size(); ++i) {
    const Condition& c = conds[i];
    const std::string key = c.MetricKey();
    const Observed& o = reader.Get(key, c.metric, c.aggregate, c.per_member());
    ConditionReport r;
    r.direction = dir;
    r.index = i;
    r.description = c.Describe();
    r.metric_key = key;
    r.threshold = c.threshold;
    r.value = o.value;
    if (!o.value) {
      r.missing = true;
      since[i].reset();
      pass.any_missing = true;
      pass.all_firing = false;
      pass.missing.push_back(key + ": " + o.missing_reason);
    } else if (Holds(c, *o.value)) {
      if (!since[i]) since[i] = now;
      r.held_for = std::chrono::duration_cast<Duration>(now - *since[i]);
      r.state = r.held_for >= c.for_duration ? ConditionState::kFiring : ConditionState::kPending;
    } else {
      since[i].reset();
    }
    if (r.state == ConditionState::kFiring) {
      pass.any_firing = true;
      pass.firing.push_back(fmt::format("{} (held {})", r.description, Whole(r.held_for)));
    } else if (!r.missing) {
      pass.all_firing = false;
      pass.blocked_by_known = true;
    }
    reports.push_back(std::move(r));
  }
  return pass;
}

std::string Join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

}  // namespace

std::string ConditionSignature(const GroupRule& rule) {
  std::string sig;
  for (const auto* policy : {&rule.scale_up, &rule.scale_down}) {
    sig += "|";
    for (const Condition& c : policy->when) sig += c.Describe() + ";";
  }
  return sig;
}

Evaluation Evaluate(const EvaluationInput& in, const GroupState& state) {
  const GroupRule& rule = in.rule;
  Evaluation e;
  GroupState& next = e.next;
  next = state;
  Decision& d = e.decision;
  d.group = rule.name;
  d.time = in.now;
  d.min = rule.min;
  d.max = rule.max;
  d.running = in.members.running;
  d.stopped = in.members.stopped;
  d.desired = d.running;

  const std::string signature = ConditionSignature(rule);
  if (next.signature != signature) {
    next.signature = signature;
    next.up_since.assign(rule.scale_up.when.size(), std::nullopt);
    next.down_since.assign(rule.scale_down.when.size(), std::nullopt);
  }

  if (in.snapshot == nullptr) {
    d.outcome = Outcome::kHeld;
    d.held_by = HeldBy::kNoSnapshot;
    d.reason = "no snapshot yet: membership unknown";
    return e;
  }
  d.snapshot_time = in.snapshot->taken_at;

  MetricReader reader(in);
  const int64_t running = d.running;
  std::optional<Direction> dir;
  int64_t want = 0;  // members to add or remove before clamping
  bool restoring_bounds = false;
  std::string why;

  // Conditions are evaluated on every pass so their timers track the data, even
  // when bounds or cooldowns decide the outcome.
  ConditionPass up = UpdateConditions(Direction::kUp, rule.scale_up.when, next.up_since, in.now,
                                      reader, d.conditions);
  ConditionPass down = UpdateConditions(Direction::kDown, rule.scale_down.when, next.down_since,
                                        in.now, reader, d.conditions);

  std::optional<int64_t> target_desired;
  std::string target_missing;
  std::string target_note;
  if (rule.target) {
    const TargetTracking& t = *rule.target;
    const Observed& o = reader.Get(t.MetricKey(), t.metric, Aggregate::kSum, false);
    if (!o.value) {
      target_missing = t.MetricKey() + ": " + o.missing_reason;
    } else {
      const double ratio =
          running > 0 ? *o.value / (static_cast<double>(running) * t.per_member_target) : 0;
      const int64_t raw = static_cast<int64_t>(std::ceil(*o.value / t.per_member_target - 1e-9));
      if (raw != running && running > 0 && std::abs(ratio - 1) <= t.tolerance) {
        target_desired = running;
        target_note = fmt::format(" (raw {}, within tolerance {})", raw, t.tolerance);
      } else {
        target_desired = raw;
      }
    }
  }

  std::vector<std::string> missing = up.missing;
  missing.insert(missing.end(), down.missing.begin(), down.missing.end());
  if (!target_missing.empty()) missing.push_back(target_missing);
  bool missing_decides = false;

  // Without libvirt the membership is unknown: an empty domain list is not "0 running".
  if (!in.snapshot->libvirt_up) {
    d.metrics = reader.Values();
    d.outcome = Outcome::kHeld;
    d.held_by = HeldBy::kMissingData;
    d.reason = "libvirt is down: membership and metrics unknown";
    return e;
  }
  // A stale snapshot's membership is not trusted to restore bounds.
  const bool fresh = reader.stale_reason().empty();

  if (fresh && running < rule.min) {
    dir = Direction::kUp;
    want = rule.min - running;
    restoring_bounds = true;
    why = fmt::format("{} running is below min {}: restoring bounds", running, rule.min);
  } else if (fresh && running > rule.max) {
    dir = Direction::kDown;
    want = running - rule.max;
    restoring_bounds = true;
    why = fmt::format("{} running is above max {}: restoring bounds", running, rule.max);
  } else if (rule.target) {
    if (target_desired) {
      const std::string seen = fmt::format("target {} gives {} members{}", rule.target->Describe(),
                                           *target_desired, target_note);
      if (*target_desired > running) {
        dir = Direction::kUp;
        want = *target_desired - running;
        if (rule.scale_up.step_set) want = std::min(want, rule.scale_up.step.Resolve(running));
        why = seen;
      } else if (*target_desired < running) {
        dir = Direction::kDown;
        want = running - *target_desired;
        if (rule.scale_down.step_set) want = std::min(want, rule.scale_down.step.Resolve(running));
        why = seen;
      } else {
        d.reason = seen + ": no change";
      }
    } else {
      missing_decides = true;
    }
  } else if (up.any_firing) {
    dir = Direction::kUp;
    want = rule.scale_up.step.Resolve(running);
    why = "firing: " + Join(up.firing, ", ");
    if (down.all_firing) why += " (scale_down conditions also firing: up wins)";
  } else if (down.all_firing) {
    dir = Direction::kDown;
    want = rule.scale_down.step.Resolve(running);
    why = "all scale_down conditions firing: " + Join(down.firing, ", ");
  } else if (up.any_missing ||
             (down.any_missing && !down.blocked_by_known && !rule.scale_down.when.empty())) {
    // Resolving the missing data could change the outcome.
    missing_decides = true;
  } else {
    d.reason = "no condition firing";
  }

  if (missing_decides) {
    const std::string seen = "missing data: " + Join(missing, "; ");
    switch (rule.on_missing_data) {
      case MissingDataPolicy::kHold:
        d.outcome = Outcome::kHeld;
        d.held_by = HeldBy::kMissingData;
        d.reason = seen + " (on_missing_data: hold)";
        break;
      case MissingDataPolicy::kScaleUp:
        dir = Direction::kUp;
        want = rule.scale_up.step.Resolve(running);
        why = seen + " (on_missing_data: scale_up)";
        break;
      case MissingDataPolicy::kScaleDown:
        dir = Direction::kDown;
        want = rule.scale_down.step.Resolve(running);
        why = seen + " (on_missing_data: scale_down)";
        break;
    }
  }
  d.metrics = reader.Values();
  if (!dir) return e;

  d.direction = dir;
  const bool is_up = *dir == Direction::kUp;
  const int64_t target = std::clamp(is_up ? running + want : running - want, rule.min, rule.max);
  d.desired = target;  // what the group wants, also while held
  auto hold = [&](HeldBy by, std::string reason) {
    d.outcome = Outcome::kHeld;
    d.held_by = by;
    d.reason = why + "; held: " + reason;
    return e;
  };
  if (is_up && running >= rule.max)
    return hold(HeldBy::kBoundMax, fmt::format("at max {}", rule.max));
  if (!is_up && running <= rule.min)
    return hold(HeldBy::kBoundMin, fmt::format("at min {}", rule.min));
  if (next.in_flight) return hold(HeldBy::kInFlight, "the previous action is still running");
  if (next.settle_after && in.snapshot->taken_at <= *next.settle_after) {
    return hold(HeldBy::kAwaitingSnapshot,
                "waiting for a snapshot taken after the last action finished at " +
                    FormatTime(*next.settle_after));
  }
  if (next.retry_after && in.now < *next.retry_after) {
    return hold(HeldBy::kBackoff,
                fmt::format("{} failed action(s) in a row; retry after {}",
                            next.consecutive_failures, FormatTime(*next.retry_after)));
  }
  if (!restoring_bounds) {
    const Duration cooldown = rule.policy(*dir).cooldown;
    std::optional<TimePoint> from = next.last_scale_up;
    // The engine forgets its actions on restart; the newest domain it created
    // still dates the last scale-up, so a restart cannot skip a cooldown.
    for (const Member& m : in.members.members) {
      if (!m.created || m.created_at_unix <= 0) continue;
      const TimePoint created{std::chrono::seconds(m.created_at_unix)};
      if (!from || created > *from) from = created;
    }
    if (!is_up && next.last_scale_down && (!from || *next.last_scale_down > *from)) {
      from = next.last_scale_down;
    }
    if (from && in.now - *from < cooldown) {
      const auto left = std::chrono::duration_cast<Duration>(cooldown - (in.now - *from));
      return hold(
          HeldBy::kCooldown,
          fmt::format("scale_{} cooldown {} since the last {} at {}: {} left", DirectionName(*dir),
                      FormatDuration(cooldown), is_up ? "scale-up" : "scale action",
                      FormatTime(*from), Whole(left, /*round_up=*/true)));
    }
  }

  const int64_t n = is_up ? target - running : running - target;
  Plan plan = is_up ? PlanScaleUp(rule, in.members, n) : PlanScaleDown(rule, in.members, n);
  if (plan.operations.empty()) return hold(HeldBy::kNoCandidate, plan.shortfall);

  const int64_t planned = static_cast<int64_t>(plan.operations.size());
  d.desired = is_up ? running + planned : running - planned;
  d.reason = fmt::format("{}: scale {} by {} ({} -> {})", why, DirectionName(*dir), planned,
                         running, d.desired);
  if (!plan.shortfall.empty()) d.reason += "; " + plan.shortfall;
  const bool dry = in.dry_run || rule.dry_run;
  for (Operation& op : plan.operations) {
    ActionRecord a;
    a.operation = std::move(op);
    a.result = dry ? "skipped" : "pending";
    d.actions.push_back(std::move(a));
  }
  // Dry run starts the cooldown too, so its decisions show what would happen.
  (is_up ? next.last_scale_up : next.last_scale_down) = in.now;
  if (dry) {
    d.outcome = Outcome::kHeld;
    d.held_by = HeldBy::kDryRun;
    d.result = "dry_run";
    d.reason += in.dry_run ? "; dry run (--dry-run): nothing changed"
                           : "; dry run (group dry_run): nothing changed";
  } else {
    d.outcome = is_up ? Outcome::kScaleUp : Outcome::kScaleDown;
    d.result = "pending";
    next.in_flight = true;
  }
  return e;
}

}  // namespace virtscale::autoscale
