#include "agent/test_rules_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "autoscale/simulation.h"
#include "common/log.h"
#include "common/rfc3339.h"
#include "common/utf8.h"
#include "common/yaml_reader.h"

namespace virtscale {
namespace {

using autoscale::ConditionState;
using autoscale::Decision;
using autoscale::Direction;
using autoscale::MetricKind;
using autoscale::Operation;
using autoscale::SimulationSpec;
using autoscale::TimePoint;

bool IsHeldByName(const std::string& s) {
  if (s == "none") return true;  // HeldByName(kNone) is ""
  for (int i = 0; i < autoscale::kHeldByCount; ++i)
    if (s == autoscale::HeldByName(static_cast<autoscale::HeldBy>(i))) return true;
  return false;
}
constexpr const char* kOutcomeNames[] = {"none", "scale_up", "scale_down",
                                         "held", "paused",   "resumed"};

struct ExpectedAction {
  std::optional<Direction> direction;
  std::optional<Operation::Kind> kind;
  std::optional<std::string> domain;
  std::optional<autoscale::ActionResult> result;
  int64_t count = 1;
  std::string ToString() const {
    std::string s;
    if (direction) s += DirectionName(*direction);
    if (kind) s += std::string(s.empty() ? "" : " ") + OperationKindName(*kind);
    if (domain) s += std::string(s.empty() ? "" : " ") + *domain;
    if (result) s += std::string(s.empty() ? "" : " ") + ActionResultName(*result);
    if (s.empty()) s = "any";
    return fmt::format("{} x{}", s, count);
  }
};

struct Expectation {
  int line = 0;
  Duration at{0};
  std::optional<int64_t> members;
  std::optional<int64_t> stopped;
  std::optional<std::vector<ExpectedAction>> actions;
  std::optional<std::vector<ExpectedAction>> finished;  // actions that finished in the step
  std::optional<std::vector<std::string>> draining;     // members in a before_scale_down hook
  std::optional<std::string> held_by;
  std::optional<std::string> outcome;
  std::optional<std::vector<std::string>> pending;
  std::optional<std::vector<std::string>> firing;
  std::optional<std::vector<std::string>> unhealthy;  // members in state unhealthy
  std::optional<int64_t> min;  // the bounds in force (a schedule window's, or the group's)
  std::optional<int64_t> max;
  std::optional<std::string> schedule;      // cron of the window in force, or "none"
  std::optional<int64_t> forecast_members;  // the decision's forecast (forecast:)
};

struct RuleTest {
  std::string name;
  int line = 0;
  std::string group;
  SimulationSpec spec;  // all but the rule and end
  // Hook models to check against the group once the rules are loaded.
  struct HookAt {
    std::string path;  // "tests[0].hooks.before_scale_down"
    int line = 0;
    std::string which;
    autoscale::HookModel model;
  };
  std::vector<HookAt> hooks;
  std::optional<Duration> duration;
  std::vector<Expectation> expect;
};

struct TestFile {
  autoscale::RuleSet rules;
  Duration evaluation_interval{std::chrono::seconds(10)};
  std::vector<RuleTest> tests;
};

bool ParseSeries(MapReader& r, const char* key, Duration step, autoscale::Series& out) {
  std::string text;
  if (!r.Require(key) || !r.Read(key, text)) return false;
  std::string error;
  auto values = autoscale::ParseSeriesValues(text, &error);
  if (!values) {
    r.Error(key, error);
    return false;
  }
  out = autoscale::Series::FromValues(TimePoint{}, step, *values);
  return true;
}

std::optional<std::vector<std::string>> ReadIdList(MapReader& r, const char* key) {
  std::vector<std::string> ids;
  if (!r.Has(key)) return std::nullopt;
  YAML::Node node = r.Get(key);
  if (node.IsSequence() && node.size() == 0) return ids;
  if (!r.ReadStringList(key, ids)) return std::nullopt;
  std::sort(ids.begin(), ids.end());
  return ids;
}

// `key`: a list of {direction, kind, domain, result, count}.
std::optional<std::vector<ExpectedAction>> ReadActions(MapReader& r, const char* key,
                                                       const std::string& path,
                                                       Diagnostics& diags) {
  if (!r.Has(key)) return std::nullopt;
  YAML::Node list = r.Get(key);
  if (!list.IsSequence()) {
    r.Error(key, "expected a list of {direction, kind, domain, result, count}");
    return std::nullopt;
  }
  std::vector<ExpectedAction> out;
  std::string s;
  for (size_t i = 0; i < list.size(); ++i) {
    MapReader a(list[i], fmt::format("{}.{}[{}]", path, key, i), diags);
    if (!a.valid()) continue;
    ExpectedAction x;
    if (a.Read("direction", s)) {
      if (s == "up" || s == "down") {
        x.direction = s == "up" ? Direction::kUp : Direction::kDown;
      } else {
        a.Error("direction", "expected up or down");
      }
    }
    if (a.Read("kind", s)) {
      bool found = false;
      for (auto k : {Operation::Kind::kStart, Operation::Kind::kCreate, Operation::Kind::kStop,
                     Operation::Kind::kDelete}) {
        if (s == OperationKindName(k)) {
          x.kind = k;
          found = true;
        }
      }
      if (!found) a.Error("kind", "expected start, create, stop or delete");
    }
    if (a.Read("domain", s)) x.domain = s;
    if (a.Read("result", s)) {
      for (auto res : {autoscale::ActionResult::kPending, autoscale::ActionResult::kOk,
                       autoscale::ActionResult::kError, autoscale::ActionResult::kDryRun,
                       autoscale::ActionResult::kCancelled}) {
        if (s == ActionResultName(res)) x.result = res;
      }
      if (!x.result) a.Error("result", "expected ok, error, pending, dry_run or cancelled");
    }
    if (a.Read("count", x.count) && x.count < 1) a.Error("count", "must be at least 1");
    a.Finish();
    out.push_back(x);
  }
  return out;
}

void DecodeExpectation(const YAML::Node& node, const std::string& path, Duration eval,
                       std::vector<Expectation>& out, Diagnostics& diags) {
  MapReader r(node, path, diags);
  if (!r.valid()) return;
  Expectation e;
  e.line = LineOf(node);
  if (r.Require("at") && r.ReadDuration("at", e.at) && e.at.count() % eval.count() != 0) {
    r.Error("at",
            fmt::format("must be a multiple of evaluation_interval {}", FormatDuration(eval)));
  }
  int64_t n = 0;
  if (r.Read("members", n)) e.members = n;
  if (r.Read("stopped", n)) e.stopped = n;
  if (r.Read("min", n)) e.min = n;
  if (r.Read("max", n)) e.max = n;
  std::vector<std::string> names;
  if (r.ReadStringList("unhealthy", names)) e.unhealthy = names;
  std::string s;
  if (r.Read("held_by", s)) {
    if (!IsHeldByName(s))
      r.Error("held_by", "unknown hold \"" + s + "\" (cooldown, bound_max, missing_data, ...)");
    e.held_by = s;
  }
  if (r.Read("outcome", s)) {
    if (std::find(std::begin(kOutcomeNames), std::end(kOutcomeNames), s) == std::end(kOutcomeNames))
      r.Error("outcome", "expected none, scale_up, scale_down or held");
    e.outcome = s;
  }
  if (r.Read("schedule", s)) e.schedule = s;
  if (r.Read("forecast_members", n)) e.forecast_members = n;
  e.pending = ReadIdList(r, "pending");
  e.firing = ReadIdList(r, "firing");
  e.actions = ReadActions(r, "actions", path, diags);
  e.finished = ReadActions(r, "finished", path, diags);
  e.draining = ReadIdList(r, "draining");
  r.Finish();
  out.push_back(std::move(e));
}

// `KEY: [{from, until}, ...]`: offsets from the test's start; `until` optional
// (to the end). Used for `pauses` and `follower`.
void ReadWindows(MapReader& r, const char* key, const std::string& path, Diagnostics& diags,
                 std::vector<autoscale::PauseWindow>& out) {
  YAML::Node list = r.Get(key);
  if (list.IsDefined() && !list.IsNull() && !list.IsSequence()) {
    r.Error(key, "expected a list of {from, until}");
    return;
  }
  if (!list.IsSequence()) return;
  for (size_t i = 0; i < list.size(); ++i) {
    MapReader m(list[i], fmt::format("{}.{}[{}]", path, key, i), diags);
    if (!m.valid()) continue;
    autoscale::PauseWindow w;
    Duration until{0};
    if (m.Require("from") && m.ReadDuration("from", w.from) && w.from < Duration(0))
      m.Error("from", "must not be negative");
    if (m.ReadDuration("until", until)) {
      if (until <= w.from) m.Error("until", "must be after `from`");
      w.until = until;
    }
    out.push_back(w);
    m.Finish();
  }
}

void DecodeTest(const YAML::Node& node, const std::string& path, Duration eval,
                std::vector<RuleTest>& out, Diagnostics& diags) {
  MapReader r(node, path, diags);
  if (!r.valid()) return;
  RuleTest t;
  t.line = LineOf(node);
  r.Read("name", t.name);
  if (t.name.empty()) t.name = path;
  r.Read("group", t.group);
  Duration step = eval;
  if (r.ReadDuration("interval", step) && step <= Duration(0)) {
    r.Error("interval", "must be positive");
    step = eval;
  }
  Duration duration{0};
  if (r.ReadDuration("duration", duration)) t.duration = duration;
  int64_t n = 0;
  if (r.Read("initial_members", n)) {
    if (n < 0) r.Error("initial_members", "must not be negative");
    t.spec.initial_running = std::max<int64_t>(n, 0);
  }
  if (r.Read("stopped_members", n)) {
    if (n < 0) r.Error("stopped_members", "must not be negative");
    t.spec.initial_stopped = std::max<int64_t>(n, 0);
  }
  r.Read("dry_run", t.spec.dry_run);
  // The wall clock of the run starts here (default the Unix epoch), so schedules can be tested.
  std::string start_time;
  if (r.Read("start_time", start_time)) {
    if (std::optional<TimePoint> start = ParseRfc3339(start_time)) {
      t.spec.start = *start;
    } else {
      r.Error("start_time", fmt::format("expected an RFC 3339 time such as 2026-03-29T00:00:00Z, "
                                        "got \"{}\"",
                                        BoundedUtf8(start_time, 80)));
    }
  }
  t.spec.step = eval;
  std::vector<std::string> protected_members;
  if (r.ReadStringList("protected_members", protected_members))
    t.spec.protected_members.insert(protected_members.begin(), protected_members.end());
  ReadWindows(r, "pauses", path, diags, t.spec.pauses);
  ReadWindows(r, "follower", path, diags, t.spec.follower);

  YAML::Node hooks = r.Get("hooks");
  if (hooks.IsDefined() && !hooks.IsNull() && !hooks.IsMap()) {
    r.Error("hooks", "expected a mapping {before_scale_down, after_scale_up}");
  } else if (hooks.IsMap()) {
    MapReader h(hooks, path + ".hooks", diags);
    for (const char* which : {"before_scale_down", "after_scale_up"}) {
      if (!h.Has(which)) continue;
      const std::string hpath = h.PathOf(which);
      YAML::Node node = h.Get(which);
      MapReader m(node, hpath, diags);
      if (!m.valid()) continue;
      autoscale::SimulatedHook sim;
      auto decode_model = [&](MapReader& mr, const std::string& mpath, int line,
                              autoscale::HookModel& model) {
        std::string result;
        if (mr.Read("result", result)) {
          if (auto o = autoscale::ParseHookOutcome(result)) {
            model.result = *o;
          } else {
            mr.Error("result", "expected ok, fail or timeout, got \"" + result + "\"");
          }
        }
        if (mr.ReadDuration("takes", model.takes) &&
            model.result == autoscale::HookOutcome::kTimeout) {
          mr.Error("takes",
                   "not with result: timeout (a run that times out takes the hook's timeout)");
        }
        t.hooks.push_back({mpath, line, which, model});
      };
      decode_model(m, hpath, LineOf(node), sim.model);
      YAML::Node per_member = m.Get("members");
      if (per_member.IsDefined() && !per_member.IsNull() && !per_member.IsMap()) {
        m.Error("members", "expected a mapping of member name to {takes, result}");
      } else if (per_member.IsMap()) {
        for (const auto& kv : per_member) {
          const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
          const std::string mpath = hpath + ".members." + name;
          if (name.empty()) {
            diags.Add(diags.file(), LineOf(kv.first), mpath + ": expected a member name");
            continue;
          }
          MapReader mm(kv.second, mpath, diags);
          if (!mm.valid()) continue;
          autoscale::HookModel model;
          decode_model(mm, mpath, LineOf(kv.second), model);
          sim.members[name] = model;
          mm.Finish();
        }
      }
      m.Finish();
      (std::string_view(which) == "before_scale_down" ? t.spec.before_scale_down
                                                      : t.spec.after_scale_up) = std::move(sim);
    }
    h.Finish();
  }

  YAML::Node members = r.Get("members_series");
  if (members.IsDefined() && !members.IsNull() && !members.IsSequence()) {
    r.Error("members_series", "expected a list of {metric, values}");
  } else if (members.IsSequence()) {
    for (size_t i = 0; i < members.size(); ++i) {
      MapReader m(members[i], fmt::format("{}.members_series[{}]", path, i), diags);
      if (!m.valid()) continue;
      autoscale::MemberInput in;
      std::string metric;
      if (m.Require("metric") && m.Read("metric", metric)) {
        if (metric == "cpu" || metric == "memory") {
          in.kind = metric == "cpu" ? MetricKind::kCpu : MetricKind::kMemory;
        } else {
          m.Error("metric", "expected cpu or memory (sources go under `sources`)");
        }
      }
      m.Read("member", in.member);
      m.Read("shared", in.shared);
      if (ParseSeries(m, "values", step, in.series)) t.spec.member_inputs.push_back(std::move(in));
      m.Finish();
    }
  }
  YAML::Node health = r.Get("health_series");
  if (health.IsDefined() && !health.IsNull() && !health.IsSequence()) {
    r.Error("health_series", "expected a list of {member, values}");
  } else if (health.IsSequence()) {
    for (size_t i = 0; i < health.size(); ++i) {
      MapReader m(health[i], fmt::format("{}.health_series[{}]", path, i), diags);
      if (!m.valid()) continue;
      std::string member;
      autoscale::Series series;
      if (m.Require("member") && m.Read("member", member) && ParseSeries(m, "values", step, series))
        t.spec.health[member] = std::move(series);
      m.Finish();
    }
  }
  YAML::Node sources = r.Get("sources");
  if (sources.IsDefined() && !sources.IsNull() && !sources.IsSequence()) {
    r.Error("sources", "expected a list of {source, values}");
  } else if (sources.IsSequence()) {
    for (size_t i = 0; i < sources.size(); ++i) {
      MapReader m(sources[i], fmt::format("{}.sources[{}]", path, i), diags);
      if (!m.valid()) continue;
      std::string name;
      autoscale::Series series;
      if (m.Require("source") && m.Read("source", name) && ParseSeries(m, "values", step, series))
        t.spec.sources[name] = std::move(series);
      m.Finish();
    }
  }
  YAML::Node expect = r.Get("expect");
  if (!expect.IsSequence() || expect.size() == 0) {
    r.Error("expect", "expected a non-empty list of expectations");
  } else {
    for (size_t i = 0; i < expect.size(); ++i)
      DecodeExpectation(expect[i], fmt::format("{}.expect[{}]", path, i), eval, t.expect, diags);
  }
  r.Finish();
  out.push_back(std::move(t));
}

std::optional<TestFile> LoadTestFile(const std::string& file, Diagnostics& diags) {
  diags.set_file(file);
  auto root = LoadYamlFile(file, diags);
  if (!root) return std::nullopt;
  TestFile tf;
  MapReader r(*root, "", diags);
  if (!r.valid()) return std::nullopt;
  std::vector<std::string> rule_files;
  if (r.Require("rule_files")) r.ReadStringList("rule_files", rule_files);
  if (r.ReadDuration("evaluation_interval", tf.evaluation_interval) &&
      tf.evaluation_interval <= Duration(0)) {
    r.Error("evaluation_interval", "must be positive");
    tf.evaluation_interval = std::chrono::seconds(10);
  }
  YAML::Node tests = r.Get("tests");
  if (!tests.IsSequence() || tests.size() == 0) {
    r.Error("tests", "expected a non-empty list of tests");
  } else {
    for (size_t i = 0; i < tests.size(); ++i)
      DecodeTest(tests[i], fmt::format("tests[{}]", i), tf.evaluation_interval, tf.tests, diags);
  }
  r.Finish();
  if (!diags.ok()) return std::nullopt;

  const std::string dir = std::filesystem::path(file).parent_path().string();
  tf.rules = autoscale::LoadRulesForSimulation(rule_files, dir.empty() ? "." : dir,
                                               tf.evaluation_interval, diags);
  diags.set_file(file);
  for (RuleTest& t : tf.tests) {
    if (t.group.empty() && tf.rules.groups.size() == 1) t.group = tf.rules.groups[0].name;
    const bool found = std::any_of(tf.rules.groups.begin(), tf.rules.groups.end(),
                                   [&](const auto& g) { return g.name == t.group; });
    if (!found && diags.ok()) {
      diags.Add(
          file, t.line,
          t.group.empty()
              ? fmt::format("test \"{}\": `group` is required (the rule files define {} "
                            "groups)",
                            t.name, tf.rules.groups.size())
              : fmt::format("test \"{}\": no group \"{}\" in the rule files", t.name, t.group));
    }
  }
  for (const RuleTest& t : tf.tests) {
    auto group = std::find_if(tf.rules.groups.begin(), tf.rules.groups.end(),
                              [&](const auto& g) { return g.name == t.group; });
    if (group == tf.rules.groups.end()) continue;
    for (const RuleTest::HookAt& h : t.hooks) {
      const std::string error = autoscale::CheckHookModel(*group, h.which, h.model);
      if (!error.empty()) diags.Add(file, h.line, h.path + ": " + error);
    }
  }
  if (!diags.ok()) return std::nullopt;
  return tf;
}

std::vector<std::string> ConditionIds(const Decision& d, ConditionState state) {
  std::vector<std::string> ids;
  for (const auto& c : d.conditions)
    if (c.state == state) ids.push_back(fmt::format("{}[{}]", DirectionName(c.direction), c.index));
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string ListString(const std::vector<std::string>& v) {
  return "[" + fmt::format("{}", fmt::join(v, ", ")) + "]";
}

// Compares one expectation; returns the mismatch lines (empty when it holds).
std::vector<std::string> Check(const Expectation& e, const autoscale::SimulationResult& result,
                               TimePoint at) {
  std::vector<std::string> diff;
  const autoscale::SimulationStep* step = result.At(at);
  if (step == nullptr) return {"no sample at this time"};
  const Decision* d = step->decision ? &*step->decision : nullptr;
  auto mismatch = [&](const char* what, const std::string& want, const std::string& got) {
    if (want != got) diff.push_back(fmt::format("{}: expected {}, got {}", what, want, got));
  };
  if (e.members) mismatch("members", std::to_string(*e.members), std::to_string(step->running));
  if (e.stopped) mismatch("stopped", std::to_string(*e.stopped), std::to_string(step->stopped));
  if (e.held_by) {
    mismatch("held_by", *e.held_by,
             d == nullptr                             ? "(no evaluation at this time)"
             : d->held_by == autoscale::HeldBy::kNone ? "none"
                                                      : HeldByName(d->held_by));
  }
  if (e.outcome) {
    mismatch("outcome", *e.outcome,
             d == nullptr ? "(no evaluation at this time)" : OutcomeName(d->outcome));
  }
  if (e.min)
    mismatch("min", std::to_string(*e.min),
             d == nullptr ? "(no evaluation at this time)" : std::to_string(d->min));
  if (e.max)
    mismatch("max", std::to_string(*e.max),
             d == nullptr ? "(no evaluation at this time)" : std::to_string(d->max));
  if (e.schedule) {
    mismatch("schedule", *e.schedule,
             d == nullptr  ? "(no evaluation at this time)"
             : d->schedule ? d->schedule->cron
                           : "none");
  }
  if (e.forecast_members) {
    std::string got = "(no evaluation at this time)";
    if (d != nullptr && !d->forecast) got = "no forecast: (the group has no forecast:)";
    if (d != nullptr && d->forecast)
      got = d->forecast->members ? std::to_string(*d->forecast->members)
                                 : "unavailable: " + d->forecast->unavailable;
    mismatch("forecast_members", std::to_string(*e.forecast_members), got);
  }
  if (e.pending) {
    mismatch("pending", ListString(*e.pending),
             d ? ListString(ConditionIds(*d, ConditionState::kPending)) : "[]");
  }
  if (e.firing) {
    mismatch("firing", ListString(*e.firing),
             d ? ListString(ConditionIds(*d, ConditionState::kFiring)) : "[]");
  }
  if (e.unhealthy) {
    std::vector<std::string> got;
    if (d)
      for (const auto& [name, state] : d->member_states)
        if (state == autoscale::MemberState::kUnhealthy) got.push_back(name);
    std::vector<std::string> want = *e.unhealthy;
    std::sort(want.begin(), want.end());
    mismatch("unhealthy", ListString(want),
             d ? ListString(got) : std::string("(no evaluation at this time)"));
  }
  // Exactly `want` (each entry `count` times, and nothing else) among `got`.
  auto check_actions = [&](const char* what, const std::vector<ExpectedAction>& want,
                           const std::vector<const Decision*>& decisions) {
    struct Got {
      Direction direction;
      Operation::Kind kind;
      std::string domain;  // the domain acted on (the new name for kCreate)
      autoscale::ActionResult result;
    };
    std::vector<Got> got;
    for (const Decision* from : decisions) {
      for (const auto& a : from->actions)
        got.push_back({*from->direction, a.operation.kind,
                       a.domain.empty() ? a.operation.domain : a.domain, a.result});
    }
    bool ok = true;
    int64_t total = 0;
    for (const ExpectedAction& x : want) {
      total += x.count;
      const auto n = std::count_if(got.begin(), got.end(), [&](const Got& g) {
        return (!x.direction || g.direction == *x.direction) && (!x.kind || g.kind == *x.kind) &&
               (!x.domain || g.domain == *x.domain) && (!x.result || g.result == *x.result);
      });
      ok = ok && n == x.count;
    }
    ok = ok && total == static_cast<int64_t>(got.size());
    if (!ok) {
      std::vector<std::string> want_s;
      std::vector<std::string> got_s;
      for (const auto& x : want) want_s.push_back(x.ToString());
      // Results are shown when asked for (and always for finished actions).
      const bool results = std::string_view(what) == "finished" ||
                           std::any_of(want.begin(), want.end(), [](const ExpectedAction& x) {
                             return x.result.has_value();
                           });
      for (const Got& g : got) {
        got_s.push_back(fmt::format("{} {} {}{}", DirectionName(g.direction),
                                    OperationKindName(g.kind), g.domain,
                                    results ? std::string(" ") + ActionResultName(g.result) : ""));
      }
      diff.push_back(
          fmt::format("{}: expected {}, got {}", what, ListString(want_s), ListString(got_s)));
    }
  };
  if (e.actions) {
    std::vector<const Decision*> decisions;
    if (d != nullptr) decisions.push_back(d);
    check_actions("actions", *e.actions, decisions);
  }
  if (e.finished) {
    std::vector<const Decision*> decisions;
    for (const Decision& f : step->finished) decisions.push_back(&f);
    check_actions("finished", *e.finished, decisions);
  }
  if (e.draining) {
    std::vector<std::string> got;
    for (const auto& [which, member] : step->running_hooks)
      if (which == "before_scale_down") got.push_back(member);
    std::sort(got.begin(), got.end());
    mismatch("draining", ListString(*e.draining), ListString(got));
  }
  if (!diff.empty()) {
    if (d != nullptr) {
      diff.push_back(fmt::format("decision: {}{} (running {} -> {}): {}", OutcomeName(d->outcome),
                                 d->held_by == autoscale::HeldBy::kNone
                                     ? ""
                                     : fmt::format(" ({})", HeldByName(d->held_by)),
                                 step->running_before, step->running, d->reason));
    } else {
      diff.push_back("decision: none at this time (the group's interval had not elapsed)");
    }
  }
  return diff;
}

}  // namespace

int TestRulesCommand(const std::vector<std::string>& files, const TestRulesOptions& options,
                     std::ostream& out) {
  bool any_failed = false;
  bool any_invalid = false;
  for (const std::string& file : files) {
    out << "Unit Testing: " << file << "\n";
    Diagnostics diags(file);
    std::optional<TestFile> tf;
    try {
      tf = LoadTestFile(file, diags);
    } catch (const std::exception& e) {
      diags.Add(file, 0, std::string("cannot load: ") + e.what());
    }
    if (!tf) {
      for (const auto& d : diags.list()) out << d.ToString() << "\n";
      out << "  FAILED: invalid test file\n";
      any_invalid = true;
      continue;
    }
    int failed_tests = 0;
    for (RuleTest& t : tf->tests) {
      SimulationSpec spec = t.spec;
      for (const auto& g : tf->rules.groups)
        if (g.name == t.group) spec.rule = g;
      Duration end{0};
      for (const Expectation& e : t.expect) end = std::max(end, e.at);
      if (t.duration) end = std::max(end, *t.duration);
      spec.end = spec.start + end;
      const autoscale::SimulationResult result = autoscale::RunSimulation(spec);
      std::string report;
      for (const Expectation& e : t.expect) {
        const auto diff = Check(e, result, spec.start + e.at);
        if (diff.empty()) continue;
        report += fmt::format("    at {} ({}:{}):\n",
                              autoscale::FormatOffset(spec.start + e.at, spec.start), file, e.line);
        for (const auto& line : diff) report += "      " + line + "\n";
      }
      if (!report.empty()) {
        ++failed_tests;
        out << fmt::format("  FAILED {}:{}: test \"{}\" (group {})\n{}", file, t.line, t.name,
                           t.group, report);
      }
      if (options.timeline || !report.empty()) {
        out << "    timeline of \"" << t.name << "\":\n";
        std::string timeline = autoscale::FormatTimeline(result, spec);
        size_t pos = 0;
        while (pos < timeline.size()) {
          const size_t nl = timeline.find('\n', pos);
          out << "      " << timeline.substr(pos, nl - pos) << "\n";
          pos = nl == std::string::npos ? timeline.size() : nl + 1;
        }
      }
    }
    if (failed_tests == 0) {
      out << fmt::format("  SUCCESS: {} test(s)\n", tf->tests.size());
    } else {
      out << fmt::format("  FAILED: {} of {} test(s)\n", failed_tests, tf->tests.size());
      any_failed = true;
    }
  }
  if (any_invalid) return 2;
  return any_failed ? 1 : 0;
}

std::function<std::optional<int>()> AddTestRulesCommand(CLI::App& app) {
  struct State {
    std::vector<std::string> files;
    TestRulesOptions options;
  };
  auto state = std::make_shared<State>();
  auto* test = app.add_subcommand("test", "Run unit tests.");
  test->require_subcommand(1);
  auto* rules = test->add_subcommand(
      "rules",
      "Run rule unit tests (promtool style): simulated groups on the real engine; exit 0 when "
      "all pass, 1 on failures, 2 on invalid files.");
  rules->add_option("files", state->files, "Test files (YAML).")->required();
  rules->add_flag("--timeline", state->options.timeline, "Print every test's decision timeline.");
  return [state, rules]() -> std::optional<int> {
    if (!rules->parsed()) return std::nullopt;
    // The engine logs every simulated action and health result; the report says it all.
    SetupLogging("error", "logfmt");
    return TestRulesCommand(state->files, state->options, std::cout);
  };
}

}  // namespace virtscale
