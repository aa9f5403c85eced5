#pragma once
// Builders shared by the evaluator, planner and engine tests: snapshots of
// hand-made domains on a fake clock, rules written in code, and an Actuator
// that records every call.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "autoscale/actuator.h"
#include "autoscale/domain_template.h"
#include "autoscale/rules.h"
#include "collectors/snapshot.h"
#include "common/clock.h"

namespace virtscale::autoscale::testing {

using std::chrono::seconds;

// Both clocks at test second `s`; the monotonic one starts elsewhere on
// purpose, so a test cannot pass by mixing them up.
inline Instant At(int64_t s) {
  return {MonoTime(seconds(50'000 + s)), WallTime(seconds(1'700'000'000 + s))};
}
inline Instant T0() { return At(0); }
inline MonoTime MonoAt(int64_t s) { return At(s).mono; }

inline DomainStats Dom(std::string name, DomainState state, std::optional<double> cpu = {},
                       std::optional<int64_t> created_at = {}, std::string group = "web") {
  DomainStats d;
  d.name = std::move(name);
  d.uuid = "uuid-" + d.name;
  d.state = state;
  d.active = state == DomainState::kRunning || state == DomainState::kBlocked ||
             state == DomainState::kPaused;
  d.cpu_utilization = cpu;
  // Owned: the metadata records the domain's own UUID.
  if (created_at) d.metadata = VirtscaleMetadata{group, "/t/web.xml", *created_at, d.uuid, ""};
  return d;
}

inline SnapshotPtr Snap(Instant taken_at, std::vector<DomainStats> domains,
                        bool libvirt_up = true) {
  auto s = std::make_shared<Snapshot>();
  s->taken_at = taken_at.wall;
  s->taken_at_steady = taken_at.mono;
  s->libvirt_up = libvirt_up;
  std::sort(domains.begin(), domains.end(),
            [](const DomainStats& a, const DomainStats& b) { return a.name < b.name; });
  s->domains = std::move(domains);
  return s;
}

inline Condition Cond(MetricKind kind, Comparison cmp, double threshold, int for_s = 0,
                      Aggregate agg = Aggregate::kAvg, std::string source = "") {
  Condition c;
  c.metric.kind = kind;
  c.metric.source = std::move(source);
  c.comparison = cmp;
  c.threshold = threshold;
  c.aggregate = agg;
  c.for_duration = seconds(for_s);
  return c;
}

// Target tracking on `metric` (source NAME when kind is kSource).
inline TargetTracking Target(MetricKind kind, double per_member, std::string source = "") {
  TargetTracking t;
  t.metric.kind = kind;
  t.metric.source = std::move(source);
  t.per_member_target = per_member;
  return t;
}

// A cpu group: up when avg > 0.8 for 30s, down when avg < 0.2 for 60s.
inline GroupRule CpuRule(int64_t min = 1, int64_t max = 5) {
  GroupRule r;
  r.name = "web";
  r.template_path = "/t/web.xml";
  r.name_prefix = "web-";
  r.min = min;
  r.max = max;
  r.interval = seconds(10);
  r.scale_up.cooldown = seconds(60);
  r.scale_up.when.push_back(Cond(MetricKind::kCpu, Comparison::kAbove, 0.8, 30));
  r.scale_down.cooldown = seconds(120);
  r.scale_down.when.push_back(Cond(MetricKind::kCpu, Comparison::kBelow, 0.2, 60));
  return r;
}

// CpuRule, acting at once: up while avg cpu > 0.8, down while < 0.2, no cooldowns.
inline GroupRule FastRule(int64_t min = 1, int64_t max = 4) {
  GroupRule r = CpuRule(min, max);
  r.scale_up.when = {Cond(MetricKind::kCpu, Comparison::kAbove, 0.8)};
  r.scale_down.when = {Cond(MetricKind::kCpu, Comparison::kBelow, 0.2)};
  r.scale_up.cooldown = r.scale_down.cooldown = seconds(0);
  return r;
}

// A window 23:00-24:00 UTC; At(0) is 22:13:20Z, so it opens at At(2800).
inline Schedule NightWindow(std::optional<int64_t> min, std::optional<int64_t> max) {
  Schedule s;
  s.cron_text = "0 23 * * *";
  s.cron = *ParseCron(s.cron_text, nullptr);
  s.duration = std::chrono::hours(1);
  s.zone = FindTimeZone("UTC", nullptr);
  s.min = min;
  s.max = max;
  s.line = 9;
  return s;
}

// A CpuRule group (1..5) with `refresh:` (its conditions stay quiet at cpu 0.5)
// and a parsed template; its members come from Made().
inline constexpr const char* kRefreshTemplate =
    "<domain type='kvm'><name>web</name><memory>65536</memory><os><type>hvm</type></os>"
    "</domain>";

inline GroupRule RefreshRule(int64_t max_unavailable = 1) {
  GroupRule r = CpuRule(/*min=*/1, /*max=*/5);
  auto parsed = DomainTemplate::Parse(kRefreshTemplate);
  r.template_doc = std::make_shared<const DomainTemplate>(std::move(*parsed.value));
  r.refresh = RefreshPolicy{max_unavailable, 0};
  r.down_action = DownAction::kStop;  // refresh deletes its owned members all the same
  return r;
}

// An owned member whose metadata records `hash`.
inline DomainStats Made(const std::string& name, DomainState state, int64_t created_at,
                        const std::string& hash) {
  DomainStats d = Dom(name, state, 0.5, created_at);
  d.metadata->template_hash = hash;
  return d;
}

inline RuleSet Rules(std::vector<GroupRule> groups) {
  RuleSet rs;
  rs.groups = std::move(groups);
  return rs;
}

inline std::vector<DomainStats> Running(int n, double cpu) {
  std::vector<DomainStats> out;
  for (int i = 1; i <= n; ++i)
    out.push_back(Dom("web-" + std::to_string(i), DomainState::kRunning, cpu, 1000 + i));
  return out;
}

class FakeActuator : public Actuator {
 public:
  OperationResult Execute(const Operation& op) override {
    std::lock_guard lock(mu_);
    calls_.push_back(op);
    OperationResult r;
    r.ok = !fail_;
    r.domain = op.domain.empty() ? op.group + "-new" + std::to_string(calls_.size()) : op.domain;
    if (fail_) r.error = "injected failure";
    r.duration_seconds = duration_;
    if (op.kind == Operation::Kind::kDelete && op.domain.rfind("adopted", 0) == 0) {
      r.ok = false;
      r.error = "refused: no virtscale metadata";
    }
    return r;
  }
  std::string RecordScaleTime(const std::string& group, Direction direction, int64_t unix_seconds,
                              const std::vector<std::string>& domains) override {
    std::lock_guard lock(mu_);
    stamps_.push_back({group, direction, unix_seconds, domains});
    return "";
  }
  std::string RecordLifecycle(const std::string& domain, const LifecycleStamp& stamp) override {
    std::lock_guard lock(mu_);
    if (lifecycle_failing_.count(domain)) return "injected lifecycle failure";
    lifecycle_[domain] = stamp;
    return "";
  }
  void Cancel() override { cancels_.fetch_add(1); }

  // The lifecycle stamps written so far, by domain.
  std::map<std::string, LifecycleStamp> lifecycle() const {
    std::lock_guard lock(mu_);
    return lifecycle_;
  }
  // The duration each result reports (0: the engine measures it).
  void set_duration(double seconds) { duration_ = seconds; }
  void fail_lifecycle_on(std::set<std::string> domains) {
    std::lock_guard lock(mu_);
    lifecycle_failing_ = std::move(domains);
  }

  struct Stamp {
    std::string group;
    Direction direction;
    int64_t unix_seconds;
    std::vector<std::string> domains;
  };
  std::vector<Stamp> stamps() const {
    std::lock_guard lock(mu_);
    return stamps_;
  }
  int cancels() const { return cancels_.load(); }
  std::vector<Operation> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void set_fail(bool fail) {
    std::lock_guard lock(mu_);
    fail_ = fail;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Operation> calls_;
  std::vector<Stamp> stamps_;
  std::map<std::string, LifecycleStamp> lifecycle_;
  std::set<std::string> lifecycle_failing_;
  std::atomic<int> cancels_{0};
  bool fail_ = false;
  double duration_ = 0;
};

}  // namespace virtscale::autoscale::testing
