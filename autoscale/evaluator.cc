#include "autoscale/evaluator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "autoscale/domain_template.h"
#include "autoscale/forecast.h"

namespace virtscale::autoscale {
namespace {

// Beyond 2^53 a double no longer counts in steps of 1: no real count or level is there.
constexpr double kMaxPlausible = 9007199254740992.0;
// A timestamp read back from libvirt this far in the future is not trusted.
constexpr auto kFutureSlack = std::chrono::minutes(1);

// Durations in reasons read "42s", not "42s17ms"; `round_up` for time left.
std::string Whole(Duration d, bool round_up = false) {
  if (d < std::chrono::seconds(1)) return FormatDuration(d);
  return FormatDuration(round_up ? std::chrono::ceil<std::chrono::seconds>(d)
                                 : std::chrono::floor<std::chrono::seconds>(d));
}

template <typename D>
Duration ToDuration(D d) {
  return std::chrono::duration_cast<Duration>(d);
}

std::string Join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

struct Observed {
  std::optional<double> value;
  std::string missing_reason;
};

// Reads each metric once per evaluation, refusing absurd values.
class MetricReader {
 public:
  MetricReader(const EvaluationInput& in, std::string membership_doubt)
      : in_(in), doubt_(std::move(membership_doubt)) {}

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
    out.reserve(order_.size());
    for (const std::string& key : order_) {
      const Observed& o = cache_.at(key);
      out.push_back({key, o.value, o.missing_reason});
    }
    return out;
  }

 private:
  Observed Members(MetricKind kind, Aggregate aggregate) const {
    const char* name = kind == MetricKind::kCpu ? "cpu" : "memory";
    if (!doubt_.empty()) return {std::nullopt, doubt_};
    if (in_.members.running == 0) return {std::nullopt, "no running members"};
    double sum = 0, lo = 0, hi = 0;
    size_t n = 0;
    for (const Member& m : in_.members.members) {
      if (m.state != MemberState::kRunning) continue;
      const auto& v = kind == MetricKind::kCpu ? m.cpu : m.memory;
      if (!v) continue;
      if (auto why = ImplausibleReading(*v, ReadingUse::kUtilization)) {
        return {std::nullopt, fmt::format("{} of {} {}", name, m.name, *why)};
      }
      lo = n == 0 ? *v : std::min(lo, *v);
      hi = n == 0 ? *v : std::max(hi, *v);
      sum += *v;
      ++n;
    }
    if (n == 0) {
      return {std::nullopt,
              fmt::format("no {} samples from {} running members", name, in_.members.running)};
    }
    switch (aggregate) {
      case Aggregate::kAvg:
        return {sum / static_cast<double>(n), ""};
      case Aggregate::kSum:
        return {sum, ""};
      case Aggregate::kMax:
        return {hi, ""};
      case Aggregate::kMin:
        return {lo, ""};
    }
    return {std::nullopt, "unknown aggregate"};
  }

  Observed Source(const std::string& source, bool per_member) const {
    auto it = in_.sources.find(source);
    if (it == in_.sources.end()) return {std::nullopt, "no reading yet"};
    const SourceReading& r = it->second;
    if (!r.value) return {std::nullopt, r.error.empty() ? "no value" : "source error: " + r.error};
    if (auto why = ImplausibleReading(*r.value, ReadingUse::kCount)) {
      return {std::nullopt, "source value " + *why};
    }
    if (!per_member) return {*r.value, ""};
    if (!doubt_.empty()) return {std::nullopt, doubt_};
    return {*r.value / static_cast<double>(std::max<int64_t>(in_.members.running, 1)), ""};
  }

  const EvaluationInput& in_;
  const std::string doubt_;
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
                               std::vector<std::optional<MonoTime>>& since, MonoTime now,
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
      r.held_for = ToDuration(now - *since[i]);
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

// The direction and group size the data ask for, before the guards.
struct Intent {
  std::optional<Direction> direction;
  int64_t desired = 0;  // clamped to [min, max]
  // What the stabilization windows record: `desired` before target tracking's
  // `step` cap, which (like HPA's scaling policies) applies after them.
  std::optional<int64_t> uncapped;
  bool restoring_bounds = false;
  std::string why;
  // No direction: "" (nothing to do) or missing data held the group.
  HeldBy held_by = HeldBy::kNone;
  std::string reason;
};

// Target tracking's wanted size, or why it is unknown.
struct TargetView {
  std::optional<double> wanted;  // members, before clamping
  std::string note;              // " (raw N, within tolerance T)"
  std::string missing;
};

TargetView ReadTarget(const GroupRule& rule, const Membership& members, MetricReader& reader) {
  TargetView view;
  const TargetTracking& t = *rule.target;
  const Observed& o = reader.Get(t.MetricKey(), t.metric, Aggregate::kSum, false);
  if (!o.value) {
    view.missing = t.MetricKey() + ": " + o.missing_reason;
    return view;
  }
  const int64_t active = members.active();
  const double raw = std::ceil(*o.value / t.per_member_target - 1e-9);
  const double ratio = members.running > 0
                           ? *o.value / (static_cast<double>(members.running) * t.per_member_target)
                           : 0;
  if (raw != static_cast<double>(active) && members.running > 0 &&
      std::abs(ratio - 1) <= t.tolerance) {
    view.wanted = static_cast<double>(active);
    view.note = fmt::format(" (raw {}, within tolerance {})", raw, t.tolerance);
  } else {
    view.wanted = raw;
  }
  return view;
}

// A history fetched longer ago than this has missed six refetches
// (kHistoryRefetch): the fetcher is failing, and the forecast is not trusted.
constexpr Duration kMaxHistoryAge = std::chrono::minutes(30);

// The forecast of `forecast:` in members, or why there is none.
ForecastReport ReadForecast(const EvaluationInput& in) {
  const GroupRule& rule = in.rule;
  const ForecastPolicy& policy = *rule.forecast;
  ForecastReport r;
  r.mode = policy.mode;
  r.source = policy.source;
  r.horizon = policy.horizon;
  if (!rule.target) {  // the loader refuses this; a rule built in code may not
    r.unavailable = "forecast needs target:";
    return r;
  }
  const auto found = in.sources.find(policy.source);
  if (found == in.sources.end() || !found->second.history) {
    r.unavailable = "no history fetched yet";
    if (found != in.sources.end() && !found->second.history_error.empty())
      r.unavailable += ": " + found->second.history_error;
    return r;
  }
  const SourceHistory& history = *found->second.history;
  const Duration age = ToDuration(in.now.wall - history.fetched_at);
  if (age > kMaxHistoryAge) {
    r.unavailable = fmt::format("history fetched {} ago, more than {}", Whole(age),
                                FormatDuration(kMaxHistoryAge));
    if (!found->second.history_error.empty())
      r.unavailable += "; last error: " + found->second.history_error;
    return r;
  }
  std::vector<LoadSample> samples;
  samples.reserve(history.samples.size());
  for (const auto& [t, v] : history.samples) samples.push_back({t, v});
  const double now_unix = std::chrono::duration<double>(in.now.wall.time_since_epoch()).count();
  const std::optional<LoadForecast> load = ForecastLoad(samples, now_unix, policy.horizon);
  if (!load) {
    r.unavailable = "the history covers less than a day before now";
    return r;
  }
  r.model = load->Describe();
  // The peak is at most 2^53 (ForecastLoad ignores more), so the quotient is finite.
  r.members = ClampedSize(std::ceil(load->peak / rule.target->per_member_target - 1e-9), rule.min,
                          rule.max);
  return r;
}

Intent MissingDataIntent(const GroupRule& rule, const Membership& members,
                         const std::vector<std::string>& missing) {
  Intent intent;
  const std::string seen = "missing data: " + Join(missing, "; ");
  const int64_t active = members.active();
  switch (rule.on_missing_data) {
    case MissingDataPolicy::kHold:
      intent.held_by = HeldBy::kMissingData;
      intent.reason = seen + " (on_missing_data: hold)";
      break;
    case MissingDataPolicy::kScaleUp:
      intent.direction = Direction::kUp;
      intent.desired =
          ClampedSize(static_cast<double>(active) +
                          static_cast<double>(rule.scale_up.step.Resolve(members.running)),
                      rule.min, rule.max);
      intent.why = seen + " (on_missing_data: scale_up)";
      break;
    case MissingDataPolicy::kScaleDown:
      intent.direction = Direction::kDown;
      intent.desired =
          ClampedSize(static_cast<double>(active) -
                          static_cast<double>(rule.scale_down.step.Resolve(members.running)),
                      rule.min, rule.max);
      intent.why = seen + " (on_missing_data: scale_down)";
      break;
  }
  return intent;
}

Intent ChooseIntent(const GroupRule& rule, const Membership& members, const ConditionPass& up,
                    const ConditionPass& down, const std::optional<TargetView>& target) {
  Intent intent;
  const int64_t active = members.active();
  const double now_size = static_cast<double>(active);
  auto step = [&](Direction d) {
    return static_cast<double>(rule.policy(d).step.Resolve(members.running));
  };
  if (active < rule.min) {
    intent.direction = Direction::kUp;
    intent.desired = rule.min;
    intent.restoring_bounds = true;
    intent.why = fmt::format("{} active is below min {}: restoring bounds", active, rule.min);
  } else if (active > rule.max) {
    intent.direction = Direction::kDown;
    intent.desired = rule.max;
    intent.restoring_bounds = true;
    intent.why = fmt::format("{} active is above max {}: restoring bounds", active, rule.max);
  } else if (target) {
    if (!target->wanted) {
      std::vector<std::string> missing = up.missing;
      missing.insert(missing.end(), down.missing.begin(), down.missing.end());
      missing.push_back(target->missing);
      return MissingDataIntent(rule, members, missing);
    }
    double wanted = *target->wanted;
    const std::string seen = fmt::format("target {} gives {} members{}", rule.target->Describe(),
                                         ClampedSize(wanted, 0, INT64_MAX / 2), target->note);
    intent.uncapped = ClampedSize(wanted, rule.min, rule.max);
    if (wanted > now_size) {
      if (rule.scale_up.step_set) wanted = std::min(wanted, now_size + step(Direction::kUp));
      intent.direction = Direction::kUp;
    } else if (wanted < now_size) {
      if (rule.scale_down.step_set) wanted = std::max(wanted, now_size - step(Direction::kDown));
      intent.direction = Direction::kDown;
    } else {
      intent.reason = seen + ": no change";
      return intent;
    }
    intent.desired = ClampedSize(wanted, rule.min, rule.max);
    intent.why = seen;
  } else if (up.any_firing) {
    intent.direction = Direction::kUp;
    intent.desired = ClampedSize(now_size + step(Direction::kUp), rule.min, rule.max);
    intent.why = "firing: " + Join(up.firing, ", ");
    if (down.all_firing) intent.why += " (scale_down conditions also firing: up wins)";
  } else if (down.all_firing) {
    intent.direction = Direction::kDown;
    intent.desired = ClampedSize(now_size - step(Direction::kDown), rule.min, rule.max);
    intent.why = "all scale_down conditions firing: " + Join(down.firing, ", ");
  } else if (up.any_missing ||
             (down.any_missing && !down.blocked_by_known && !rule.scale_down.when.empty())) {
    // Resolving the missing data could change the outcome.
    std::vector<std::string> missing = up.missing;
    missing.insert(missing.end(), down.missing.begin(), down.missing.end());
    return MissingDataIntent(rule, members, missing);
  } else {
    intent.reason = "no condition firing";
  }
  return intent;
}

// When the direction's cooldown started: the engine's own record, else (after
// a restart) the newest created-at and scale stamp read back from libvirt.
std::optional<MonoTime> CooldownStart(const EvaluationInput& in, const GroupState& state,
                                      Direction dir) {
  std::optional<MonoTime> from = state.last_scale_up;
  auto consider = [&](std::optional<MonoTime> t) {
    if (t && (!from || *t > *from)) from = t;
  };
  auto from_unix = [&](int64_t unix_seconds) -> std::optional<MonoTime> {
    if (unix_seconds <= 0) return std::nullopt;
    const MonoTime t = in.now.MonoOf(WallTime(std::chrono::seconds(unix_seconds)));
    if (t > in.now.mono + kFutureSlack) return std::nullopt;  // clock stepped back, or absurd
    return std::min(t, in.now.mono);
  };
  for (const Member& m : in.members.members) {
    if (m.owned) consider(from_unix(m.created_at_unix));
    consider(from_unix(m.last_scale_up_unix));
    if (dir == Direction::kDown) consider(from_unix(m.last_scale_down_unix));
  }
  if (dir == Direction::kDown) consider(state.last_scale_down);
  return from;
}

int64_t ChangedWithin(const GroupState& state, Direction dir) {
  int64_t n = 0;
  for (const GroupState::Change& c : state.changes[static_cast<int>(dir)]) n += c.members;
  return n;
}

struct Guarded {
  HeldBy held_by = HeldBy::kNone;
  std::string reason;
  int64_t allowed = 0;  // members the action may change
  std::string note;     // why fewer than wanted, for the reason
};

// What holds any action while the last one is unsettled: still running, newer
// than the snapshot, or failed and backing off.
Guarded ActionUnsettled(const EvaluationInput& in, const GroupState& state) {
  Guarded g;
  auto held = [&](HeldBy by, std::string reason) {
    g.held_by = by;
    g.reason = std::move(reason);
    return g;
  };
  if (state.in_flight) return held(HeldBy::kInFlight, "the previous action is still running");
  if (state.settle_after && in.snapshot->taken_at_steady <= *state.settle_after) {
    return held(HeldBy::kAwaitingSnapshot,
                "waiting for a snapshot taken after the last action finished at " +
                    FormatTime(in.now.WallOf(*state.settle_after)));
  }
  if (state.retry_after && in.now.mono < *state.retry_after) {
    return held(HeldBy::kBackoff, fmt::format("{} failed action(s) in a row; retry after {}",
                                              state.consecutive_failures,
                                              FormatTime(in.now.WallOf(*state.retry_after))));
  }
  return g;
}

Guarded ApplyGuards(const EvaluationInput& in, const GroupState& state, const Intent& intent) {
  const GroupRule& rule = in.rule;
  const Direction dir = *intent.direction;
  const bool is_up = dir == Direction::kUp;
  const int64_t active = in.members.active();
  Guarded g;
  auto held = [&](HeldBy by, std::string reason) {
    g.held_by = by;
    g.reason = std::move(reason);
    return g;
  };
  if (is_up && active >= rule.max)
    return held(HeldBy::kBoundMax, fmt::format("at max {} ({} active)", rule.max, active));
  if (!is_up && active <= rule.min)
    return held(HeldBy::kBoundMin, fmt::format("at min {} ({} active)", rule.min, active));
  if (Guarded unsettled = ActionUnsettled(in, state); unsettled.held_by != HeldBy::kNone)
    return unsettled;
  if (!intent.restoring_bounds) {
    const Duration cooldown = rule.policy(dir).cooldown;
    const std::optional<MonoTime> from = CooldownStart(in, state, dir);
    if (from && in.now.mono - *from < cooldown) {
      const Duration left = ToDuration(cooldown - (in.now.mono - *from));
      return held(
          HeldBy::kCooldown,
          fmt::format("scale_{} cooldown {} since the last {} at {}: {} left", DirectionName(dir),
                      FormatDuration(cooldown), is_up ? "scale-up" : "scale action",
                      FormatTime(in.now.WallOf(*from)), Whole(left, /*round_up=*/true)));
    }
  }
  const int64_t wanted = is_up ? intent.desired - active : active - intent.desired;
  const RateLimit& limit = rule.policy(dir).rate_limit;
  const int64_t changed = ChangedWithin(state, dir);
  g.allowed = std::min(wanted, limit.Allowed(active, changed, dir));
  if (g.allowed <= 0) {
    return held(
        HeldBy::kRateLimit,
        fmt::format("scale_{} rate limit {} used up ({} changed in the last {})",
                    DirectionName(dir), limit.ToString(), changed, FormatDuration(limit.period)));
  }
  if (g.allowed < wanted) {
    g.note = fmt::format("; {} of {} wanted (scale_{} rate limit {})", g.allowed, wanted,
                         DirectionName(dir), limit.ToString());
  }
  return g;
}

void Hold(Decision& d, HeldBy by, const std::string& why, const std::string& reason) {
  d.outcome = Outcome::kHeld;
  d.held_by = by;
  d.reason = why.empty() ? reason : why + "; held: " + reason;
}

// Records this evaluation's recommendation in each direction's window and
// returns the size the windows allow (HPA's stabilizeRecommendationWithBehaviors,
// kubernetes pkg/controller/podautoscaler/horizontal.go): the active count,
// raised to the scale_up window's lowest recommendation and lowered to the
// scale_down window's highest. Each window keeps only the recommendations that
// can still be its extreme (a monotonic queue), so its size stays bounded by
// the evaluations in the window and by max - min.
int64_t Stabilize(const GroupRule& rule, int64_t active, int64_t recommendation, MonoTime now,
                  GroupState& next) {
  int64_t allowed = active;
  for (Direction dir : {Direction::kUp, Direction::kDown}) {
    std::deque<Recommendation>& window = next.stabilization[static_cast<int>(dir)];
    const Duration length = rule.policy(dir).stabilization_window;
    // A fresh state (agent start) starts each window at the current size, so a
    // restart cannot skip a window.
    if (!next.stabilization_started && length > Duration(0)) window.push_back({now, active});
    const bool keeps_highest = dir == Direction::kDown;
    // A recommendation no more extreme than this one can never again be the window's extreme.
    while (!window.empty() && (keeps_highest ? window.back().members <= recommendation
                                             : window.back().members >= recommendation))
      window.pop_back();
    while (!window.empty() && now - window.front().at >= length) window.pop_front();
    if (length > Duration(0)) window.push_back({now, recommendation});
    const int64_t extreme = window.empty() ? recommendation : window.front().members;
    allowed = keeps_highest ? std::min(allowed, extreme) : std::max(allowed, extreme);
  }
  next.stabilization_started = true;
  return allowed;
}

// Holds `d` when the stabilization windows allow no change (`allowed`, from
// Stabilize, is the active count), else narrows intent.desired to `allowed`.
// Reports the window of the intent's direction either way. Returns whether
// the change goes on.
bool ApplyStabilization(const EvaluationInput& in, const GroupState& next, int64_t allowed,
                        Intent& intent, Decision& d) {
  const Direction dir = *intent.direction;
  const Duration length = in.rule.policy(dir).stabilization_window;
  if (length <= Duration(0)) return true;
  const std::deque<Recommendation>& window = next.stabilization[static_cast<int>(dir)];
  StabilizationReport report;
  report.direction = dir;
  report.window = length;
  report.recommendation = intent.uncapped.value_or(intent.desired);
  report.stabilized = allowed;
  for (const Recommendation& r : window) {
    if (report.history.size() == StabilizationReport::kMaxReported) {
      ++report.history_omitted;
    } else {
      report.history.emplace_back(in.now.WallOf(r.at), r.members);
    }
  }
  d.stabilization = std::move(report);
  const char* extreme = dir == Direction::kDown ? "highest" : "lowest";
  const std::string window_name =
      fmt::format("scale_{}.stabilization_window {}", DirectionName(dir), FormatDuration(length));
  // The windows narrow the recommendation; a `step` cap may narrow it further.
  const int64_t narrowed = dir == Direction::kDown ? std::max(allowed, intent.desired)
                                                   : std::min(allowed, intent.desired);
  if (narrowed == in.members.active()) {
    // The window is never empty here: it holds at least this evaluation's recommendation.
    const Recommendation& front = window.front();
    Hold(d, HeldBy::kStabilization, intent.why,
         fmt::format("{}: its {} recommendation is {} members (at {}), {} active; it counts "
                     "until {}",
                     window_name, extreme, front.members, FormatTime(in.now.WallOf(front.at)),
                     narrowed, FormatTime(in.now.WallOf(front.at + length))));
    return false;
  }
  if (narrowed != intent.desired) {
    intent.why +=
        fmt::format(" ({}: {} members, its {} recommendation)", window_name, narrowed, extreme);
    intent.desired = narrowed;
  }
  return true;
}

// Turns planned operations into the decision's actions: pending, or skipped
// in dry run. Returns whether they will run.
bool TakeActions(const EvaluationInput& in, Plan plan, Direction dir, Decision& d,
                 GroupState& next) {
  const bool dry = in.dry_run || in.rule.dry_run || in.follower;
  for (Operation& op : plan.operations) {
    ActionRecord a;
    a.operation = std::move(op);
    a.result = dry ? ActionResult::kDryRun : ActionResult::kPending;
    d.actions.push_back(std::move(a));
  }
  if (dry) {
    d.outcome = Outcome::kHeld;
    d.result = DecisionResult::kDryRun;
    // A configured dry run is named first: it holds whoever leads.
    const bool configured = in.dry_run || in.rule.dry_run;
    d.held_by = configured ? HeldBy::kDryRun : HeldBy::kFollower;
    d.reason += in.dry_run        ? "; dry run (--dry-run): nothing changed"
                : in.rule.dry_run ? "; dry run (group dry_run): nothing changed"
                                  : "; follower: " + *in.follower + "; nothing changed here";
  } else {
    d.outcome = dir == Direction::kUp ? Outcome::kScaleUp : Outcome::kScaleDown;
    d.result = DecisionResult::kPending;
    next.in_flight = true;
  }
  return !dry;
}

// Which members a swap replaces: unhealthy ones (health.replace), or running
// ones made from an older template (refresh). Protected members never are.
bool Replaceable(const GroupRule& rule, const Member& m, bool refresh) {
  if (m.is_protected) return false;
  return refresh ? m.state == MemberState::kRunning && IsStale(rule, m)
                 : m.state == MemberState::kUnhealthy;
}

// Whether a member counts as up for a swap: running, and for refresh also
// healthy (after_scale_up has run by then: the create's job ran it).
bool UpForSwap(const Member& m, bool refresh) {
  return refresh ? IsReady(m) : m.state == MemberState::kRunning;
}

// Swaps one member for a new one (at most max + 1 active during the swap):
// brings a replacement up, then, once a member that was not up at planning is
// up, removes the old one (deleted when owned and the group deletes, and always
// for refresh, whose members are owned; else stopped). One swap at a time,
// whatever its kind. `may_start`: a new swap may begin (refresh begins only
// when no scale action is due and the cooldowns ran out); `yield_while_waiting`:
// while the replacement is not up yet, let the group scale instead. A swap whose
// replacement vanished (failed create, scaled away) is planned again. Returns
// false when there is nothing to swap, so the group scales as usual.
bool Replace(const EvaluationInput& in, GroupState& next, Decision& d, bool refresh, bool may_start,
             bool yield_while_waiting) {
  const GroupRule& rule = in.rule;
  const Membership& m = in.members;
  auto find = [&](const std::string& name) -> const Member* {
    for (const Member& member : m.members)
      if (member.name == name) return &member;
    return nullptr;
  };
  if (next.replacing && next.replacing->refresh != refresh) return false;  // the other kind's
  if (next.replacing) {
    const Member* old = find(next.replacing->member);
    // Refresh goes on with an old member that turned unhealthy meanwhile: its
    // replacement is already on the way.
    const bool still = old != nullptr && (Replaceable(rule, *old, refresh) ||
                                          (refresh && old->state == MemberState::kUnhealthy &&
                                           !old->is_protected && IsStale(rule, *old)));
    if (!still) next.replacing.reset();
  }
  const Member* target = next.replacing ? find(next.replacing->member) : nullptr;
  if (target == nullptr && may_start) {
    // Refresh takes the oldest first, so a half-done refresh leaves the newest members.
    for (const Member& member : m.members)
      if (Replaceable(rule, member, refresh) &&
          (target == nullptr || (refresh && member.created_at_unix < target->created_at_unix)))
        target = &member;
  }
  if (target == nullptr) return false;
  const std::string why =
      refresh ? fmt::format("refresh {} (made from an older template)", target->name)
              : fmt::format("replace unhealthy {} ({})", target->name, target->health_output);
  if (Guarded unsettled = ActionUnsettled(in, next); unsettled.held_by != HeldBy::kNone) {
    Hold(d, unsettled.held_by, why, unsettled.reason);
    return true;
  }
  const int64_t active = m.active();
  if (next.replacing && active <= next.replacing->active_before) {
    next.replacing.reset();  // its replacement vanished: a failed create, or scaled away
    if (!may_start) return false;
  }
  d.replacing = target->name;
  if (!next.replacing) {
    if (active >= rule.max + 1) {
      Hold(d, HeldBy::kBoundMax, why,
           fmt::format("{} active: no room for a replacement even at max + 1", active));
      return true;
    }
    Plan plan = PlanScaleUp(rule, m, 1);
    if (plan.operations.empty()) {
      Hold(d, HeldBy::kNoCandidate, why, plan.shortfall);
      return true;
    }
    d.direction = Direction::kUp;
    d.desired = active + 1;
    d.reason = fmt::format(
        "{}: bring up a replacement first ({} -> {} active, at most max + 1 "
        "during the swap)",
        why, active, active + 1);
    GroupState::Replacement r{target->name, refresh, active, {}};
    for (const Member& member : m.members)
      if (UpForSwap(member, refresh)) r.up_before.push_back(member.name);
    if (TakeActions(in, std::move(plan), Direction::kUp, d, next)) next.replacing = std::move(r);
    return true;
  }
  const std::vector<std::string>& before = next.replacing->up_before;
  int64_t up_others = 0;  // up, the old member aside
  const Member* replacement = nullptr;
  for (const Member& member : m.members) {
    if (!UpForSwap(member, refresh) || member.name == target->name) continue;
    ++up_others;
    if (std::find(before.begin(), before.end(), member.name) == before.end()) replacement = &member;
  }
  if (replacement == nullptr) {
    if (yield_while_waiting) return false;
    d.reason = why + (refresh ? ": waiting for the replacement to run and be healthy"
                              : ": waiting for the replacement to run");
    return true;
  }
  // The group's size outside the swap is active - 1.
  const int64_t max_unavailable = refresh ? rule.refresh->max_unavailable : active;
  if (up_others < active - 1 - max_unavailable) {
    Hold(d, HeldBy::kNoCandidate, why,
         fmt::format("removing it would leave {} of {} members up, more than max_unavailable {} "
                     "short",
                     up_others, active - 1, max_unavailable));
    return true;
  }
  const bool del = target->owned && (refresh || rule.down_action == DownAction::kDelete);
  Plan plan;
  Operation op;
  op.kind = del ? Operation::Kind::kDelete : Operation::Kind::kStop;
  op.group = rule.name;
  op.domain = target->name;
  op.shutdown_timeout = rule.shutdown_timeout;
  plan.operations.push_back(std::move(op));
  d.direction = Direction::kDown;
  d.desired = active - 1;
  d.reason = fmt::format("{}: its replacement {} is up ({} others up); {} it", why,
                         replacement->name, up_others, del ? "delete" : "stop");
  // `replacing` stays until the member is gone or stopped, so a failed removal is retried
  // instead of bringing up a second replacement.
  TakeActions(in, std::move(plan), Direction::kDown, d, next);
  return true;
}

// Refresh of the warm pool: deletes every stopped owned member made from an
// older template (scale-up creates from the current one instead of starting
// them). Returns false when there is none.
bool DeleteStaleStopped(const EvaluationInput& in, GroupState& next, Decision& d) {
  Plan plan;
  for (const Member& member : in.members.members) {
    if (member.state != MemberState::kStopped || member.is_protected || !IsStale(in.rule, member))
      continue;
    Operation op;
    op.kind = Operation::Kind::kDelete;
    op.group = in.rule.name;
    op.domain = member.name;
    op.shutdown_timeout = in.rule.shutdown_timeout;
    plan.operations.push_back(std::move(op));
  }
  if (plan.operations.empty()) return false;
  const std::string why =
      fmt::format("refresh the warm pool: delete {} stopped member(s) made from an older template",
                  plan.operations.size());
  if (Guarded unsettled = ActionUnsettled(in, next); unsettled.held_by != HeldBy::kNone) {
    Hold(d, unsettled.held_by, why, unsettled.reason);
    return true;
  }
  d.direction = Direction::kDown;
  d.reason = why;
  TakeActions(in, std::move(plan), Direction::kDown, d, next);
  return true;
}

// What refresh has left to do, for the decision.
Decision::RefreshProgress DescribeRefresh(const GroupRule& rule, const Membership& members) {
  Decision::RefreshProgress p;
  p.max_unavailable = rule.refresh->max_unavailable;
  p.template_hash = rule.template_doc ? rule.template_doc->content_hash() : "";
  for (const Member& m : members.members) {
    if (IsStale(rule, m)) ++p.due;
    if (m.owned && m.template_hash.empty()) ++p.without_hash;
  }
  return p;
}

// Whether a scale action in either direction is still cooling down: refresh
// does not begin a swap then.
bool CoolingDown(const EvaluationInput& in, const GroupState& state) {
  for (Direction dir : {Direction::kUp, Direction::kDown}) {
    const std::optional<MonoTime> from = CooldownStart(in, state, dir);
    if (from && in.now.mono - *from < in.rule.policy(dir).cooldown) return true;
  }
  return false;
}

}  // namespace

void DescribeMembers(const Membership& members, Decision& d) {
  d.running = members.running;
  d.stopped = members.stopped;
  d.active = members.active();
  std::copy(std::begin(members.count), std::end(members.count), std::begin(d.by_state_count));
  d.member_states.reserve(members.members.size());
  for (const Member& m : members.members) {
    d.member_states.emplace_back(m.name, m.state);
    if (!m.health_output.empty())
      d.health_failures.emplace_back(m.name, m.health + ": " + m.health_output);
  }
}

int64_t ClampedSize(double wanted, int64_t lo, int64_t hi) {
  if (std::isnan(wanted)) return lo;
  const double clamped = std::clamp(wanted, static_cast<double>(lo), static_cast<double>(hi));
  return std::clamp(static_cast<int64_t>(std::llround(clamped)), lo, hi);
}

std::optional<std::string> ImplausibleReading(double v, ReadingUse use) {
  if (!std::isfinite(v)) return "is not a finite number";
  if (use == ReadingUse::kUtilization && (v < 0 || v > 1))
    return fmt::format("is {}, outside 0..1", v);
  if (v < 0) return fmt::format("is {}, negative", v);
  if (v > kMaxPlausible) return fmt::format("is {}, beyond 2^53", v);
  return std::nullopt;
}

std::string MembershipDoubt(const EvaluationInput& in) {
  const Snapshot* s = in.snapshot;
  if (s == nullptr) return "no snapshot yet: membership unknown";
  if (!s->libvirt_up) return "libvirt is down: membership and metrics unknown";
  if (in.connection_generation != 0 && s->connection_generation < in.connection_generation) {
    return fmt::format(
        "snapshot #{} was taken before the latest libvirt reconnect (connection {}, now {}): "
        "membership unknown",
        s->sequence, s->connection_generation, in.connection_generation);
  }
  if (in.now.mono - s->taken_at_steady > in.stale_after) {
    return fmt::format("snapshot is stale ({:.1f}s old, limit {}): membership unknown",
                       std::chrono::duration<double>(in.now.mono - s->taken_at_steady).count(),
                       FormatDuration(in.stale_after));
  }
  return "";
}

std::string ConditionSignature(const GroupRule& rule) {
  std::string sig;
  for (const auto* policy : {&rule.scale_up, &rule.scale_down}) {
    sig += "|";
    for (const Condition& c : policy->when) sig += c.Describe() + ";";
  }
  return sig;
}

namespace {

Evaluation EvaluateWithin(const EvaluationInput& in, const GroupState& state) {
  const GroupRule& rule = in.rule;
  Evaluation e;
  GroupState& next = e.next;
  next = state;
  Decision& d = e.decision;
  d.group = rule.name;
  d.time = in.now.wall;
  d.min = rule.min;
  d.max = rule.max;
  DescribeMembers(in.members, d);
  d.desired = d.active;

  const std::string signature = ConditionSignature(rule);
  if (next.signature != signature) {
    next.signature = signature;
    next.up_since.assign(rule.scale_up.when.size(), std::nullopt);
    next.down_since.assign(rule.scale_down.when.size(), std::nullopt);
  }
  for (Direction dir : {Direction::kUp, Direction::kDown}) {
    const Duration period = rule.policy(dir).rate_limit.period;
    std::erase_if(next.changes[static_cast<int>(dir)],
                  [&](const GroupState::Change& c) { return in.now.mono - c.at >= period; });
  }

  if (in.snapshot == nullptr) {
    Hold(d, HeldBy::kNoSnapshot, "", "no snapshot yet: membership unknown");
    return e;
  }
  d.snapshot_time = in.snapshot->taken_at;

  // 1. Read the conditions, on every pass, so their timers track the data even
  // when the membership, bounds or cooldowns decide the outcome.
  const std::string doubt = MembershipDoubt(in);
  MetricReader reader(in, doubt);
  ConditionPass up = UpdateConditions(Direction::kUp, rule.scale_up.when, next.up_since,
                                      in.now.mono, reader, d.conditions);
  ConditionPass down = UpdateConditions(Direction::kDown, rule.scale_down.when, next.down_since,
                                        in.now.mono, reader, d.conditions);
  std::optional<TargetView> target;
  if (rule.target) target = ReadTarget(rule, in.members, reader);
  if (rule.forecast) {
    d.forecast = ReadForecast(in);
    // scale_ahead: the recommendation is at least the forecast (AWS predictive
    // scaling); without a current value the forecast alone never acts.
    const std::optional<int64_t> ahead = d.forecast->members;
    if (rule.forecast->mode == ForecastMode::kScaleAhead && target && target->wanted && ahead &&
        static_cast<double>(*ahead) > *target->wanted) {
      target->note +=
          fmt::format(" (scale_ahead: {} now, the forecast for the next {} asks for {})",
                      ClampedSize(*target->wanted, 0, INT64_MAX / 2),
                      FormatDuration(rule.forecast->horizon), *ahead);
      target->wanted = static_cast<double>(*ahead);
      d.forecast->applied = true;
    }
  }
  d.metrics = reader.Values();

  // Not knowing the group is not missing metric data: on_missing_data does not apply.
  if (!doubt.empty()) {
    Hold(d, HeldBy::kStaleSnapshot, "", doubt);
    return e;
  }

  // 2. What the data ask for.
  Intent intent = ChooseIntent(rule, in.members, up, down, target);
  // Missing data recommends nothing (HPA records no recommendation when metrics fail).
  const int64_t stabilized =
      intent.held_by == HeldBy::kNone
          ? Stabilize(rule, d.active,
                      intent.uncapped.value_or(intent.direction ? intent.desired : d.active),
                      in.now.mono, next)
          : d.active;
  // Paused: everything holds, bounds included (AWS "suspend processes"), but the
  // decision still says what the data ask for.
  if (in.members.paused) {
    if (intent.direction) {
      d.direction = intent.direction;
      d.desired = intent.desired;
    }
    const WallTime since{std::chrono::milliseconds(in.members.paused_changed_ms)};
    Hold(d, HeldBy::kPaused, intent.direction ? intent.why : intent.reason,
         fmt::format("group paused since {} (lifecycle API); POST /api/v1/groups/{}/resume to "
                     "resume",
                     FormatTime(since), rule.name));
    return e;
  }
  // A swap of a kind a reload turned off is dropped (its new member stays), or
  // it would block the other kind for good.
  if (next.replacing &&
      !(next.replacing->refresh ? rule.refresh.has_value() : rule.health && rule.health->replace))
    next.replacing.reset();
  if (rule.health && rule.health->replace &&
      Replace(in, next, d, /*refresh=*/false, /*may_start=*/true, /*yield_while_waiting=*/false))
    return e;
  if (rule.refresh) {
    d.refresh = DescribeRefresh(rule, in.members);
    // A scale action is due unless the data want none or the group is at that bound
    // (a queue at 0 keeps asking a group at min 0 to scale down).
    const int64_t active = in.members.active();
    // A change its stabilization window holds is not due either: a window may hold for long.
    const bool window_allows =
        !intent.direction || intent.restoring_bounds ||
        (*intent.direction == Direction::kUp ? stabilized > active : stabilized < active);
    const bool scale_due = intent.direction && window_allows &&
                           !(intent.direction == Direction::kUp && active >= rule.max) &&
                           !(intent.direction == Direction::kDown && active <= rule.min);
    // A swap under way is finished first; a new one waits for scaling and cooldowns.
    const bool idle = !scale_due && !CoolingDown(in, next);
    if (idle && DeleteStaleStopped(in, next, d)) return e;
    // While its new member comes up, a due scale-up goes ahead; a scale-down (the swap's
    // own max + 1 included) would take the new member first, so it waits.
    const bool scale_up_due = scale_due && intent.direction == Direction::kUp;
    if (Replace(in, next, d, /*refresh=*/true, idle, scale_up_due)) return e;
  }
  if (!intent.direction) {
    if (intent.held_by != HeldBy::kNone) {
      Hold(d, intent.held_by, "", intent.reason);
    } else {
      d.reason = intent.reason;
    }
    return e;
  }
  const Direction dir = *intent.direction;
  const bool is_up = dir == Direction::kUp;
  d.direction = dir;
  d.desired = intent.desired;  // what the group wants, also while held
  if (!intent.restoring_bounds && !ApplyStabilization(in, next, stabilized, intent, d)) return e;

  // 3. The guards.
  const Guarded guarded = ApplyGuards(in, next, intent);
  if (guarded.held_by != HeldBy::kNone) {
    Hold(d, guarded.held_by, intent.why, guarded.reason);
    return e;
  }

  // 4. The plan.
  Plan plan = is_up ? PlanScaleUp(rule, in.members, guarded.allowed)
                    : PlanScaleDown(rule, in.members, guarded.allowed);
  if (plan.operations.empty()) {
    Hold(d, HeldBy::kNoCandidate, intent.why, plan.shortfall);
    return e;
  }
  const int64_t planned = static_cast<int64_t>(plan.operations.size());
  d.desired = is_up ? d.active + planned : d.active - planned;
  d.reason = fmt::format("{}: scale {} by {} ({} -> {} active){}", intent.why, DirectionName(dir),
                         planned, d.active, d.desired, guarded.note);
  if (!is_up) d.reason += fmt::format("; scale_down.order: {}", DownOrderName(rule.down_order));
  if (!plan.shortfall.empty()) d.reason += "; " + plan.shortfall;
  // Dry run starts the cooldown and uses the rate limit too, so its decisions
  // show what would happen. A follower's plans do not: they did not happen,
  // and a follower that starts leading must not be held by them (the leader's
  // actions reach it as the members' scale stamps).
  if (!in.follower) {
    (is_up ? next.last_scale_up : next.last_scale_down) = in.now.mono;
    next.changes[static_cast<int>(dir)].push_back({in.now.mono, planned});
  }
  TakeActions(in, std::move(plan), dir, d, next);
  return e;
}

}  // namespace

Evaluation Evaluate(const EvaluationInput& in, const GroupState& state) {
  const std::optional<ActiveSchedule> window = ActiveScheduleAt(in.rule.schedules, in.now.wall);
  if (!window) return EvaluateWithin(in, state);
  // The window's bounds stand in for the group's in every step: restoring
  // bounds, clamping, the bound guards and replacement headroom.
  GroupRule bounded = in.rule;
  const Bounds b = EffectiveBounds(in.rule.min, in.rule.max, window->schedule);
  bounded.min = b.min;
  bounded.max = b.max;
  const EvaluationInput scheduled{.rule = bounded,
                                  .members = in.members,
                                  .snapshot = in.snapshot,
                                  .sources = in.sources,
                                  .now = in.now,
                                  .stale_after = in.stale_after,
                                  .connection_generation = in.connection_generation,
                                  .dry_run = in.dry_run,
                                  .follower = in.follower};
  Evaluation e = EvaluateWithin(scheduled, state);
  e.decision.schedule = ScheduleInForce::Of(*window);
  return e;
}

}  // namespace virtscale::autoscale
