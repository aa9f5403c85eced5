#include "autoscale/rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace virtscale::autoscale {

const char* AggregateName(Aggregate a) {
  switch (a) {
    case Aggregate::kAvg:
      return "avg";
    case Aggregate::kMax:
      return "max";
    case Aggregate::kMin:
      return "min";
    case Aggregate::kSum:
      return "sum";
  }
  return "avg";
}

const char* ComparisonName(Comparison c) {
  switch (c) {
    case Comparison::kAbove:
      return "above";
    case Comparison::kBelow:
      return "below";
    case Comparison::kPerMemberAbove:
      return "per_member_above";
    case Comparison::kPerMemberBelow:
      return "per_member_below";
  }
  return "above";
}

const char* MissingDataPolicyName(MissingDataPolicy p) {
  switch (p) {
    case MissingDataPolicy::kHold:
      return "hold";
    case MissingDataPolicy::kScaleUp:
      return "scale_up";
    case MissingDataPolicy::kScaleDown:
      return "scale_down";
  }
  return "hold";
}

const char* DownActionName(DownAction a) { return a == DownAction::kDelete ? "delete" : "stop"; }

const char* DownOrderName(DownOrder o) {
  switch (o) {
    case DownOrder::kNewest:
      return "newest";
    case DownOrder::kOldest:
      return "oldest";
    case DownOrder::kLeastLoaded:
      return "least_loaded";
  }
  return "newest";
}

const char* ForecastModeName(ForecastMode m) {
  return m == ForecastMode::kScaleAhead ? "scale_ahead" : "forecast_only";
}

const char* DirectionName(Direction d) { return d == Direction::kUp ? "up" : "down"; }

std::string MetricRef::Name() const {
  switch (kind) {
    case MetricKind::kCpu:
      return "cpu";
    case MetricKind::kMemory:
      return "memory";
    case MetricKind::kSource:
      return "source:" + source;
  }
  return "cpu";
}

std::string Condition::MetricKey() const {
  if (metric.kind == MetricKind::kSource) {
    return per_member() ? metric.Name() + ":per_member" : metric.Name();
  }
  return metric.Name() + ":" + AggregateName(aggregate);
}

std::string Condition::Describe() const {
  const bool above = comparison == Comparison::kAbove || comparison == Comparison::kPerMemberAbove;
  std::string out = fmt::format("{} {} {}", MetricKey(), above ? ">" : "<", threshold);
  if (for_duration.count() > 0) out += " for " + FormatDuration(for_duration);
  return out;
}

namespace {

// Member counts stay far below this; clamping first keeps every double -> int64
// conversion defined, whatever a rule or a reading says.
constexpr double kMaxCount = 1e12;

int64_t CeilCount(double raw) {
  if (!(raw > 0)) return 0;  // also NaN
  // ceil with a small epsilon so 50% of 4 is exactly 2, not 3 from float noise.
  return static_cast<int64_t>(std::ceil(std::min(raw, kMaxCount) - 1e-9));
}

}  // namespace

int64_t Step::Resolve(int64_t current) const {
  if (!percent) return std::max<int64_t>(1, CeilCount(value));
  return std::max<int64_t>(
      1, CeilCount(value * static_cast<double>(std::max<int64_t>(current, 0)) / 100.0));
}

int64_t RateLimit::Allowed(int64_t active, int64_t changed, Direction direction) const {
  // HPA: the percentage applies to the count at the start of the period.
  const int64_t at_start =
      std::max<int64_t>(0, direction == Direction::kUp ? active - changed : active + changed);
  // At least one member per period, so a group at 0 can always grow back to min.
  const int64_t limit =
      std::max({int64_t{1}, members, CeilCount(percent * static_cast<double>(at_start) / 100.0)});
  return std::max<int64_t>(0, limit - changed);
}

std::string RateLimit::ToString() const {
  return fmt::format("max({}, {}%) per {}", members, percent, FormatDuration(period));
}

std::string Step::ToString() const {
  return percent ? fmt::format("{}%", value) : fmt::format("{}", static_cast<int64_t>(value));
}

std::string TargetTracking::MetricKey() const {
  return metric.kind == MetricKind::kSource ? metric.Name() : metric.Name() + ":sum";
}

std::string TargetTracking::Describe() const {
  return fmt::format("{} / {} per member", MetricKey(), per_member_target);
}

const char* HealthCheckTypeName(HealthCheckType t) {
  switch (t) {
    case HealthCheckType::kLibvirt:
      return "libvirt";
    case HealthCheckType::kExec:
      return "exec";
    case HealthCheckType::kHttp:
      return "http";
    case HealthCheckType::kTcp:
      return "tcp";
  }
  return "unknown";
}

const char* HookFailureName(HookFailure f) {
  return f == HookFailure::kAbandon ? "abandon" : "continue";
}

std::string HealthCheck::Describe() const {
  switch (type) {
    case HealthCheckType::kLibvirt:
      return "libvirt";
    case HealthCheckType::kExec:
      return command.empty() ? "exec" : "exec " + command[0];
    case HealthCheckType::kHttp:
      return "http " + url;
    case HealthCheckType::kTcp:
      return fmt::format("tcp {}", port);
  }
  return "unknown";
}

std::set<std::string> ForecastSources(const RuleSet& rules) {
  std::set<std::string> out;
  for (const GroupRule& g : rules.groups)
    if (g.forecast) out.insert(g.forecast->source);
  return out;
}

}  // namespace virtscale::autoscale
