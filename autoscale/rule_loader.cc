#include "autoscale/rule_loader.h"

#include <fmt/format.h>
#include <glob.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>

#include "autoscale/decision.h"
#include "autoscale/domain_template.h"
#include "autoscale/forecast.h"
#include "common/http_url.h"
#include "common/placeholders.h"
#include "common/utf8.h"

namespace virtscale::autoscale {
namespace {

namespace fs = std::filesystem;

// The limits of docs/configuration.md "Limits".
// Larger steps, rate limits and bounds mean nothing on one host.
constexpr int64_t kMaxStep = 1'000'000;
constexpr int64_t kMaxMembers = 1'000'000;
// Member names are "{group}-{n}"; libvirt and tools show them in columns.
constexpr size_t kMaxGroupName = 64;
// Readings beyond 2^53 are absurd (the evaluator ignores them); so are thresholds.
constexpr double kMaxSourceThreshold = 9007199254740992.0;

struct Context {
  const std::string& file;
  const std::set<std::string>& source_names;
  Diagnostics& diags;
};

std::string JoinNames(const std::set<std::string>& names) {
  if (names.empty()) return "none configured";
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// "cpu" | "memory" | "source:NAME"; reports and returns nullopt otherwise.
std::optional<MetricRef> ReadMetric(MapReader& r, const Context& ctx) {
  if (!r.Require("metric")) return std::nullopt;
  std::string text;
  if (!r.Read("metric", text)) return std::nullopt;
  MetricRef ref;
  if (text == "cpu") {
    ref.kind = MetricKind::kCpu;
  } else if (text == "memory") {
    ref.kind = MetricKind::kMemory;
  } else if (text.starts_with("source:") && text.size() > 7) {
    ref.kind = MetricKind::kSource;
    ref.source = text.substr(7);
    if (!ctx.source_names.contains(ref.source)) {
      r.Error("metric", fmt::format("unknown source \"{}\" (configured: {})", ref.source,
                                    JoinNames(ctx.source_names)));
      return std::nullopt;
    }
  } else {
    r.Error("metric", "expected cpu, memory or source:NAME, got \"" + text + "\"");
    return std::nullopt;
  }
  return ref;
}

std::optional<Condition> DecodeCondition(const YAML::Node& node, const std::string& path,
                                         const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return std::nullopt;
  Condition c;
  c.line = LineOf(node);
  bool ok = true;
  if (auto metric = ReadMetric(r, ctx)) {
    c.metric = *metric;
  } else {
    ok = false;
  }

  if (r.Has("aggregate")) {
    std::string agg;
    if (r.Read("aggregate", agg)) {
      static const std::map<std::string, Aggregate> kAggregates{{"avg", Aggregate::kAvg},
                                                                {"max", Aggregate::kMax},
                                                                {"min", Aggregate::kMin},
                                                                {"sum", Aggregate::kSum}};
      auto it = kAggregates.find(agg);
      if (it == kAggregates.end()) {
        r.Error("aggregate", "expected avg, max, min or sum, got \"" + agg + "\"");
        ok = false;
      } else if (c.metric.kind == MetricKind::kSource) {
        r.Error("aggregate", "applies only to cpu and memory (a source is one value)");
        ok = false;
      } else {
        c.aggregate = it->second;
      }
    } else {
      ok = false;
    }
  }

  static constexpr std::pair<const char*, Comparison> kComparisons[] = {
      {"above", Comparison::kAbove},
      {"below", Comparison::kBelow},
      {"per_member_above", Comparison::kPerMemberAbove},
      {"per_member_below", Comparison::kPerMemberBelow}};
  int found = 0;
  for (const auto& [key, comparison] : kComparisons) {
    if (!r.Has(key)) {
      r.Get(key);  // mark as known even when absent
      continue;
    }
    ++found;
    double threshold = 0;
    if (!r.Read(key, threshold)) {
      ok = false;
      continue;
    }
    if (found > 1) {
      r.Error(key, "only one of above, below, per_member_above, per_member_below per condition");
      ok = false;
      continue;
    }
    if (std::fabs(threshold) > kMaxSourceThreshold) {
      r.Error(key, fmt::format("must be within ±2^53, got {}", threshold));
      ok = false;
      continue;
    }
    c.comparison = comparison;
    c.threshold = threshold;
    if (c.per_member() && c.metric.kind != MetricKind::kSource) {
      r.Error(key, "needs a source:NAME metric (cpu and memory are already per member)");
      ok = false;
    } else if (c.metric.kind != MetricKind::kSource && !(threshold >= 0 && threshold <= 1)) {
      // cpu and memory are utilisation ratios: "above: 80" would never fire.
      r.Error(key, fmt::format("{} is a ratio from 0 to 1 (80% is 0.8), got {}", c.metric.Name(),
                               threshold));
      ok = false;
    }
  }
  if (found == 0) {
    ctx.diags.Error(node, path + ": needs one of above, below, per_member_above, per_member_below");
    ok = false;
  }

  if (r.Has("for")) {
    if (!r.ReadDuration("for", c.for_duration)) ok = false;
  }
  r.Finish();
  return ok ? std::optional<Condition>(c) : std::nullopt;
}

// A positive count ("2") or a percentage ("50%").
bool ReadStep(MapReader& r, Step& out) {
  YAML::Node node = r.Get("step");
  if (!node.IsDefined() || node.IsNull()) return false;
  const std::string bad = "expected a positive count or a percentage like \"50%\"";
  if (!node.IsScalar()) {
    r.Error("step", bad);
    return false;
  }
  std::string text = node.Scalar();
  Step step;
  if (!text.empty() && text.back() == '%') {
    step.percent = true;
    text.pop_back();
  }
  // Digits with at most one dot, short enough that the value is exact: no
  // regex (inputs control its recursion) and no exception-throwing stod.
  const bool digits =
      !text.empty() && text.size() <= 12 &&
      std::all_of(text.begin(), text.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; }) &&
      std::count(text.begin(), text.end(), '.') <= (step.percent ? 1 : 0) && text.front() != '.' &&
      text.back() != '.';
  if (!digits) {
    r.Error("step",
            bad + " (at most " + std::to_string(kMaxStep) + "), got \"" + node.Scalar() + "\"");
    return false;
  }
  step.value = std::strtod(text.c_str(), nullptr);
  if (step.value <= 0 || step.value > kMaxStep) {
    r.Error("step",
            bad + " (at most " + std::to_string(kMaxStep) + "), got \"" + node.Scalar() + "\"");
    return false;
  }
  out = step;
  return true;
}

// rate_limit: {members: 4, percent: 100, period: 15s}; omitted keys keep the
// direction's default.
bool DecodeRateLimit(const YAML::Node& node, const std::string& path, RateLimit& out,
                     const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return false;
  RateLimit limit = out;
  bool ok = true;
  if (r.Has("members")) {
    if (!r.Read("members", limit.members)) {
      ok = false;
    } else if (limit.members < 0 || limit.members > kMaxStep) {
      r.Error("members", fmt::format("must be an integer in [0, {}]", kMaxStep));
      ok = false;
    }
  }
  if (r.Has("percent")) {
    if (!r.Read("percent", limit.percent)) {
      ok = false;
    } else if (!(limit.percent >= 0 && limit.percent <= 10000)) {
      r.Error("percent", "must be a number in [0, 10000]");
      ok = false;
    }
  }
  if (r.Has("period")) {
    if (!r.ReadDuration("period", limit.period)) {
      ok = false;
    } else if (limit.period <= Duration(0) || limit.period > std::chrono::hours(24)) {
      r.Error("period", "must be more than 0s and at most 1d");
      ok = false;
    }
  }
  if (ok && limit.members == 0 && limit.percent == 0) {
    r.Error("members", "members and percent are both 0: the direction could never act");
    ok = false;
  }
  r.Finish();
  if (ok) out = limit;
  return ok;
}

bool DecodePolicy(const YAML::Node& node, const std::string& path, Direction direction,
                  GroupRule& group, const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return false;
  ScalePolicy& policy = direction == Direction::kUp ? group.scale_up : group.scale_down;
  bool ok = true;
  if (r.Has("step")) {
    policy.step_set = ReadStep(r, policy.step);
    ok &= policy.step_set;
  }
  if (r.Has("cooldown")) ok &= r.ReadDuration("cooldown", policy.cooldown);
  if (r.Has("stabilization_window")) {
    if (!r.ReadDuration("stabilization_window", policy.stabilization_window)) {
      ok = false;
    } else if (policy.stabilization_window > kMaxStabilizationWindow) {
      r.Error("stabilization_window", "must be at most 1h (HPA's limit)");
      ok = false;
    }
  }
  YAML::Node limit = r.Get("rate_limit");
  if (limit.IsDefined()) ok &= DecodeRateLimit(limit, path + ".rate_limit", policy.rate_limit, ctx);
  if (direction == Direction::kDown) {
    std::string action;
    if (r.Read("action", action)) {
      if (action == "stop") {
        group.down_action = DownAction::kStop;
      } else if (action == "delete") {
        group.down_action = DownAction::kDelete;
      } else {
        r.Error("action", "expected stop or delete, got \"" + action + "\"");
        ok = false;
      }
    } else if (r.Has("action")) {
      ok = false;
    }
    if (r.Has("shutdown_timeout")) ok &= r.ReadDuration("shutdown_timeout", group.shutdown_timeout);
    std::string order;
    if (r.Read("order", order)) {
      static constexpr DownOrder kOrders[] = {DownOrder::kNewest, DownOrder::kOldest,
                                              DownOrder::kLeastLoaded};
      const auto* found = std::find_if(std::begin(kOrders), std::end(kOrders),
                                       [&](DownOrder o) { return order == DownOrderName(o); });
      if (found == std::end(kOrders)) {
        r.Error("order",
                "expected newest, oldest or least_loaded, got \"" + BoundedUtf8(order, 80) + "\"");
        ok = false;
      } else {
        group.down_order = *found;
      }
    } else if (r.Has("order")) {
      ok = false;
    }
  }
  YAML::Node when = r.Get("when");
  if (when.IsDefined() && !when.IsNull()) {
    if (!when.IsSequence()) {
      r.Error("when", "expected a list of conditions");
      ok = false;
    } else {
      for (size_t i = 0; i < when.size(); ++i) {
        auto c = DecodeCondition(when[i], fmt::format("{}.when[{}]", path, i), ctx);
        if (c) {
          policy.when.push_back(std::move(*c));
        } else {
          ok = false;
        }
      }
    }
  }
  r.Finish();
  return ok;
}

bool DecodeTarget(const YAML::Node& node, const std::string& path, GroupRule& group,
                  const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return false;
  TargetTracking target;
  bool ok = true;
  if (auto metric = ReadMetric(r, ctx)) {
    target.metric = *metric;
  } else {
    ok = false;
  }
  if (r.Require("per_member_target")) {
    if (r.Read("per_member_target", target.per_member_target)) {
      // 2^53: beyond it a double no longer counts in steps of 1.
      if (!(target.per_member_target >= 1e-6 && target.per_member_target <= 9007199254740992.0)) {
        r.Error("per_member_target", "must be a number in [1e-6, 2^53]");
        ok = false;
      }
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  if (r.Has("tolerance")) {
    if (r.Read("tolerance", target.tolerance)) {
      if (!(target.tolerance >= 0 && target.tolerance < 1)) {
        r.Error("tolerance", "must be in [0, 1)");
        ok = false;
      }
    } else {
      ok = false;
    }
  }
  r.Finish();
  if (ok) group.target = target;
  return ok;
}

// health: and hooks: (DESIGN.md "Lifecycle keys"). The bounds are those of
// docs/configuration.md "health" and "hooks".
constexpr size_t kMaxCommandArgs = 64;
constexpr size_t kMaxHealthChecks = 16;
constexpr Duration kMinCheckTimeout = std::chrono::milliseconds(100);
constexpr Duration kMaxCheckTimeout = std::chrono::minutes(5);

// Reads an optional duration within [lo, hi]; absent keeps `out`.
bool ReadDurationIn(MapReader& r, std::string_view key, Duration lo, Duration hi, Duration& out) {
  if (!r.Has(key)) return true;
  Duration d{0};
  if (!r.ReadDuration(key, d)) return false;
  if (d < lo || d > hi) {
    r.Error(key, fmt::format("must be from {} to {}, got {}", FormatDuration(lo),
                             FormatDuration(hi), FormatDuration(d)));
    return false;
  }
  out = d;
  return true;
}

// Reads an optional integer within [lo, hi]; absent keeps `out`.
bool ReadIntegerIn(MapReader& r, std::string_view key, int64_t lo, int64_t hi, int64_t& out) {
  if (!r.Has(key)) return true;
  int64_t v = 0;
  if (!r.Read(key, v)) return false;
  if (v < lo || v > hi) {
    r.Error(key, fmt::format("must be an integer from {} to {}, got {}", lo, hi, v));
    return false;
  }
  out = v;
  return true;
}

// Reports a placeholder other than {domain}, {group}, {address} in `text`.
bool CheckPlaceholdersOf(MapReader& r, std::string_view key, std::string_view text) {
  std::string why;
  if (CheckPlaceholders(text, why)) return true;
  r.Error(key, why);
  return false;
}

// `command`: a required argv (no shell) of 1..kMaxCommandArgs strings.
bool ReadCommand(MapReader& r, std::vector<std::string>& out) {
  if (!r.Require("command")) return false;
  std::vector<std::string> argv;
  if (!r.ReadStringList("command", argv)) {
    if (r.Get("command").IsNull()) r.Error("command", "expected a list of strings (an argv)");
    return false;
  }
  if (argv.empty() || argv.size() > kMaxCommandArgs || argv[0].empty()) {
    r.Error("command", fmt::format("expected an argv of 1 to {} strings, the first not empty "
                                   "(no shell: [\"/bin/sh\", \"-c\", \"...\"] for one)",
                                   kMaxCommandArgs));
    return false;
  }
  for (const std::string& arg : argv) {
    if (!CheckPlaceholdersOf(r, "command", arg)) return false;
  }
  out = std::move(argv);
  return true;
}

// A health check's `url` after substitution must be an http(s) URL the client accepts.
bool ReadCheckUrl(MapReader& r, std::string& out) {
  if (!r.Require("url") || !r.Read("url", out)) return false;
  if (!CheckPlaceholdersOf(r, "url", out)) return false;
  const PlaceholderValues sample{.domain = "d", .group = "g", .address = "192.0.2.1"};
  std::string why;
  const std::string url = SubstitutePlaceholders(out, sample, PercentEncode);
  if (!(url.starts_with("http://") || url.starts_with("https://")) || !ParseHttpUrl(url, why)) {
    r.Error("url", fmt::format("expected an http:// or https:// URL, got \"{}\"{}",
                               BoundedUtf8(out, 120), why.empty() ? "" : " (" + why + ")"));
    return false;
  }
  return true;
}

std::optional<HealthCheck> DecodeHealthCheck(const YAML::Node& node, const std::string& path,
                                             const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return std::nullopt;
  HealthCheck check;
  check.line = LineOf(node);
  std::string type;
  bool ok = r.Require("type") && r.Read("type", type);
  if (ok) {
    static constexpr HealthCheckType kTypes[] = {HealthCheckType::kLibvirt, HealthCheckType::kExec,
                                                 HealthCheckType::kHttp, HealthCheckType::kTcp};
    const auto* found = std::find_if(std::begin(kTypes), std::end(kTypes), [&](HealthCheckType t) {
      return type == HealthCheckTypeName(t);
    });
    if (found == std::end(kTypes)) {
      r.Error("type", "expected libvirt, exec, http or tcp, got \"" + BoundedUtf8(type, 80) + "\"");
      ok = false;
    } else {
      check.type = *found;
    }
  }
  if (ok) {
    // Each type has its own keys; one written for another type is named as such.
    const struct {
      const char* key;
      HealthCheckType type;
    } kTypeKeys[] = {{"command", HealthCheckType::kExec},
                     {"url", HealthCheckType::kHttp},
                     {"port", HealthCheckType::kTcp}};
    for (const auto& k : kTypeKeys) {
      if (check.type == k.type) continue;
      if (r.Has(k.key)) {
        r.Error(k.key, fmt::format("applies only to type {}", HealthCheckTypeName(k.type)));
        ok = false;
      }
      r.Get(k.key);
    }
    switch (check.type) {
      case HealthCheckType::kLibvirt:
        if (r.Has("timeout")) {
          r.Error("timeout", "does not apply to type libvirt (it reads the state the agent has)");
          ok = false;
        }
        r.Get("timeout");
        break;
      case HealthCheckType::kExec:
        ok &= ReadCommand(r, check.command);
        check.timeout = std::chrono::seconds(5);
        break;
      case HealthCheckType::kHttp:
        ok &= ReadCheckUrl(r, check.url);
        break;
      case HealthCheckType::kTcp: {
        int64_t port = 0;
        if (r.Require("port") && ReadIntegerIn(r, "port", 1, 65535, port)) {
          check.port = static_cast<int>(port);
        } else {
          ok = false;
        }
        break;
      }
    }
    if (check.type != HealthCheckType::kLibvirt)
      ok &= ReadDurationIn(r, "timeout", kMinCheckTimeout, kMaxCheckTimeout, check.timeout);
  } else {
    // Without a type the other keys cannot be judged: not "unknown" either.
    for (const char* key : {"command", "url", "port", "timeout"}) r.Get(key);
  }
  r.Finish();
  return ok ? std::optional<HealthCheck>(std::move(check)) : std::nullopt;
}

bool DecodeHealth(const YAML::Node& node, const std::string& path, GroupRule& group,
                  const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return false;
  HealthPolicy health;
  bool ok =
      ReadDurationIn(r, "grace_period", Duration(0), std::chrono::hours(1), health.grace_period);
  ok &= ReadDurationIn(r, "interval", std::chrono::seconds(1), std::chrono::hours(1),
                       health.interval);
  ok &= ReadIntegerIn(r, "unhealthy_after", 1, 100, health.unhealthy_after);
  if (r.Has("replace") && !r.Read("replace", health.replace)) ok = false;
  YAML::Node checks = r.Get("checks");
  if (!r.Require("checks")) {
    ok = false;
  } else if (!checks.IsSequence() || checks.size() == 0 || checks.size() > kMaxHealthChecks) {
    r.Error("checks", fmt::format("expected a list of 1 to {} checks", kMaxHealthChecks));
    ok = false;
  } else {
    for (size_t i = 0; i < checks.size(); ++i) {
      auto check = DecodeHealthCheck(checks[i], fmt::format("{}.checks[{}]", path, i), ctx);
      if (check) {
        health.checks.push_back(std::move(*check));
      } else {
        ok = false;
      }
    }
  }
  r.Finish();
  if (ok) group.health = std::move(health);
  return ok;
}

bool DecodeHook(const YAML::Node& node, const std::string& path, HookFailure default_failure,
                std::optional<Hook>& out, const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return false;
  Hook hook;
  hook.line = LineOf(node);
  hook.on_failure = default_failure;
  bool ok = ReadCommand(r, hook.command);
  ok &= ReadDurationIn(r, "timeout", std::chrono::seconds(1), std::chrono::hours(1), hook.timeout);
  std::string on_failure;
  if (r.Read("on_failure", on_failure)) {
    if (on_failure == HookFailureName(HookFailure::kAbandon)) {
      hook.on_failure = HookFailure::kAbandon;
    } else if (on_failure == HookFailureName(HookFailure::kContinue)) {
      hook.on_failure = HookFailure::kContinue;
    } else {
      r.Error("on_failure",
              "expected abandon or continue, got \"" + BoundedUtf8(on_failure, 80) + "\"");
      ok = false;
    }
  } else if (r.Has("on_failure")) {
    ok = false;
  }
  r.Finish();
  if (ok) out = std::move(hook);
  return ok;
}

bool DecodeHooks(const YAML::Node& node, const std::string& path, GroupRule& group,
                 const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return false;
  HookPolicy hooks;
  bool ok = true;
  // Before a scale-down the safe default keeps the member; after a scale-up
  // the member is already serving, so a failed enlist keeps it too.
  if (YAML::Node n = r.Get("before_scale_down"); n.IsDefined())
    ok &= DecodeHook(n, path + ".before_scale_down", HookFailure::kAbandon, hooks.before_scale_down,
                     ctx);
  if (YAML::Node n = r.Get("after_scale_up"); n.IsDefined())
    ok &=
        DecodeHook(n, path + ".after_scale_up", HookFailure::kContinue, hooks.after_scale_up, ctx);
  r.Finish();
  if (ok) group.hooks = std::move(hooks);
  return ok;
}

// schedules: (DESIGN.md "Behaviour keys"); the bounds of docs/configuration.md "schedules".
constexpr size_t kMaxSchedules = 32;
constexpr Duration kMaxScheduleDuration = std::chrono::hours(24 * 7);
// Overlap is checked over the year after the load: every date and weekday
// recurs in it, so only Feb 29 and zone rule changes fall outside.
constexpr Duration kOverlapHorizon = std::chrono::hours(24 * 366);
// Windows a group's schedules may open in that year, in all: one hourly
// schedule (8784 in a leap year) fits. Bounds the cost of a load.
constexpr size_t kMaxWindowsPerYear = 10'000;

std::optional<Schedule> DecodeSchedule(const YAML::Node& node, const std::string& path,
                                       const GroupRule& g, const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return std::nullopt;
  Schedule s;
  s.line = LineOf(node);
  bool ok = true;
  std::string why;
  if (r.Require("cron") && r.Read("cron", s.cron_text)) {
    if (std::optional<CronExpr> cron = ParseCron(s.cron_text, &why)) {
      s.cron = *cron;
    } else {
      r.Error("cron", why);
      ok = false;
    }
  } else {
    ok = false;
  }
  if (!r.Require("duration") || !r.ReadDuration("duration", s.duration)) {
    ok = false;
  } else if (s.duration <= Duration(0) || s.duration > kMaxScheduleDuration) {
    r.Error("duration",
            fmt::format("must be more than 0s and at most {}, got {}",
                        FormatDuration(kMaxScheduleDuration), FormatDuration(s.duration)));
    ok = false;
  }
  if (r.Has("timezone") && !r.Read("timezone", s.timezone)) ok = false;
  s.zone = FindTimeZone(s.timezone, &why);
  if (s.zone == nullptr) {
    r.Error("timezone", why);
    ok = false;
  }
  // Unlike the group's own, a window's bounds may lie outside the group's
  // (a higher floor in working hours), as an AWS scheduled action's do.
  auto read_bound = [&](const char* key, int64_t lo, std::optional<int64_t>& out) {
    int64_t v = 0;
    if (!r.Has(key)) return;
    if (ReadIntegerIn(r, key, lo, kMaxMembers, v)) {
      out = v;
    } else {
      ok = false;
    }
  };
  read_bound("min", 0, s.min);
  read_bound("max", 1, s.max);
  if (ok && !s.min && !s.max) {
    ctx.diags.Error(node, path + ": needs min, max or both (the bounds the window sets)");
    ok = false;
  }
  const Bounds b = EffectiveBounds(g.min, g.max, &s);
  if (ok && b.min > b.max) {
    r.Error(s.min ? "min" : "max",
            fmt::format("while the window is open min would be {} and max {} (the group's {} is "
                        "{}): give both, or values within the group's bounds",
                        b.min, b.max, s.min ? "max" : "min", s.min ? g.max : g.min));
    ok = false;
  }
  if (ok && !s.NextStart(SystemClock().Now().wall)) {
    r.Error("cron", fmt::format("\"{}\" matches no date in the next {} years", s.cron_text,
                                kScheduleSearchYears));
    ok = false;
  }
  r.Finish();
  if (!ok) return std::nullopt;
  return s;
}

bool DecodeSchedules(const YAML::Node& node, const std::string& path, GroupRule& g,
                     const Context& ctx) {
  if (!node.IsSequence() || node.size() == 0 || node.size() > kMaxSchedules) {
    ctx.diags.Error(node,
                    fmt::format("{}: expected a list of 1 to {} schedules", path, kMaxSchedules));
    return false;
  }
  bool ok = true;
  std::vector<Schedule> schedules;
  for (size_t i = 0; i < node.size(); ++i) {
    std::optional<Schedule> s = DecodeSchedule(node[i], fmt::format("{}[{}]", path, i), g, ctx);
    if (s) schedules.push_back(std::move(*s));
    ok &= s.has_value();
  }
  if (!ok) return false;
  std::optional<size_t> too_many;
  const std::optional<ScheduleOverlap> overlap = FindScheduleOverlap(
      schedules, SystemClock().Now().wall, kOverlapHorizon, kMaxWindowsPerYear, &too_many);
  if (too_many) {
    ctx.diags.Error(node[*too_many]["cron"],
                    fmt::format("{}[{}].cron: the group's schedules open more than {} windows a "
                                "year in all (hourly is 8784)",
                                path, *too_many, kMaxWindowsPerYear));
    return false;
  }
  if (overlap) {
    const Schedule& a = schedules[overlap->first];
    const Schedule& b = schedules[overlap->second];
    const std::string what =
        overlap->first == overlap->second
            ? fmt::format(
                  "the window of {}:{} (\"{}\", {}) opening at {} is still open when "
                  "its next one opens at {}",
                  ctx.file, a.line, a.cron_text, FormatDuration(a.duration),
                  FormatTime(overlap->first_start), FormatTime(overlap->second_start))
            : fmt::format(
                  "the window of {}:{} (\"{}\", {}) opening at {} is still open when "
                  "the window of {}:{} (\"{}\") opens at {}",
                  ctx.file, a.line, a.cron_text, FormatDuration(a.duration),
                  FormatTime(overlap->first_start), ctx.file, b.line, b.cron_text,
                  FormatTime(overlap->second_start));
    ctx.diags.Error(node[overlap->second],
                    fmt::format("{}[{}]: overlapping schedules: {}", path, overlap->second, what));
    return false;
  }
  g.schedules = std::move(schedules);
  return true;
}

// refresh: (DESIGN.md "Behaviour keys"): replacing members made from an older template.
bool DecodeRefresh(const YAML::Node& node, const std::string& path, GroupRule& group,
                   const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return false;
  RefreshPolicy refresh;
  refresh.line = LineOf(node);
  bool ok = ReadIntegerIn(r, "max_unavailable", 0, std::max<int64_t>(group.max, 0),
                          refresh.max_unavailable);
  r.Finish();
  if (ok && group.template_path.empty()) {
    ctx.diags.Error(node, path +
                              ": needs a template (members are refreshed to the group's "
                              "template), and this group has none");
    ok = false;
  }
  if (ok) group.refresh = refresh;
  return ok;
}

// forecast: (DESIGN.md "Behaviour keys"). The source's type is checked by the
// agent config, which knows the sources' types.
bool DecodeForecast(const YAML::Node& node, const std::string& path, GroupRule& group,
                    const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return false;
  ForecastPolicy forecast;
  forecast.line = LineOf(node);
  bool ok = r.Require("source") && r.Read("source", forecast.source);
  if (ok && !ctx.source_names.contains(forecast.source)) {
    r.Error("source", fmt::format("unknown source \"{}\" (configured: {})",
                                  BoundedUtf8(forecast.source, 80), JoinNames(ctx.source_names)));
    ok = false;
  }
  // A forecast is binned by 5 minutes; beyond a day the daily season says nothing new.
  ok &=
      ReadDurationIn(r, "horizon", std::chrono::seconds(1), kMaxForecastHorizon, forecast.horizon);
  std::string mode;
  if (r.Read("mode", mode)) {
    if (mode == "scale_ahead") {
      forecast.mode = ForecastMode::kScaleAhead;
    } else if (mode != "forecast_only") {
      r.Error("mode",
              "expected forecast_only or scale_ahead, got \"" + BoundedUtf8(mode, 80) + "\"");
      ok = false;
    }
  } else if (r.Has("mode")) {
    ok = false;
  }
  r.Finish();
  if (ok && !group.target) {
    ctx.diags.Error(node, path +
                              ": needs target: (the forecast is a load, turned into members by "
                              "target.per_member_target), and this group has none");
    ok = false;
  }
  if (ok) group.forecast = forecast;
  return ok;
}

// A group that loads but can never act is most likely a mistake; it is a
// warning (`check config --strict` fails on it), not an error.
void WarnIfInert(const GroupRule& g, const YAML::Node& node, const std::string& path,
                 const Context& ctx) {
  if (g.template_path.empty() && g.name_prefix.empty())
    ctx.diags.Warn(node["name"],
                   path +
                       ": no template and no members.name_prefix: the group can create no "
                       "member and adopts domains only by an ownership element naming it");
  if (g.template_path.empty() && g.down_action == DownAction::kDelete)
    ctx.diags.Warn(node["scale_down"]["action"],
                   path +
                       ".scale_down.action: delete removes only members created from a "
                       "template, and this group has none");
  const bool replaces = g.health && g.health->replace;
  if (!g.target && g.scale_up.when.empty() && g.scale_down.when.empty())
    ctx.diags.Warn(node["name"], path +
                                     ": no scale_up.when, scale_down.when or target: the "
                                     "group only restores min and max" +
                                     (replaces ? " and replaces unhealthy members" : ""));
  if (replaces && g.template_path.empty())
    ctx.diags.Warn(node["health"]["replace"],
                   path +
                       ".health.replace: the group has no template, so a replacement can only "
                       "be a stopped member it starts");
}

std::optional<GroupRule> DecodeGroup(const YAML::Node& node, const std::string& path,
                                     Duration default_interval, const Context& ctx) {
  MapReader r(node, path, ctx.diags);
  if (!r.valid()) return std::nullopt;
  GroupRule g;
  g.file = ctx.file;
  g.line = LineOf(node);
  g.interval = default_interval;
  bool ok = true;

  if (r.Require("name") && r.Read("name", g.name)) {
    // Checked by hand: std::regex recurses once per character.
    const bool valid_name =
        !g.name.empty() && g.name.size() <= kMaxGroupName &&
        std::all_of(g.name.begin(), g.name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
        });
    if (!valid_name) {
      r.Error("name", fmt::format("must match [A-Za-z0-9_.-]+ and be at most {} characters (it "
                                  "names the group's domains), got \"{}\"",
                                  kMaxGroupName, BoundedUtf8(g.name, 80)));
      ok = false;
    }
  } else {
    ok = false;
  }

  std::string tmpl;
  if (r.Read("template", tmpl)) {
    fs::path p(tmpl);
    if (p.is_relative()) p = fs::path(ctx.file).parent_path() / p;
    g.template_path = p.lexically_normal().string();
    // Parsed once here: the actuator creates from this validated copy, so an
    // edited file takes effect only after a successful reload.
    TemplateParseResult parsed = DomainTemplate::Load(g.template_path);
    if (parsed.ok()) {
      g.template_doc = std::make_shared<const DomainTemplate>(std::move(*parsed.value));
    } else {
      r.Error("template", parsed.error);
      ok = false;
    }
  } else if (r.Has("template")) {
    ok = false;
  }

  YAML::Node members = r.Get("members");
  if (members.IsDefined()) {
    MapReader m(members, path + ".members", ctx.diags);
    if (m.valid()) {
      if (m.Read("name_prefix", g.name_prefix) && g.name_prefix.empty()) {
        m.Error("name_prefix", "must not be empty (it would adopt every domain)");
        ok = false;
      }
      m.Finish();
    }
    ok &= m.valid();
  }

  bool bounds_ok = true;
  if (r.Has("min") && !r.Read("min", g.min)) bounds_ok = false;
  if (!r.Require("max") || !r.Read("max", g.max)) bounds_ok = false;
  if (g.min < 0) {
    r.Error("min", "must not be negative");
    bounds_ok = false;
  } else if (bounds_ok && (g.max < 1 || g.max > kMaxMembers)) {
    r.Error("max", fmt::format("must be an integer from 1 to {}", kMaxMembers));
    bounds_ok = false;
  } else if (bounds_ok && g.min > g.max) {
    r.Error("min", fmt::format("min ({}) is greater than max ({})", g.min, g.max));
    bounds_ok = false;
  }
  ok &= bounds_ok;

  if (r.Has("interval")) {
    if (!r.ReadDuration("interval", g.interval)) {
      ok = false;
    } else if (g.interval.count() <= 0) {
      r.Error("interval", "must be positive");
      ok = false;
    }
  }

  std::string missing;
  if (r.Read("on_missing_data", missing)) {
    if (missing == "hold") {
      g.on_missing_data = MissingDataPolicy::kHold;
    } else if (missing == "scale_up") {
      g.on_missing_data = MissingDataPolicy::kScaleUp;
    } else if (missing == "scale_down") {
      g.on_missing_data = MissingDataPolicy::kScaleDown;
    } else {
      r.Error("on_missing_data", "expected hold, scale_up or scale_down, got \"" + missing + "\"");
      ok = false;
    }
  } else if (r.Has("on_missing_data")) {
    ok = false;
  }

  if (r.Has("dry_run") && !r.Read("dry_run", g.dry_run)) ok = false;

  if (r.Has("scale_up")) {
    ok &= DecodePolicy(r.Get("scale_up"), path + ".scale_up", Direction::kUp, g, ctx);
  } else {
    r.Get("scale_up");
  }
  if (r.Has("scale_down")) {
    ok &= DecodePolicy(r.Get("scale_down"), path + ".scale_down", Direction::kDown, g, ctx);
  } else {
    r.Get("scale_down");
  }
  if (r.Has("target")) {
    ok &= DecodeTarget(r.Get("target"), path + ".target", g, ctx);
    if (!g.scale_up.when.empty() || !g.scale_down.when.empty()) {
      r.Error("target", "cannot be combined with scale_up.when / scale_down.when conditions");
      ok = false;
    }
  } else {
    r.Get("target");
  }
  const size_t errors = ctx.diags.errors();
  g.notifications = DecodeNotifications(r.Get("notifications"), path + ".notifications", ctx.diags);
  ok &= ctx.diags.errors() == errors;
  if (YAML::Node health = r.Get("health"); health.IsDefined())
    ok &= DecodeHealth(health, path + ".health", g, ctx);
  if (YAML::Node hooks = r.Get("hooks"); hooks.IsDefined())
    ok &= DecodeHooks(hooks, path + ".hooks", g, ctx);
  // After min and max: a window's bounds are checked against the group's.
  if (YAML::Node schedules = r.Get("schedules"); schedules.IsDefined() && bounds_ok)
    ok &= DecodeSchedules(schedules, path + ".schedules", g, ctx);
  if (YAML::Node refresh = r.Get("refresh"); refresh.IsDefined())
    ok &= DecodeRefresh(refresh, path + ".refresh", g, ctx);
  // After target: a forecast is in target's units.
  if (YAML::Node forecast = r.Get("forecast"); forecast.IsDefined())
    ok &= DecodeForecast(forecast, path + ".forecast", g, ctx);
  r.Finish();
  if (ok) WarnIfInert(g, node, path, ctx);
  return ok ? std::optional<GroupRule>(std::move(g)) : std::nullopt;
}

}  // namespace

void DecodeRuleFile(const YAML::Node& root, const std::string& file,
                    const std::set<std::string>& source_names, Duration default_interval,
                    RuleSet& out, Diagnostics& diags) {
  Diagnostics local(file);
  Context ctx{file, source_names, local};
  MapReader top(root, "", local);
  if (top.valid() && top.Require("groups")) {
    YAML::Node groups = top.Get("groups");
    if (!groups.IsSequence()) {
      top.Error("groups", "expected a list of groups");
    } else if (out.groups.size() + groups.size() > kMaxGroups) {
      // Checked before decoding: 100k groups would take a minute to refuse.
      top.Error("groups", fmt::format("{} groups here and {} in earlier rule files: at most {} "
                                      "groups in all are supported",
                                      groups.size(), out.groups.size(), kMaxGroups));
    } else {
      for (size_t i = 0; i < groups.size(); ++i) {
        auto g = DecodeGroup(groups[i], fmt::format("groups[{}]", i), default_interval, ctx);
        if (!g) continue;
        auto dup = std::find_if(out.groups.begin(), out.groups.end(),
                                [&](const GroupRule& o) { return o.name == g->name; });
        if (dup != out.groups.end()) {
          local.Error(
              groups[i]["name"],
              fmt::format("groups[{}].name: duplicate group name \"{}\" (first defined at {}:{})",
                          i, g->name, dup->file, dup->line));
          continue;
        }
        // Two groups adopting the same names would count the same domains twice.
        auto same_prefix =
            std::find_if(out.groups.begin(), out.groups.end(), [&](const GroupRule& o) {
              return !g->name_prefix.empty() && o.name_prefix == g->name_prefix;
            });
        if (same_prefix != out.groups.end()) {
          local.Error(groups[i]["members"]["name_prefix"],
                      fmt::format("groups[{}].members.name_prefix: \"{}\" is already the prefix of "
                                  "group \"{}\" ({}:{}); a domain can be in one group only",
                                  i, g->name_prefix, same_prefix->name, same_prefix->file,
                                  same_prefix->line));
          continue;
        }
        out.groups.push_back(std::move(*g));
      }
    }
  }
  top.Finish();
  diags.Append(local);
}

RuleSet LoadRuleFiles(const std::vector<std::string>& globs, const std::string& base_dir,
                      const std::set<std::string>& source_names, Duration default_interval,
                      Diagnostics& diags, const std::vector<int>& glob_lines) {
  RuleSet rules;
  for (size_t g = 0; g < globs.size(); ++g) {
    const std::string& pattern = globs[g];
    fs::path full(pattern);
    if (full.is_relative()) full = fs::path(base_dir) / full;
    glob_t matches{};
    const int rc = glob(full.string().c_str(), GLOB_ERR, nullptr, &matches);
    std::vector<std::string> files;
    if (rc == 0) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) files.emplace_back(matches.gl_pathv[i]);
    }
    globfree(&matches);
    if (files.empty()) {
      diags.Add(diags.file(), g < glob_lines.size() ? glob_lines[g] : 0,
                fmt::format("rule_files: \"{}\" matches no files (looked for {})", pattern,
                            full.lexically_normal().string()));
      continue;
    }
    for (const std::string& file : files) {
      const std::string path = fs::path(file).lexically_normal().string();
      if (std::find(rules.files.begin(), rules.files.end(), path) != rules.files.end()) continue;
      rules.files.push_back(path);
      auto root = LoadYamlFile(path, diags);
      if (!root) continue;
      DecodeRuleFile(*root, path, source_names, default_interval, rules, diags);
    }
  }
  return rules;
}

}  // namespace virtscale::autoscale
