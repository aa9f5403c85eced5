#pragma once
// The rule model: one GroupRule per `groups:` entry of a rule file (DESIGN.md
// "Rules"). Plain values, decoded and validated by rule_loader.h; the evaluator
// and planner only read them.
//
//   scale_up:   {step: 1, cooldown: 1m, when: [{metric: cpu, aggregate: avg, above: 0.8, for:
//   30s}]}
//   -> ScalePolicy{step = Step::Count(1), cooldown = 1m,
//                  when = {Condition{cpu, kAvg, kAbove, 0.8, 30s}}}
//
// Target tracking (an alternative to `when` conditions, keys designed here):
//   target: {metric: source:jobs, per_member_target: 50, tolerance: 0.1}
//   -> desired members = ceil(value / per_member_target), where value is the
//      source value, or for cpu/memory the SUM of the running members' ratios
//      (so `{metric: cpu, per_member_target: 0.6}` keeps the average near 60%).
//      No change while value / (running * per_member_target) is within
//      1 +- tolerance (default 0.1, as Kubernetes' HPA).
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "autoscale/notification_target.h"
#include "autoscale/schedule.h"
#include "common/duration.h"

namespace virtscale::autoscale {

class DomainTemplate;

enum class MetricKind { kCpu, kMemory, kSource };
enum class Aggregate { kAvg, kMax, kMin, kSum };
enum class Comparison { kAbove, kBelow, kPerMemberAbove, kPerMemberBelow };
enum class MissingDataPolicy { kHold, kScaleUp, kScaleDown };
enum class DownAction { kStop, kDelete };
// Which running owned member scale-down takes first (`scale_down.order`).
enum class DownOrder { kNewest, kOldest, kLeastLoaded };
enum class Direction { kUp, kDown };

const char* AggregateName(Aggregate a);                  // "avg", ...
const char* ComparisonName(Comparison c);                // "above", "per_member_below", ...
const char* MissingDataPolicyName(MissingDataPolicy p);  // "hold", ...
const char* DownActionName(DownAction a);                // "stop", "delete"
const char* DownOrderName(DownOrder o);                  // "newest", "oldest", "least_loaded"
const char* DirectionName(Direction d);                  // "up", "down"

struct MetricRef {
  MetricKind kind = MetricKind::kCpu;
  std::string source;        // kSource only
  std::string Name() const;  // "cpu", "memory", "source:jobs"
};

struct Condition {
  MetricRef metric;
  Aggregate aggregate = Aggregate::kAvg;  // cpu/memory only
  Comparison comparison = Comparison::kAbove;
  double threshold = 0;
  Duration for_duration{0};
  int line = 0;  // in the rule file, for messages

  bool per_member() const {
    return comparison == Comparison::kPerMemberAbove || comparison == Comparison::kPerMemberBelow;
  }
  // The value the condition compares: "cpu:avg", "memory:max", "source:jobs",
  // "source:jobs:per_member". Also the `metric` label of virtscale_group_metric_value.
  std::string MetricKey() const;
  // "cpu:avg > 0.8 for 30s", "source:jobs:per_member < 20".
  std::string Describe() const;
};

// A count ("step: 2") or a percentage of the current running members
// ("step: 50%"), rounded up and at least 1, like HPA / AWS step scaling.
struct Step {
  bool percent = false;
  double value = 1;  // count, or percent when `percent`
  int64_t Resolve(int64_t current) const;
  std::string ToString() const;  // "2", "50%"
};

// At most max(members, ceil(percent% of the active members at the start of the
// window)) members added (or removed) in any `period`, like Kubernetes HPA's
// scaling policies. Defaults are HPA's: up max(4, 100%) per 15s, down 100% per 15s.
//   rate_limit: {members: 4, percent: 100, period: 15s}
struct RateLimit {
  int64_t members = 0;
  double percent = 100;
  Duration period{std::chrono::seconds(15)};
  // Members the direction may still change by, given `active` members now and
  // `changed` members changed in the direction during the current period.
  int64_t Allowed(int64_t active, int64_t changed, Direction direction) const;
  std::string ToString() const;  // "max(4, 100%) per 15s"
};

struct ScalePolicy {
  Step step;
  bool step_set = false;  // whether `step` was written (target tracking: a cap per action)
  Duration cooldown{0};
  RateLimit rate_limit;
  // HPA's stabilization window: the direction acts only on the most
  // conservative recommendation of this long (evaluator.h).
  Duration stabilization_window{0};
  std::vector<Condition> when;
};

// HPA's maximum stabilization window (one hour).
inline constexpr Duration kMaxStabilizationWindow = std::chrono::hours(1);

// HPA's scale-up default adds a floor of 4 members per period.
inline ScalePolicy DefaultScaleUp() {
  ScalePolicy p;
  p.rate_limit.members = 4;
  return p;
}

struct TargetTracking {
  MetricRef metric;
  double per_member_target = 0;
  double tolerance = 0.1;
  std::string MetricKey() const;  // "source:jobs", "cpu:sum"
  std::string Describe() const;   // "source:jobs / 50 per member"
};

// `health:` (DESIGN.md "Lifecycle keys"): how a member is checked. A member
// is healthy when ALL checks pass; HealthTracker (health_check.h) turns
// results into a state. Commands and URLs may hold {domain}, {group},
// {address} (common/placeholders.h), checked at load.
enum class HealthCheckType { kLibvirt, kExec, kHttp, kTcp };
const char* HealthCheckTypeName(HealthCheckType t);  // "libvirt", "exec", "http", "tcp"

struct HealthCheck {
  HealthCheckType type = HealthCheckType::kLibvirt;
  std::vector<std::string> command;           // exec: argv, 1..64 elements
  std::string url;                            // http: http:// or https://
  int port = 0;                               // tcp: 1..65535, on {address}
  Duration timeout{std::chrono::seconds(2)};  // default 5s for exec, 2s for http and tcp
  int line = 0;                               // in the rule file, for messages
  // "libvirt", "exec /usr/local/bin/check-web", "http http://{address}:8080/healthz", "tcp 22".
  std::string Describe() const;
};

struct HealthPolicy {
  Duration grace_period{std::chrono::minutes(2)};  // no checks this long after a member starts
  Duration interval{std::chrono::seconds(10)};
  int64_t unhealthy_after = 3;  // consecutive failed rounds
  std::vector<HealthCheck> checks;
  bool replace = false;  // replace unhealthy members: a new one up, then the old one removed
};

// `hooks:`: commands run around scaling, with the same placeholders, also
// given as VIRTSCALE_DOMAIN, VIRTSCALE_GROUP, VIRTSCALE_ADDRESS.
enum class HookFailure { kAbandon, kContinue };
const char* HookFailureName(HookFailure f);  // "abandon", "continue"

struct Hook {
  std::vector<std::string> command;  // argv, 1..64 elements
  Duration timeout{std::chrono::minutes(5)};
  HookFailure on_failure = HookFailure::kAbandon;
  int line = 0;
};

struct HookPolicy {
  // Default on_failure: abandon (the member is kept).
  std::optional<Hook> before_scale_down;
  // Default on_failure: continue (the member stays).
  std::optional<Hook> after_scale_up;
};

// `refresh:`: members made from an older template (their recorded
// DomainTemplate::content_hash differs from the loaded one) are replaced one at
// a time, a new member first. Only when the key is written; needs a template.
struct RefreshPolicy {
  // Running members that may be missing from the group's size while a
  // replacement is in progress: the old member is removed only while at least
  // (size - max_unavailable) others are running and healthy.
  int64_t max_unavailable = 1;
  int line = 0;
};

// `forecast:` (DESIGN.md "Behaviour keys"): the group's load forecast
// (autoscale/forecast.h) from the history of a Prometheus source, in members:
// ceil(peak / target.per_member_target). forecast_only reports it (decision,
// virtscale_group_forecast_members); scale_ahead also raises target tracking's
// recommendation to it. Needs `target:`; the source's type is checked by the
// agent config (a range query needs type prometheus).
enum class ForecastMode { kForecastOnly, kScaleAhead };
const char* ForecastModeName(ForecastMode m);  // "forecast_only", "scale_ahead"

struct ForecastPolicy {
  std::string source;
  Duration horizon{std::chrono::minutes(15)};  // (0, 24h]
  ForecastMode mode = ForecastMode::kForecastOnly;
  int line = 0;
};

struct GroupRule {
  std::string name;
  std::string file;  // the rule file it came from
  int line = 0;
  std::string template_path;  // absolute; empty when the group has no template
  std::shared_ptr<const DomainTemplate> template_doc;  // parsed at load; null without template
  std::string name_prefix;  // adopt existing domains whose name starts with it; may be empty
  int64_t min = 0;
  int64_t max = 0;
  Duration interval{std::chrono::seconds(10)};
  MissingDataPolicy on_missing_data = MissingDataPolicy::kHold;
  bool dry_run = false;
  ScalePolicy scale_up = DefaultScaleUp();
  ScalePolicy scale_down;
  DownAction down_action = DownAction::kStop;
  DownOrder down_order = DownOrder::kNewest;            // scale_down.order
  Duration shutdown_timeout{std::chrono::seconds(60)};  // scale_down.shutdown_timeout
  std::optional<TargetTracking> target;
  std::vector<NotificationTarget> notifications;  // besides the top-level ones
  std::optional<HealthPolicy> health;             // `health:`; none: members are not checked
  std::optional<HookPolicy> hooks;                // `hooks:`
  std::vector<Schedule> schedules;         // `schedules:`; windows never overlap (checked at load)
  std::optional<RefreshPolicy> refresh;    // `refresh:`; none: members are never refreshed
  std::optional<ForecastPolicy> forecast;  // `forecast:`

  const ScalePolicy& policy(Direction d) const {
    return d == Direction::kUp ? scale_up : scale_down;
  }
};

// Across all rule files: the scale the agent is measured at (docs/configuration.md
// "Limits"). Beyond it a reload would take seconds and /metrics megabytes.
inline constexpr size_t kMaxGroups = 1000;

struct RuleSet {
  std::vector<GroupRule> groups;
  std::vector<std::string> files;  // the rule files that were loaded, absolute
};

// The sources the groups forecast from (forecast.source): their history is fetched.
std::set<std::string> ForecastSources(const RuleSet& rules);

}  // namespace virtscale::autoscale
