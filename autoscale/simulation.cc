#include "autoscale/simulation.h"

#include <fmt/format.h>
#include <glob.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include "autoscale/domain_template.h"
#include "autoscale/engine.h"
#include "autoscale/hook_runner.h"
#include "autoscale/rule_loader.h"
#include "collectors/snapshot.h"
#include "collectors/sources/reading.h"

namespace virtscale::autoscale {
namespace {

// Parses a whole number token; false on trailing junk.
bool ParseNumber(std::string_view text, double& out) {
  if (text.empty()) return false;
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size() && std::isfinite(out);
}

bool ParseCount(std::string_view text, int64_t& out) {
  if (text.empty() || text.size() > 9) return false;
  out = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

// "a", "a+bxn", "a-bxn", "axn", "_", "_xn", "stale".
bool ExpandToken(std::string_view tok, std::vector<std::optional<double>>& out,
                 std::string& error) {
  if (tok == "stale" || tok == "_") {
    out.emplace_back();
    return true;
  }
  const size_t x = tok.rfind('x');
  if (x == std::string_view::npos) {
    double v = 0;
    if (!ParseNumber(tok, v)) {
      error = fmt::format("bad value \"{}\"", tok);
      return false;
    }
    out.emplace_back(v);
    return true;
  }
  int64_t n = 0;
  if (!ParseCount(tok.substr(x + 1), n)) {
    error = fmt::format("bad repeat count in \"{}\"", tok);
    return false;
  }
  const std::string_view head = tok.substr(0, x);
  if (head == "_") {  // missing samples cannot increment: n of them
    out.insert(out.end(), static_cast<size_t>(n), std::nullopt);
    return true;
  }
  // The operator is the first +/- after the start that does not belong to an exponent.
  size_t op = std::string_view::npos;
  for (size_t i = 1; i < head.size(); ++i) {
    if ((head[i] == '+' || head[i] == '-') && head[i - 1] != 'e' && head[i - 1] != 'E') {
      op = i;
      break;
    }
  }
  double a = 0;
  double b = 0;
  const bool ok = op == std::string_view::npos
                      ? ParseNumber(head, a)
                      : ParseNumber(head.substr(0, op), a) && ParseNumber(head.substr(op + 1), b);
  if (!ok) {
    error = fmt::format("bad expanding term \"{}\" (want a+bxN, a-bxN or axN)", tok);
    return false;
  }
  if (op != std::string_view::npos && head[op] == '-') b = -b;
  for (int64_t i = 0; i <= n; ++i) out.emplace_back(a + b * static_cast<double>(i));
  return true;
}

// The simulated membership, changed by the actuator.
struct World {
  struct Domain {
    std::string name;
    bool running = true;
    int64_t created_at_unix = 0;
    std::optional<LifecycleStamp> lifecycle;  // written by SimActuator::RecordLifecycle
  };
  std::mutex mu;
  std::vector<Domain> domains;
  int next_index = 1;
  std::string group;
  std::string template_path;

  int64_t Running() {
    std::lock_guard lock(mu);
    return std::count_if(domains.begin(), domains.end(), [](const Domain& d) { return d.running; });
  }
  int64_t Stopped() {
    std::lock_guard lock(mu);
    return std::count_if(domains.begin(), domains.end(),
                         [](const Domain& d) { return !d.running; });
  }
  std::string NewName() { return fmt::format("{}-{}", group, next_index++); }
};

class SimActuator : public Actuator {
 public:
  SimActuator(World& world, std::atomic<int64_t>& now_unix) : world_(world), now_unix_(now_unix) {}

  OperationResult Execute(const Operation& op) override {
    std::lock_guard lock(world_.mu);
    OperationResult r;
    r.domain = op.domain;
    auto it = std::find_if(world_.domains.begin(), world_.domains.end(),
                           [&](const World::Domain& d) { return d.name == op.domain; });
    switch (op.kind) {
      case Operation::Kind::kCreate:
        r.domain = world_.NewName();
        world_.domains.push_back({r.domain, true, now_unix_.load(), std::nullopt});
        r.ok = true;
        break;
      case Operation::Kind::kStart:
      case Operation::Kind::kStop:
        if (it == world_.domains.end()) {
          r.error = "no such domain";
        } else {
          it->running = op.kind == Operation::Kind::kStart;
          r.ok = true;
        }
        break;
      case Operation::Kind::kDelete:
        if (it == world_.domains.end()) {
          r.error = "no such domain";
        } else {
          world_.domains.erase(it);
          r.ok = true;
        }
        break;
    }
    return r;
  }

  std::string RecordLifecycle(const std::string& domain, const LifecycleStamp& stamp) override {
    std::lock_guard lock(world_.mu);
    for (World::Domain& d : world_.domains) {
      if (d.name != domain) continue;
      d.lifecycle = stamp;
      return "";
    }
    return "no such domain";
  }

 private:
  World& world_;
  std::atomic<int64_t>& now_unix_;
};

// The modelled hooks: each run blocks its worker until the simulated time
// reaches its end, so it takes simulated time while the engine goes on.
struct SimHooks {
  std::mutex mu;
  std::condition_variable cv;
  TimePoint now{};        // the current step (set before its tick): when a hook starts
  TimePoint wake{};       // hooks that end at or before it return (set after the tick)
  bool released = false;  // the simulation ended: every hook returns, cancelled
  struct Running {
    std::string which;
    std::string domain;
    TimePoint end;
  };
  std::list<Running> running;
  std::vector<HookEvent> ended;    // since the loop last took them
  std::vector<Decision> finished;  // on_change_finished, since the loop last took them

  // Hook runs waiting for a later step (the jobs they hold are not going to finish now).
  size_t Parked() const {
    return static_cast<size_t>(std::count_if(running.begin(), running.end(),
                                             [&](const Running& r) { return r.end > wake; }));
  }

  HookRun Run(const SimulationSpec& spec, const char* which, const Hook& hook,
              const PlaceholderValues& values) {
    const bool before = std::string_view(which) == "before_scale_down";
    const std::optional<SimulatedHook>& sim = before ? spec.before_scale_down : spec.after_scale_up;
    const HookModel model = sim ? sim->For(values.domain) : HookModel{};
    const Duration takes = model.result == HookOutcome::kTimeout ? hook.timeout : model.takes;
    HookRun run;
    const std::vector<std::string> argv = SubstituteArgv(hook.command, values);
    run.command = argv.empty() ? "" : argv[0];
    std::unique_lock lock(mu);
    const TimePoint started = now;
    const TimePoint end = started + std::max(takes, Duration(0));
    auto it = running.insert(running.end(), Running{which, values.domain, end});
    cv.notify_all();
    cv.wait(lock, [&] { return wake >= end || released; });
    running.erase(it);
    HookEvent ev;
    ev.which = which;
    ev.domain = values.domain;
    ev.started = started;
    ev.ended = now;
    ev.result = model.result;
    SubprocessResult& r = run.result;
    if (wake < end) {
      r.outcome = SubprocessOutcome::kCancelled;
      ev.finished = false;
    } else if (model.result == HookOutcome::kTimeout) {
      r.outcome = SubprocessOutcome::kTimedOut;
      r.timeout = hook.timeout;
    } else {
      r.outcome = SubprocessOutcome::kExited;
      r.exit_code = model.result == HookOutcome::kOk ? 0 : 1;
      if (model.result == HookOutcome::kFail) r.output = "simulated failure\n";
    }
    run.proceed = HookProceeds(hook, r);
    ev.proceed = run.proceed;
    ev.outcome = r.Describe();
    ev.described = run.Describe();
    ended.push_back(std::move(ev));
    return run;
  }
};

int64_t UnixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The utilisation a member reads at `t` for one metric kind.
std::optional<double> MemberValue(const SimulationSpec& spec, MetricKind kind,
                                  const std::string& member, int64_t running, TimePoint t) {
  const MemberInput* general = nullptr;
  for (const MemberInput& in : spec.member_inputs) {
    if (in.kind != kind) continue;
    if (in.member == member) {
      general = &in;
      break;
    }
    if (in.member.empty() && general == nullptr) general = &in;
  }
  if (general == nullptr) return std::nullopt;
  std::optional<double> v = general->series.At(t);
  if (v && general->shared)
    v = std::min(1.0, *v / static_cast<double>(std::max<int64_t>(running, 1)));
  return v;
}

SnapshotPtr TakeSnapshot(World& world, const SimulationSpec& spec, TimePoint t, uint64_t seq) {
  auto snap = std::make_shared<Snapshot>();
  snap->taken_at = t;
  snap->taken_at_steady =
      MonoTime(std::chrono::duration_cast<MonoTime::duration>(t.time_since_epoch()));
  snap->sequence = seq;
  snap->libvirt_up = true;
  snap->libvirt_uri = "simulation";
  std::lock_guard lock(world.mu);
  int64_t running = 0;
  for (const auto& d : world.domains) running += d.running ? 1 : 0;
  for (const auto& d : world.domains) {
    DomainStats s;
    s.name = d.name;
    s.state = d.running ? DomainState::kRunning : DomainState::kShutoff;
    s.active = d.running;
    s.uuid = "sim-" + d.name;  // recorded below too: the simulated members are owned
    s.metadata =
        VirtscaleMetadata{spec.rule.name, spec.rule.template_path, d.created_at_unix, s.uuid,
                          spec.rule.template_doc ? spec.rule.template_doc->content_hash() : ""};
    s.lifecycle = d.lifecycle;
    if (spec.protected_members.count(d.name) && !(s.lifecycle && s.lifecycle->is_protected)) {
      if (!s.lifecycle) s.lifecycle = LifecycleStamp{spec.rule.name, false, 0, false, 0};
      s.lifecycle->is_protected = true;
      s.lifecycle->protected_changed_ms = 1;  // before any change the simulation makes
    }
    if (d.running) {
      s.cpu_utilization = MemberValue(spec, MetricKind::kCpu, d.name, running, t);
      s.memory_utilization = MemberValue(spec, MetricKind::kMemory, d.name, running, t);
    }
    snap->domains.push_back(std::move(s));
  }
  std::sort(snap->domains.begin(), snap->domains.end(),
            [](const DomainStats& a, const DomainStats& b) { return a.name < b.name; });
  return snap;
}

// The history a forecast source's fetcher would hold: the series before the
// newest refetch, refetched every kHistoryRefetch of simulated time as the agent does.
struct SimulatedHistory {
  std::shared_ptr<const SourceHistory> fetched;
  std::shared_ptr<const SourceHistory> Fetch(const Series& series, TimePoint t) {
    if (fetched && t - fetched->fetched_at < kHistoryRefetch) return fetched;
    auto h = std::make_shared<SourceHistory>();
    h->fetched_at = t;
    for (const Series::Point& p : series.points()) {
      if (p.time > t) break;
      if (p.value)
        h->samples.emplace_back(std::chrono::duration<double>(p.time.time_since_epoch()).count(),
                                *p.value);
    }
    fetched = std::move(h);
    return fetched;
  }
};

SourceReadings ReadSources(const SimulationSpec& spec, TimePoint t, SimulatedHistory& history) {
  SourceReadings out;
  const GroupRule& rule = spec.rule;
  for (const auto& [name, series] : spec.sources) {
    SourceReading r;
    if (rule.forecast && rule.forecast->source == name) r.history = history.Fetch(series, t);
    r.value = series.At(t);
    if (r.value) {
      r.last_success = t;
    } else {
      r.error = "no sample in the input series at this time";
    }
    out.emplace(name, std::move(r));
  }
  return out;
}

// Whether a pause window of `spec` opens (true) or closes (false) within the
// step that begins at `t`.
std::optional<bool> PauseEdge(const SimulationSpec& spec, TimePoint t, Duration step) {
  auto within = [&](Duration offset) {
    const TimePoint edge = spec.start + offset;
    return edge <= t && t < edge + step;
  };
  for (const PauseWindow& w : spec.pauses) {
    if (w.until && within(*w.until)) return false;
    if (within(w.from)) return true;
  }
  return std::nullopt;
}

// Leads outside the spec's follower windows; a window's `from` is inside it,
// its `until` outside. Reads the simulated time the loop sets.
class SimulatedLeadership : public Leadership {
 public:
  SimulatedLeadership(const SimulationSpec& spec, const TimePoint& now) : spec_(spec), now_(now) {}
  bool IsLeader() const override {
    for (const PauseWindow& w : spec_.follower) {
      const TimePoint from = spec_.start + w.from;
      if (from <= now_ && (!w.until || now_ < spec_.start + *w.until)) return false;
    }
    return true;
  }
  std::string WhyNotLeader() const override {
    return "another controller leads (simulated follower window)";
  }
  bool ConfirmLeadership() override { return IsLeader(); }

 private:
  const SimulationSpec& spec_;
  const TimePoint& now_;
};

std::string FormatValue(const std::optional<double>& v) {
  return v ? fmt::format("{:.4g}", *v) : std::string("missing");
}

void CollectSourceNames(const YAML::Node& node, std::set<std::string>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      if (kv.first.IsScalar() && kv.first.Scalar() == "metric" && kv.second.IsScalar() &&
          kv.second.Scalar().starts_with("source:") && kv.second.Scalar().size() > 7) {
        out.insert(kv.second.Scalar().substr(7));
      }
      // forecast: {source: NAME}
      if (kv.first.IsScalar() && kv.first.Scalar() == "forecast" && kv.second.IsMap() &&
          kv.second["source"].IsScalar())
        out.insert(kv.second["source"].Scalar());
      CollectSourceNames(kv.second, out);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) CollectSourceNames(item, out);
  }
}

}  // namespace

RuleSet LoadRulesForSimulation(const std::vector<std::string>& globs, const std::string& base_dir,
                               Duration default_interval, Diagnostics& diags) {
  std::set<std::string> sources;
  for (const std::string& pattern : globs) {
    std::filesystem::path full(pattern);
    if (full.is_relative()) full = std::filesystem::path(base_dir) / full;
    glob_t matches{};
    if (glob(full.string().c_str(), GLOB_ERR, nullptr, &matches) == 0) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) {
        Diagnostics ignored;  // LoadRuleFiles reports syntax errors below
        if (auto root = LoadYamlFile(matches.gl_pathv[i], ignored))
          CollectSourceNames(*root, sources);
      }
    }
    globfree(&matches);
  }
  return LoadRuleFiles(globs, base_dir, sources, default_interval, diags);
}

std::optional<std::vector<std::optional<double>>> ParseSeriesValues(std::string_view text,
                                                                    std::string* error) {
  std::vector<std::optional<double>> out;
  std::string err;
  std::istringstream in{std::string(text)};
  std::string tok;
  while (in >> tok) {
    if (!ExpandToken(tok, out, err)) {
      if (error) *error = err;
      return std::nullopt;
    }
  }
  if (out.empty()) {
    if (error) *error = "empty series";
    return std::nullopt;
  }
  return out;
}

const char* HookOutcomeName(HookOutcome o) {
  switch (o) {
    case HookOutcome::kOk:
      return "ok";
    case HookOutcome::kFail:
      return "fail";
    case HookOutcome::kTimeout:
      return "timeout";
  }
  return "?";
}

std::optional<HookOutcome> ParseHookOutcome(std::string_view text) {
  for (HookOutcome o : {HookOutcome::kOk, HookOutcome::kFail, HookOutcome::kTimeout})
    if (text == HookOutcomeName(o)) return o;
  return std::nullopt;
}

const HookModel& SimulatedHook::For(const std::string& member) const {
  auto it = members.find(member);
  return it == members.end() ? model : it->second;
}

std::string CheckHookModel(const GroupRule& rule, std::string_view which, const HookModel& model) {
  const bool before = which == "before_scale_down";
  if (!before && which != "after_scale_up")
    return fmt::format("unknown hook \"{}\" (before_scale_down, after_scale_up)", which);
  const std::optional<Hook>* hook = nullptr;
  if (rule.hooks) hook = before ? &rule.hooks->before_scale_down : &rule.hooks->after_scale_up;
  if (hook == nullptr || !hook->has_value())
    return fmt::format("group {} has no hooks.{} to model", rule.name, which);
  if (model.takes < Duration(0)) return "takes must not be negative";
  if (model.result != HookOutcome::kTimeout && model.takes >= (*hook)->timeout) {
    return fmt::format(
        "takes {} is not less than the hook's timeout {}: a run that long times out (result: "
        "timeout)",
        FormatDuration(model.takes), FormatDuration((*hook)->timeout));
  }
  return "";
}

Series::Series(std::vector<Point> points, Duration lookback)
    : points_(std::move(points)), lookback_(lookback) {
  std::stable_sort(points_.begin(), points_.end(),
                   [](const Point& a, const Point& b) { return a.time < b.time; });
}

Series Series::FromValues(TimePoint start, Duration step,
                          const std::vector<std::optional<double>>& values) {
  std::vector<Point> points;
  points.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    points.push_back({start + step * static_cast<int64_t>(i), values[i]});
  return Series(std::move(points), step);
}

std::optional<double> Series::At(TimePoint t) const {
  auto it = std::upper_bound(points_.begin(), points_.end(), t,
                             [](TimePoint v, const Point& p) { return v < p.time; });
  if (it == points_.begin()) return std::nullopt;
  --it;
  if (t - it->time >= lookback_) return std::nullopt;
  return it->value;
}

const SimulationStep* SimulationResult::At(TimePoint t) const {
  auto it = std::upper_bound(steps.begin(), steps.end(), t,
                             [](TimePoint v, const SimulationStep& s) { return v < s.time; });
  if (it == steps.begin()) return nullptr;
  return &*std::prev(it);
}

SimulationResult RunSimulation(const SimulationSpec& spec) {
  World world;
  world.group = spec.rule.name;
  world.template_path = spec.rule.template_path;
  const int64_t start_unix = UnixSeconds(spec.start);
  const int64_t initial = spec.initial_running + spec.initial_stopped;
  for (int64_t i = 0; i < initial; ++i) {
    // Older members first (the newest initial member is the first to go on
    // scale-down), created days before the window so no cooldown runs from them.
    world.domains.push_back({world.NewName(), i < spec.initial_running,
                             start_unix - 86400 * (initial - i), std::nullopt});
  }

  std::atomic<int64_t> now_unix{start_unix};
  TimePoint now = spec.start;
  std::optional<Decision> last;
  SimActuator actuator(world, now_unix);
  SimHooks hooks;
  hooks.now = hooks.wake = spec.start;
  EngineOptions options;
  options.dry_run = spec.dry_run;
  SimulatedLeadership leadership(spec, now);
  if (!spec.follower.empty()) options.leadership = &leadership;
  // Enough records that a decision whose hooks take long is still in the log
  // when it finishes (on_change_finished reports it from there).
  options.change_history = 16;
  options.evaluation_history = 1;
  // The simulated time drives both clocks: nothing in a simulation steps the wall clock.
  FakeClock clock;
  auto instant = [](TimePoint t) {
    return Instant{MonoTime(std::chrono::duration_cast<MonoTime::duration>(t.time_since_epoch())),
                   t};
  };
  options.clock = &clock;
  options.operations_per_job = 1;  // one operation (and hook) at a time, in the decision's order
  options.on_decision = [&last](const Decision& d) { last = d; };
  options.on_change_finished = [&hooks](const Decision& d) {
    std::lock_guard lock(hooks.mu);
    hooks.finished.push_back(d);
  };
  options.hook_runner = [&spec, &hooks](const char* which, const Hook& hook,
                                        const PlaceholderValues& values, Canceller*) {
    return hooks.Run(spec, which, hook, values);
  };
  // Rounds run while the loop below waits in WaitIdle, so reading `now` is ordered.
  options.health_probe = [&spec, &now](const HealthPolicy& policy, const MemberProbeInput& in,
                                       ProbeCanceller*) {
    ProbeResult r{ProbeStatus::kPass, "simulated pass"};
    if (auto it = spec.health.find(in.domain); it != spec.health.end()) {
      const std::optional<double> v = it->second.At(now);
      r = !v       ? ProbeResult{ProbeStatus::kUnknown, "no simulated result at this time"}
          : *v > 0 ? ProbeResult{ProbeStatus::kPass, "simulated pass"}
                   : ProbeResult{ProbeStatus::kFail, "simulated failure"};
    }
    return std::vector<ProbeResult>(policy.checks.size(), r);
  };

  SimulationResult result;
  auto count_finished = [&result](const Decision& d) {
    int64_t ok = 0;
    for (const ActionRecord& a : d.actions) ok += a.result == ActionResult::kOk ? 1 : 0;
    (d.direction == Direction::kUp ? result.members_added : result.members_removed) += ok;
  };
  {
    Engine engine(actuator, options);
    RuleSet rules;
    rules.groups.push_back(spec.rule);
    engine.SetRules(std::move(rules));
    // Waits until the engine is idle, or every job it still has waits in a
    // hook that ends at a later step.
    auto settle = [&] {
      while (true) {
        const size_t jobs = engine.ActiveJobs();
        if (jobs == 0) {
          engine.WaitIdle();
          return;
        }
        std::unique_lock lock(hooks.mu);
        if (hooks.Parked() >= jobs) break;
        // A job that finishes does not signal here: look again shortly.
        hooks.cv.wait_for(lock, std::chrono::milliseconds(1));
      }
      engine.WaitHealthIdle();
    };
    const Duration step = spec.step > Duration(0) ? spec.step : std::chrono::seconds(10);
    uint64_t seq = 0;
    SimulatedHistory history;
    // Target tracking on a source: the demand the group's size is judged against.
    const Series* demand = nullptr;
    if (spec.rule.target && spec.rule.target->metric.kind == MetricKind::kSource) {
      if (auto found = spec.sources.find(spec.rule.target->metric.source);
          found != spec.sources.end()) {
        demand = &found->second;
        result.under_provisioned = Duration(0);
      }
    }
    for (now = spec.start; now <= spec.end; now += step) {
      now_unix = UnixSeconds(now);
      clock.Set(instant(now));
      {
        std::lock_guard lock(hooks.mu);
        hooks.now = now;
      }
      SnapshotPtr snap = TakeSnapshot(world, spec, now, ++seq);
      SimulationStep s;
      s.time = now;
      s.running_before = world.Running();
      if (std::optional<bool> paused = PauseEdge(spec, now, step)) {
        last.reset();
        engine.SetPaused(spec.rule.name, *paused);
        s.lifecycle = std::move(last);
        snap = TakeSnapshot(world, spec, now, ++seq);  // with the stored pause
      }
      last.reset();
      engine.Tick(snap, ReadSources(spec, now, history), instant(now));
      // Hooks that end by now return after the tick saw their action in flight.
      {
        std::lock_guard lock(hooks.mu);
        hooks.wake = now;
      }
      hooks.cv.notify_all();
      settle();
      s.running = world.Running();
      s.stopped = world.Stopped();
      if (demand) {
        if (const std::optional<double> v = demand->At(now)) {
          const double needed = std::ceil(*v / spec.rule.target->per_member_target - 1e-9);
          // Judged by the members that ran when the load arrived: a reaction in
          // this tick comes after it.
          if (static_cast<double>(s.running_before) < needed) *result.under_provisioned += step;
        }
      }
      {
        std::lock_guard lock(hooks.mu);
        s.finished = std::move(hooks.finished);
        hooks.finished.clear();
        s.hooks = std::move(hooks.ended);
        hooks.ended.clear();
        for (const SimHooks::Running& r : hooks.running)
          s.running_hooks.emplace_back(r.which, r.domain);
      }
      for (const Decision& f : s.finished) {
        count_finished(f);
        // This step's own decision finished in it: show its results.
        if (last && last->time == f.time) {
          last->actions = f.actions;
          last->result = f.result;
        }
      }
      if (last) {
        const Decision& d = *last;
        if (!d.actions.empty()) {
          (d.direction == Direction::kUp ? result.scale_ups : result.scale_downs) += 1;
          if (d.result == DecisionResult::kDryRun) {
            (d.direction == Direction::kUp ? result.members_added : result.members_removed) +=
                static_cast<int64_t>(d.actions.size());
          }
        }
        s.decision = std::move(last);
      }
      result.steps.push_back(std::move(s));
    }
    // Hooks still running at the end return cancelled, so the engine stops.
    {
      std::lock_guard lock(hooks.mu);
      hooks.released = true;
    }
    hooks.cv.notify_all();
  }
  if (!result.steps.empty()) {
    for (HookEvent& ev : hooks.ended)
      if (!ev.finished) result.steps.back().hooks.push_back(std::move(ev));
  }
  return result;
}

std::string FormatOffset(TimePoint t, TimePoint start) {
  const auto d = std::chrono::duration_cast<Duration>(t - start);
  if (d < Duration(0)) return "-" + FormatDuration(-d);
  return "+" + FormatDuration(d);
}

std::string FormatTimeline(const SimulationResult& result, const SimulationSpec& spec,
                           bool absolute_times) {
  std::string out;
  auto stamp = [&](TimePoint t) {
    return absolute_times ? fmt::format("{} {:>9}", FormatTime(t), FormatOffset(t, spec.start))
                          : fmt::format("{:>9}", FormatOffset(t, spec.start));
  };
  std::map<std::pair<int, size_t>, ConditionState> prev;
  HeldBy prev_held = HeldBy::kNone;
  std::optional<int64_t> prev_forecast;  // members; a change prints a line
  bool prev_forecast_seen = false;
  std::map<std::string, std::string> prev_failing;  // member -> "failing: check: output"
  int64_t evaluations = 0;
  std::map<std::string, int64_t> holds;
  int64_t lo = INT64_MAX;
  int64_t hi = INT64_MIN;
  auto print_decision = [&](const SimulationStep& s) {
    const Decision& d = *s.decision;
    ++evaluations;
    const std::string at = stamp(s.time);
    std::map<std::string, std::string> failing(d.health_failures.begin(), d.health_failures.end());
    for (const auto& [member, why] : failing)
      if (prev_failing[member] != why) out += fmt::format("{}  {} {}\n", at, member, why);
    auto present = [&d](const std::string& member) {
      return std::any_of(d.member_states.begin(), d.member_states.end(),
                         [&](const auto& ms) { return ms.first == member; });
    };
    for (const auto& [member, why] : prev_failing)
      if (!failing.count(member) && present(member))
        out += fmt::format("{}  {} passes its checks again\n", at, member);
    prev_failing = std::move(failing);
    if (d.forecast && (d.forecast->members != prev_forecast || !prev_forecast_seen)) {
      const ForecastReport& f = *d.forecast;
      if (f.members) {
        out +=
            fmt::format("{}  forecast ({}): {} members for the next {}: {}\n", at,
                        ForecastModeName(f.mode), *f.members, FormatDuration(f.horizon), f.model);
      } else {
        out += fmt::format("{}  forecast ({}): unavailable: {}\n", at, ForecastModeName(f.mode),
                           f.unavailable);
      }
      prev_forecast = f.members;
      prev_forecast_seen = true;
    }
    for (const ConditionReport& c : d.conditions) {
      const auto key = std::make_pair(static_cast<int>(c.direction), c.index);
      const ConditionState before = prev.count(key) ? prev[key] : ConditionState::kInactive;
      if (c.state != before) {
        const std::string name =
            fmt::format("{}[{}] {}", DirectionName(c.direction), c.index, c.description);
        if (c.state == ConditionState::kInactive) {
          out += fmt::format("{}  {}: {} ({})\n", at, name, c.missing ? "missing" : "resolved",
                             FormatValue(c.value));
        } else {
          out += fmt::format("{}  {}: {} (value {}, true for {})\n", at, name,
                             ConditionStateName(c.state), FormatValue(c.value),
                             FormatDuration(c.held_for));
        }
      }
      prev[key] = c.state;
    }
    if (!d.actions.empty()) {
      std::string ops;
      for (const ActionRecord& a : d.actions) {
        if (!ops.empty()) ops += ", ";
        const std::string& domain = a.domain.empty() ? a.operation.domain : a.domain;
        ops += fmt::format("{} {} {}", OperationKindName(a.operation.kind),
                           domain.empty() ? "(new)" : domain, ActionResultName(a.result));
      }
      out += fmt::format("{}  scale_{} {} -> {}: {}\n{}      because {}\n", at,
                         d.direction ? DirectionName(*d.direction) : "?", d.active, d.desired, ops,
                         std::string(at.size(), ' '), d.reason);
    }
    if (d.held_by != HeldBy::kNone) ++holds[HeldByName(d.held_by)];
    if (d.held_by != prev_held && d.held_by != HeldBy::kNone && d.held_by != HeldBy::kDryRun) {
      out += fmt::format("{}  held ({}): {}\n", at, HeldByName(d.held_by), d.reason);
    }
    prev_held = d.held_by;
  };
  for (const SimulationStep& s : result.steps) {
    lo = std::min({lo, s.running, s.running_before});
    hi = std::max({hi, s.running, s.running_before});
    if (s.lifecycle) {
      out += fmt::format("{}  {}: {}\n", stamp(s.time), OutcomeName(s.lifecycle->outcome),
                         s.lifecycle->reason);
    }
    if (s.decision) print_decision(s);
    const std::string at = stamp(s.time);
    for (const HookEvent& h : s.hooks) {
      const std::string took =
          FormatDuration(std::chrono::duration_cast<Duration>(h.ended - h.started));
      if (!h.finished) {
        out += fmt::format("{}  hook {} {} still running at the end (started {})\n", at, h.which,
                           h.domain, FormatOffset(h.started, spec.start));
      } else if (h.result == HookOutcome::kOk) {
        out += fmt::format("{}  hook {} {} ok after {}\n", at, h.which, h.domain, took);
      } else {
        const bool before = h.which == "before_scale_down";
        const char* consequence = before
                                      ? (h.proceed ? "member removed anyway (on_failure: continue)"
                                                   : "member kept (on_failure: abandon)")
                                      : (h.proceed ? "member kept (on_failure: continue)"
                                                   : "member removed again (on_failure: abandon)");
        out += fmt::format("{}  hook {} {} failed after {} ({}): {}\n", at, h.which, h.domain, took,
                           h.outcome, consequence);
      }
    }
    for (const Decision& f : s.finished) {
      if (f.time == s.time) continue;  // this step's own decision: its line has the results
      std::string ops;
      for (const ActionRecord& a : f.actions) {
        if (!ops.empty()) ops += "; ";
        const std::string& domain = a.domain.empty() ? a.operation.domain : a.domain;
        ops += fmt::format("{} {} {}", OperationKindName(a.operation.kind),
                           domain.empty() ? "(new)" : domain, ActionResultName(a.result));
        const std::string& why = a.error.empty() ? a.detail : a.error;
        if (!why.empty()) ops += " (" + why + ")";
      }
      out += fmt::format("{}  scale_{} of {} finished: {}\n", at,
                         f.direction ? DirectionName(*f.direction) : "?",
                         FormatOffset(f.time, spec.start), ops);
    }
  }
  const int64_t final_running = result.steps.empty() ? 0 : result.steps.back().running;
  out += fmt::format(
      "summary: {} evaluations, {} scale-ups (+{} members), {} scale-downs (-{} members), "
      "running {}..{}, final {}",
      evaluations, result.scale_ups, result.members_added, result.scale_downs,
      result.members_removed, result.steps.empty() ? 0 : lo, result.steps.empty() ? 0 : hi,
      final_running);
  if (!holds.empty()) {
    std::string h;
    for (const auto& [name, n] : holds) h += fmt::format("{}{} {}", h.empty() ? "" : ", ", name, n);
    out += "; held evaluations: " + h;
  }
  out += "\n";
  if (result.under_provisioned) {
    out += fmt::format(
        "under-provisioned: {} ({} minutes) with fewer running members than {}\n",
        FormatDuration(*result.under_provisioned),
        std::chrono::duration_cast<std::chrono::minutes>(*result.under_provisioned).count(),
        spec.rule.target->Describe());
  }
  return out;
}

}  // namespace virtscale::autoscale
