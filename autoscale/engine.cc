#include "autoscale/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "autoscale/hook_runner.h"
#include "common/log.h"
#include "common/metric_families.h"

namespace virtscale::autoscale {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

double UnixSeconds(WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

DecisionResult ResultOf(size_t failed, size_t total) {
  if (failed == 0) return DecisionResult::kOk;
  return failed == total ? DecisionResult::kError : DecisionResult::kPartial;
}

EngineOptions WithClock(EngineOptions options) {
  if (options.clock == nullptr) options.clock = &SystemClock();
  return options;
}

}  // namespace

Engine::Engine(Actuator& actuator, EngineOptions options)
    : actuator_(actuator),
      options_(WithClock(std::move(options))),
      log_(options_.change_history, options_.evaluation_history),
      health_([&actuator](const std::string& domain) { return actuator.MemberAddress(domain); },
              *options_.clock, 2, options_.health_probe) {
  for (size_t i = 0; i < std::max<size_t>(1, options_.action_workers); ++i)
    workers_.emplace_back([this] { WorkerLoop(); });
}

Engine::~Engine() { Shutdown(); }

void Engine::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    stop_ = true;
  }
  actuator_.Cancel();
  hooks_cancel_.Cancel();
  health_.Shutdown();
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

Engine::Group* Engine::FindGroup(const std::string& name) {
  for (Group& g : groups_)
    if (g.rule.name == name) return &g;
  return nullptr;
}

void Engine::SetRules(RuleSet rules) {
  std::lock_guard lock(mu_);
  std::vector<Group> groups;
  groups.reserve(rules.groups.size());
  for (const GroupRule& rule : rules.groups) {
    Group g;
    if (Group* old = FindGroup(rule.name)) g = std::move(*old);
    g.rule = rule;
    // Counters start at 0 so increase() sees the first action of each kind.
    for (const char* dir : {"up", "down"})
      for (const char* result : {"ok", "error"}) g.actions_total.try_emplace({dir, result}, 0);
    groups.push_back(std::move(g));
  }
  groups_ = std::move(groups);
  rules_ = std::move(rules);
  std::set<std::string> checked;
  for (const Group& g : groups_)
    if (g.rule.health) checked.insert(g.rule.name);
  health_.RetainGroups(checked);
}

void Engine::Tick(const SnapshotPtr& snapshot, const SourceReadings& sources, Instant now,
                  uint64_t connection_generation) {
  const auto started = std::chrono::steady_clock::now();
  // Asked once per tick, before the lock: every group of this tick sees the same role.
  std::optional<std::string> follower;
  if (options_.leadership != nullptr && !options_.leadership->IsLeader())
    follower = options_.leadership->WhyNotLeader();
  std::unique_lock lock(mu_);
  std::vector<Membership> members;
  bool queued = false;
  for (size_t i = 0; i < groups_.size(); ++i) {
    Group& g = groups_[i];
    const bool due = !g.last_evaluated || now.mono - *g.last_evaluated >= g.rule.interval;
    if (!due) continue;
    if (members.empty()) members = IndexMembers(rules_, snapshot.get());
    g.membership = std::move(members[i]);
    ApplyOverrides(g);
    if (g.rule.health) ApplyHealth(g, now.mono);
    EvaluationInput in{.rule = g.rule,
                       .members = g.membership,
                       .snapshot = snapshot.get(),
                       .sources = sources,
                       .now = now,
                       .stale_after = std::max(options_.stale_after, 3 * g.rule.interval),
                       .connection_generation = connection_generation,
                       .dry_run = options_.dry_run,
                       .follower = follower};
    Evaluation ev = Evaluate(in, g.state);
    g.state = std::move(ev.next);
    g.last_evaluated = now.mono;
    Decision& d = ev.decision;
    g.decisions_total[{OutcomeName(d.outcome),
                       d.held_by == HeldBy::kNone ? "none" : HeldByName(d.held_by)}] += 1;
    if (options_.on_decision) options_.on_decision(d);
    if (!d.actions.empty()) {
      const Direction dir = *d.direction;
      const char* dirname = DirectionName(dir);
      if (d.result == DecisionResult::kDryRun) {
        g.actions_total[{dirname, "dry_run"}] += static_cast<double>(d.actions.size());
        for (const ActionRecord& a : d.actions) {
          LogInfo(d.held_by == HeldBy::kFollower ? "scale action skipped (follower)"
                                                 : "scale action skipped (dry run)",
                  {{"group", g.rule.name},
                   {"direction", dirname},
                   {"action", OperationKindName(a.operation.kind)},
                   {"domain", a.operation.domain},
                   {"reason", d.reason}});
        }
      } else {
        Job job{g.rule.name, 0, dir, {}, {}, g.rule.hooks};
        for (const ActionRecord& a : d.actions) job.operations.push_back(a.operation);
        for (const Member& m : g.membership.members) job.members.push_back(m.name);
        d.id = log_.Add(d);
        job.decision_id = d.id;
        queue_.push_back(std::move(job));
        queued = true;
        g.last_decision = d;
        continue;
      }
    }
    // Logged when the hold starts or changes cause, not at every evaluation.
    const bool same_hold = g.last_decision && g.last_decision->held_by == d.held_by;
    if (d.held_by != HeldBy::kNone && d.held_by != HeldBy::kDryRun &&
        d.held_by != HeldBy::kFollower && !same_hold) {
      LogDebug("scale held",
               {{"group", g.rule.name}, {"held_by", HeldByName(d.held_by)}, {"reason", d.reason}});
    }
    d.id = log_.Add(d);
    g.last_decision = std::move(d);
  }
  last_tick_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ticked_ = true;
  lock.unlock();
  if (queued) work_cv_.notify_all();
}

void Engine::ApplyOverrides(Group& g) {
  Membership& m = g.membership;
  if (g.pause_override) {
    if (m.paused_changed_ms >= g.pause_override->changed_ms) {
      g.pause_override.reset();
    } else {
      m.paused = g.pause_override->value;
      m.paused_changed_ms = g.pause_override->changed_ms;
    }
  }
  for (Member& member : m.members) {
    auto it = g.protect_overrides.find(member.name);
    if (it == g.protect_overrides.end()) continue;
    if (member.protected_changed_ms >= it->second.changed_ms) {
      g.protect_overrides.erase(it);
    } else {
      member.is_protected = it->second.value;
      member.protected_changed_ms = it->second.changed_ms;
    }
  }
}

void Engine::ApplyHealth(Group& g, MonoTime now) {
  Membership& m = g.membership;
  std::vector<HealthSubject> subjects;
  std::set<std::string> present;
  for (const Member& member : m.members) {
    present.insert(member.name);
    const bool stopped = member.state == MemberState::kStopped;
    if (!stopped) g.running_since.try_emplace(member.name, now);
    auto since = g.running_since.find(member.name);
    // A stopped member is checked only when it ran here and the group did not stop it:
    // someone else stopped it, and the libvirt check says so.
    if (since == g.running_since.end() || (stopped && g.stopped_by_group.count(member.name)))
      continue;
    subjects.push_back({member.name, member.domain_state, member.state_reason, since->second,
                        !g.stopped_by_group.count(member.name)});
  }
  std::erase_if(g.running_since, [&](const auto& kv) { return !present.count(kv.first); });
  std::erase_if(g.stopped_by_group, [&](const std::string& n) { return !present.count(n); });
  // Read before queueing this evaluation's rounds: a round counts from the next
  // evaluation on, however fast it finishes (simulations stay deterministic).
  const auto statuses = health_.Health(g.rule.name, subjects, now);
  health_.Update(g.rule.name, *g.rule.health, subjects, now);
  for (Member& member : m.members) {
    auto it = statuses.find(member.name);
    if (it == statuses.end()) continue;
    const MemberHealthStatus& s = it->second;
    member.health = MemberHealthName(s.state);
    if (s.state == MemberHealth::kFailing || s.state == MemberHealth::kUnhealthy)
      member.health_output = s.failed_check + ": " + s.output;
    MemberState to = member.state;
    if (s.state == MemberHealth::kUnhealthy) {
      to = MemberState::kUnhealthy;
    } else if (g.rule.health->replace && member.state == MemberState::kStopped) {
      // Shut off by someone else (only those stopped members are checked): not warm
      // pool while its checks decide, or restoring min would start it again before it
      // can be replaced. It counts as active, as it will once unhealthy.
      to = MemberState::kOther;
    }
    if (to == member.state) continue;
    --m.count[static_cast<int>(member.state)];
    if (member.state == MemberState::kRunning) --m.running;
    if (member.state == MemberState::kStopped) --m.stopped;
    member.state = to;
    ++m.count[static_cast<int>(to)];
  }
}

int64_t Engine::NextChangeMs() {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          options_.clock->Now().wall.time_since_epoch())
                          .count();
  last_change_ms_ = std::max(now, last_change_ms_ + 1);
  return last_change_ms_;
}

DomainErrors Engine::StoreLifecycle(
    const std::vector<std::pair<std::string, LifecycleStamp>>& stamps) {
  DomainErrors errors;
  std::vector<std::string> written;
  for (const auto& [domain, stamp] : stamps) {
    std::string error;
    try {
      error = actuator_.RecordLifecycle(domain, stamp);
    } catch (const std::exception& e) {
      error = std::string("exception: ") + e.what();
    }
    if (error.empty()) {
      written.push_back(domain);
    } else {
      errors.emplace_back(domain, error);
    }
  }
  if (!written.empty() && options_.on_metadata_written) options_.on_metadata_written(written);
  return errors;
}

namespace {

LifecycleStamp StampOf(const std::string& group, const Membership& m, const Member& member) {
  LifecycleStamp stamp;
  stamp.group = group;
  stamp.paused = m.paused;
  stamp.paused_changed_ms = m.paused_changed_ms;
  stamp.is_protected = member.is_protected;
  stamp.protected_changed_ms = member.protected_changed_ms;
  return stamp;
}

nlohmann::json ErrorsJson(const DomainErrors& errors) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [domain, error] : errors) out[domain] = error;
  return out;
}

}  // namespace

namespace {

LifecycleChange Unchanged(nlohmann::json body, int64_t changed_ms) {
  body["changed_at"] =
      changed_ms > 0 ? nlohmann::json(FormatTime(WallTime{std::chrono::milliseconds(changed_ms)}))
                     : nlohmann::json(nullptr);
  body["unchanged"] = true;
  body["note"] = "already so: nothing changed";
  return {LifecycleChange::Status::kOk, std::move(body)};
}

}  // namespace

LifecycleChange Engine::SetPaused(const std::string& group, bool paused) {
  std::lock_guard serial(lifecycle_mu_);
  std::vector<std::pair<std::string, LifecycleStamp>> stamps;
  LifecycleChange change;
  bool persist = false;
  int64_t changed_ms = 0;
  {
    std::lock_guard lock(mu_);
    Group* g = FindGroup(group);
    if (g == nullptr) return {LifecycleChange::Status::kNoGroup, {{"group", group}}};
    Membership& m = g->membership;
    // A repeated request changes nothing: no record, no write, no notification.
    if (m.paused == paused && (!g->pause_override || g->pause_override->stored))
      return Unchanged({{"group", group}, {"paused", paused}}, m.paused_changed_ms);
    changed_ms = NextChangeMs();
    m.paused = paused;
    m.paused_changed_ms = changed_ms;
    g->pause_override = Group::Override{paused, changed_ms};
    persist = !options_.dry_run && !g->rule.dry_run;
    if (persist)
      for (const Member& member : m.members)
        stamps.emplace_back(member.name, StampOf(group, m, member));
  }
  const DomainErrors errors = persist ? StoreLifecycle(stamps) : DomainErrors{};
  const size_t stored = stamps.size() - errors.size();

  std::string note;
  if (!persist) {
    note = "dry run: kept in memory only, not stored in libvirt";
  } else if (stamps.empty()) {
    note = "the group has no members to store it on: it lasts until the agent restarts";
  } else if (stored == 0) {
    note = "storing it failed on every member: it lasts until the agent restarts";
    change.status = LifecycleChange::Status::kNotStored;
  }
  std::unique_lock lock(mu_);
  Decision d;
  d.group = group;
  d.time = options_.clock->Now().wall;
  d.outcome = paused ? Outcome::kPaused : Outcome::kResumed;
  d.reason = fmt::format("{} through the lifecycle API; stored on {} of {} member(s){}{}",
                         paused ? "paused" : "resumed", stored, stamps.size(),
                         note.empty() ? "" : "; ", note);
  for (const auto& [domain, error] : errors) d.reason += "; " + domain + ": " + error;
  d.result = !persist         ? DecisionResult::kDryRun
             : errors.empty() ? DecisionResult::kOk
             : stored == 0    ? DecisionResult::kError
                              : DecisionResult::kPartial;
  if (Group* g = FindGroup(group)) {
    if (g->pause_override && change.status == LifecycleChange::Status::kNotStored)
      g->pause_override->stored = false;
    const std::optional<ActiveSchedule> window = ActiveScheduleAt(g->rule.schedules, d.time);
    const Bounds bounds =
        EffectiveBounds(g->rule.min, g->rule.max, window ? window->schedule : nullptr);
    d.min = bounds.min;
    d.max = bounds.max;
    if (window) d.schedule = ScheduleInForce::Of(*window);
    DescribeMembers(g->membership, d);
    d.desired = g->last_decision ? g->last_decision->desired : d.active;
  }
  LogInfo(paused ? "group paused" : "group resumed", {{"group", group}, {"reason", d.reason}});
  if (options_.on_decision) options_.on_decision(d);
  change.body = {{"group", group},
                 {"paused", paused},
                 {"changed_at", FormatTime(WallTime{std::chrono::milliseconds(changed_ms)})},
                 {"persisted", stored > 0},
                 {"stored_on", stored},
                 {"members", stamps.size()},
                 {"errors", ErrorsJson(errors)}};
  if (!note.empty()) change.body["note"] = note;
  d.id = log_.Add(d);
  change.body["decision_id"] = d.id;
  lock.unlock();
  if (options_.on_change_finished) options_.on_change_finished(d);
  return change;
}

LifecycleChange Engine::SetProtected(const std::string& group, const std::string& domain,
                                     bool is_protected) {
  std::lock_guard serial(lifecycle_mu_);
  std::optional<std::pair<std::string, LifecycleStamp>> stamp;
  bool persist = false;
  bool in_flight = false;
  int64_t changed_ms = 0;
  {
    std::lock_guard lock(mu_);
    Group* g = FindGroup(group);
    if (g == nullptr) return {LifecycleChange::Status::kNoGroup, {{"group", group}}};
    auto it = std::find_if(g->membership.members.begin(), g->membership.members.end(),
                           [&](const Member& m) { return m.name == domain; });
    if (it == g->membership.members.end())
      return {LifecycleChange::Status::kNoMember, {{"group", group}, {"domain", domain}}};
    auto override = g->protect_overrides.find(domain);
    if (it->is_protected == is_protected &&
        (override == g->protect_overrides.end() || override->second.stored))
      return Unchanged({{"group", group}, {"domain", domain}, {"protected", is_protected}},
                       it->protected_changed_ms);
    changed_ms = NextChangeMs();
    it->is_protected = is_protected;
    it->protected_changed_ms = changed_ms;
    g->protect_overrides[domain] = Group::Override{is_protected, changed_ms};
    persist = !options_.dry_run && !g->rule.dry_run;
    in_flight = g->state.in_flight;
    if (persist) stamp.emplace(domain, StampOf(group, g->membership, *it));
  }
  DomainErrors errors;
  if (stamp) errors = StoreLifecycle({*stamp});
  LifecycleChange change;
  std::string note;
  if (!persist) {
    note = "dry run: kept in memory only, not stored in libvirt";
  } else if (!errors.empty()) {
    note = "storing it failed: it lasts until the agent restarts";
    change.status = LifecycleChange::Status::kNotStored;
    std::lock_guard lock(mu_);
    if (Group* g = FindGroup(group); g && g->protect_overrides.count(domain))
      g->protect_overrides[domain].stored = false;
  }
  if (in_flight && is_protected) {
    note += std::string(note.empty() ? "" : "; ") +
            "an action of the group already running is not affected";
  }
  LogInfo(is_protected ? "member protected" : "member unprotected",
          {{"group", group}, {"domain", domain}, {"note", note}});
  change.body = {{"group", group},
                 {"domain", domain},
                 {"protected", is_protected},
                 {"changed_at", FormatTime(WallTime{std::chrono::milliseconds(changed_ms)})},
                 {"persisted", persist && errors.empty()},
                 {"errors", ErrorsJson(errors)}};
  if (!note.empty()) change.body["note"] = note;
  return change;
}

void Engine::WaitIdle() {
  {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [this] { return queue_.empty() && busy_ == 0; });
  }
  health_.WaitIdle();
}

OperationResult Engine::ExecuteWithHooks(const Job& job, const Operation& op) {
  using Kind = Operation::Kind;
  const bool removes = op.kind == Kind::kStop || op.kind == Kind::kDelete;
  const Hook* before = job.hooks && job.hooks->before_scale_down && removes
                           ? &*job.hooks->before_scale_down
                           : nullptr;
  const Hook* after =
      job.hooks && job.hooks->after_scale_up && !removes ? &*job.hooks->after_scale_up : nullptr;
  auto run_hook = [&](const char* name, const Hook& hook, const std::string& domain) {
    const PlaceholderValues values{
        .domain = domain, .group = op.group, .address = actuator_.MemberAddress(domain)};
    HookRun h = options_.hook_runner ? options_.hook_runner(name, hook, values, &hooks_cancel_)
                                     : RunHook(hook, values, &hooks_cancel_);
    return std::make_pair(h.proceed, std::string(name) + " " + h.Describe());
  };
  // The lease may have been lost since the decision (a pause, a partition):
  // etcd must say it is still held right now, before any hook or call runs.
  if (options_.leadership != nullptr && !options_.leadership->ConfirmLeadership()) {
    OperationResult skipped;
    skipped.domain = op.domain;
    skipped.not_run = true;
    skipped.error = "not run: this controller's leadership was not confirmed by etcd (" +
                    options_.leadership->WhyNotLeader() + ")";
    return skipped;
  }
  const auto started = std::chrono::steady_clock::now();
  std::string hook_note;
  if (before != nullptr) {
    auto [proceed, note] = run_hook("before_scale_down", *before, op.domain);
    hook_note = note;
    if (!proceed) {
      OperationResult kept;
      kept.domain = op.domain;
      kept.error = note + "; the member keeps running (on_failure: abandon)";
      return kept;
    }
  }
  OperationResult r = actuator_.Execute(op);
  if (r.ok && after != nullptr) {
    const std::string domain = r.domain.empty() ? op.domain : r.domain;
    SetEnteringService(domain, true);
    auto [proceed, note] = run_hook("after_scale_up", *after, domain);
    SetEnteringService(domain, false);
    hook_note = note;
    if (!proceed) {
      // Abandoned: what was brought up goes again (a created member is ours to delete).
      Operation undo = op;
      undo.kind = op.kind == Kind::kCreate ? Kind::kDelete : Kind::kStop;
      undo.domain = domain;
      const OperationResult removed = actuator_.Execute(undo);
      r.ok = false;
      r.error = note + "; " + OperationKindName(undo.kind) + " " + domain +
                " again: " + (removed.ok ? "ok" : removed.error);
    }
  }
  if (!hook_note.empty()) {
    r.detail = r.detail.empty() ? hook_note : r.detail + "; " + hook_note;
    // The action took as long as its hooks too, not only the actuator's part.
    r.duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  }
  return r;
}

void Engine::SetEnteringService(const std::string& domain, bool entering) {
  std::lock_guard lock(mu_);
  if (entering) {
    entering_service_.insert(domain);
  } else {
    entering_service_.erase(domain);
  }
}

std::vector<OperationResult> Engine::RunOperations(const Job& job) {
  std::vector<OperationResult> results(job.operations.size());
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t i; (i = next.fetch_add(1)) < job.operations.size();) {
      const Operation& op = job.operations[i];
      const auto started = std::chrono::steady_clock::now();
      OperationResult& r = results[i];
      try {
        r = ExecuteWithHooks(job, op);
      } catch (const std::exception& e) {
        r.ok = false;
        r.error = std::string("exception: ") + e.what();
      }
      if (r.duration_seconds == 0) {
        r.duration_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      }
      if (r.domain.empty()) r.domain = op.domain;
      // The one log line per action.
      const double duration = std::round(r.duration_seconds * 1000) / 1000;
      if (r.not_run) {
        LogWarn("scale action cancelled", {{"group", op.group},
                                           {"direction", DirectionName(job.direction)},
                                           {"action", OperationKindName(op.kind)},
                                           {"domain", r.domain},
                                           {"result", "cancelled"},
                                           {"error", r.error}});
      } else if (r.ok) {
        LogInfo("scale action", {{"group", op.group},
                                 {"direction", DirectionName(job.direction)},
                                 {"action", OperationKindName(op.kind)},
                                 {"domain", r.domain},
                                 {"result", "ok"},
                                 {"duration_seconds", duration},
                                 {"detail", r.detail}});
      } else {
        LogWarn("scale action", {{"group", op.group},
                                 {"direction", DirectionName(job.direction)},
                                 {"action", OperationKindName(op.kind)},
                                 {"domain", r.domain},
                                 {"result", "error"},
                                 {"duration_seconds", duration},
                                 {"error", r.error}});
      }
    }
  };
  const size_t parallel = std::clamp<size_t>(options_.operations_per_job, 1,
                                             std::max<size_t>(job.operations.size(), 1));
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < parallel; ++i) helpers.emplace_back(run);
  run();
  for (std::thread& t : helpers) t.join();
  return results;
}

void Engine::StampScaleTime(const Job& job, const std::vector<OperationResult>& results) {
  std::vector<std::string> after = job.members;
  bool any_ok = false;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok) continue;
    any_ok = true;
    const Operation& op = job.operations[i];
    if (op.kind == Operation::Kind::kCreate) after.push_back(results[i].domain);
    if (op.kind == Operation::Kind::kDelete) std::erase(after, results[i].domain);
  }
  if (!any_ok || after.empty()) return;
  const int64_t unix_seconds = std::chrono::duration_cast<std::chrono::seconds>(
                                   options_.clock->Now().wall.time_since_epoch())
                                   .count();
  const std::string error =
      actuator_.RecordScaleTime(job.group, job.direction, unix_seconds, after);
  if (!error.empty()) {
    LogWarn("scale stamp not recorded; a restart may shorten this cooldown",
            {{"group", job.group}, {"error", error}});
  }
}

void Engine::WorkerLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) break;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    std::vector<OperationResult> results = RunOperations(job);
    StampScaleTime(job, results);
    lock.lock();
    Finish(job, results);
    if (const Decision* d = log_.Find(job.decision_id); d && options_.on_change_finished) {
      const Decision finished = *d;
      lock.unlock();
      options_.on_change_finished(finished);
      lock.lock();
    }
    --busy_;
    if (queue_.empty() && busy_ == 0) idle_cv_.notify_all();
  }
  // Stopping: what is still queued never ran.
  for (const Job& job : queue_) {
    if (Decision* d = log_.Find(job.decision_id)) {
      for (ActionRecord& a : d->actions) a.result = ActionResult::kCancelled;
      d->result = DecisionResult::kCancelled;
    }
  }
  queue_.clear();
  idle_cv_.notify_all();
}

void Engine::Finish(const Job& job, const std::vector<OperationResult>& results) {
  const Instant done = options_.clock->Now();
  size_t failed = 0;
  size_t not_run = 0;
  for (const OperationResult& r : results) {
    not_run += r.not_run ? 1 : 0;
    failed += r.ok || r.not_run ? 0 : 1;
  }
  const bool none_ran = not_run == results.size();
  const DecisionResult result =
      none_ran ? DecisionResult::kCancelled : ResultOf(failed + not_run, results.size());

  auto update = [&](Decision& d) {
    for (size_t i = 0; i < d.actions.size() && i < results.size(); ++i) {
      d.actions[i].result = results[i].not_run ? ActionResult::kCancelled
                            : results[i].ok    ? ActionResult::kOk
                                               : ActionResult::kError;
      d.actions[i].domain = results[i].domain;
      d.actions[i].error = results[i].error;
      d.actions[i].detail = results[i].detail;
      d.actions[i].duration_seconds = results[i].duration_seconds;
    }
    d.result = result;
  };
  if (Decision* d = log_.Find(job.decision_id)) update(*d);

  Group* g = FindGroup(job.group);
  if (g == nullptr) return;  // removed by a reload while its action ran
  if (g->last_decision && g->last_decision->id == job.decision_id) update(*g->last_decision);
  const char* dir = DirectionName(job.direction);
  g->actions_total[{dir, "ok"}] += static_cast<double>(results.size() - failed - not_run);
  g->actions_total[{dir, "error"}] += static_cast<double>(failed);
  if (!none_ran) g->last_scale[static_cast<int>(job.direction)] = done.wall;
  for (size_t i = 0; i < results.size() && i < job.operations.size(); ++i) {
    if (!results[i].ok) continue;
    const std::string& domain = results[i].domain;
    switch (job.operations[i].kind) {
      case Operation::Kind::kStop:
        g->stopped_by_group.insert(domain);
        g->running_since.erase(domain);
        break;
      case Operation::Kind::kStart:
      case Operation::Kind::kCreate:
        g->stopped_by_group.erase(domain);
        g->running_since.erase(domain);  // started now: its grace period begins at the next look
        break;
      case Operation::Kind::kDelete:
        g->stopped_by_group.erase(domain);
        g->running_since.erase(domain);
        break;
    }
  }
  GroupState& s = g->state;
  s.in_flight = false;
  s.settle_after = done.mono;
  if (failed > 0) {
    ++s.consecutive_failures;
    const int shift = std::min(s.consecutive_failures - 1, 16);
    const Duration backoff =
        std::min(options_.retry_backoff * (int64_t{1} << shift), options_.max_backoff);
    s.retry_after = done.mono + backoff;
  } else {
    s.consecutive_failures = 0;
    s.retry_after.reset();
  }
}

namespace {

int64_t RefreshDue(const GroupRule& rule, const Membership& m) {
  return std::count_if(m.members.begin(), m.members.end(),
                       [&](const Member& member) { return IsStale(rule, member); });
}

}  // namespace

nlohmann::json Engine::GroupsJson() const {
  using nlohmann::json;
  std::lock_guard lock(mu_);
  json out = json::array();
  for (const Group& g : groups_) {
    const GroupRule& r = g.rule;
    json members = json::array();
    for (const Member& m : g.membership.members) {
      json mj{{"name", m.name},
              {"state", MemberStateName(m.state)},
              {"domain_state", DomainStateName(m.domain_state)},
              {"running", m.state == MemberState::kRunning},
              {"owned", m.owned},
              {"protected", m.is_protected},
              {"in_service", !entering_service_.count(m.name)},
              {"health", m.health.empty() ? json(nullptr) : json(m.health)},
              {"health_output", m.health_output},
              {"created_by_virtscale", m.owned}};  // 0.1 name of "owned"
      if (m.owned) mj["created_at"] = m.created_at_unix;
      // null: unknown (adopted, or created before template hashes were recorded).
      mj["template_hash"] = m.template_hash.empty() ? json(nullptr) : json(m.template_hash);
      mj["template_current"] = m.template_hash.empty() || !r.template_doc
                                   ? json(nullptr)
                                   : json(m.template_hash == r.template_doc->content_hash());
      members.push_back(std::move(mj));
    }
    const Instant now = options_.clock->Now();
    auto opt_time = [](const std::optional<WallTime>& t) {
      return t ? json(FormatTime(*t)) : json(nullptr);
    };
    auto opt_mono = [&](const std::optional<MonoTime>& t) {
      return t ? json(FormatTime(now.WallOf(*t))) : json(nullptr);
    };
    json j{
        {"name", r.name},
        {"file", r.file},
        {"template", r.template_path},
        {"name_prefix", r.name_prefix},
        {"min", r.min},
        {"max", r.max},
        {"interval_seconds", Seconds(r.interval)},
        {"on_missing_data", MissingDataPolicyName(r.on_missing_data)},
        {"dry_run", r.dry_run || options_.dry_run},
        {"scale_down_action", DownActionName(r.down_action)},
        {"scale_down_order", DownOrderName(r.down_order)},
        {"members", members},
        {"running", g.membership.running},
        {"stopped", g.membership.stopped},
        {"active", g.membership.active()},
        {"in_flight", g.state.in_flight},
        {"paused", g.membership.paused},
        {"paused_since",
         g.membership.paused
             ? json(FormatTime(WallTime{std::chrono::milliseconds(g.membership.paused_changed_ms)}))
             : json(nullptr)},
        {"consecutive_failures", g.state.consecutive_failures},
        {"last_evaluated", opt_mono(g.last_evaluated)},
        {"last_scale_up", opt_time(g.last_scale[0])},
        {"last_scale_down", opt_time(g.last_scale[1])},
        {"retry_after", opt_mono(g.state.retry_after)},
        {"rate_limit",
         {{"up", r.scale_up.rate_limit.ToString()}, {"down", r.scale_down.rate_limit.ToString()}}},
        {"stabilization_window",
         {{"up", FormatDuration(r.scale_up.stabilization_window)},
          {"down", FormatDuration(r.scale_down.stabilization_window)}}}};
    const std::optional<ActiveSchedule> window = ActiveScheduleAt(r.schedules, now.wall);
    const Bounds bounds = EffectiveBounds(r.min, r.max, window ? window->schedule : nullptr);
    j["effective_min"] = bounds.min;
    j["effective_max"] = bounds.max;
    j["schedule"] = window ? ScheduleInForce::Of(*window).ToJson() : json(nullptr);
    j["next_schedule"] = opt_time(NextScheduleStart(r.schedules, now.wall));
    if (r.target) j["target"] = r.target->Describe();
    if (r.forecast)
      j["forecast"] = {{"source", r.forecast->source},
                       {"horizon", FormatDuration(r.forecast->horizon)},
                       {"mode", ForecastModeName(r.forecast->mode)}};
    j["template_hash"] = r.template_doc ? json(r.template_doc->content_hash()) : json(nullptr);
    if (r.refresh)
      j["refresh"] = {{"max_unavailable", r.refresh->max_unavailable},
                      {"due", RefreshDue(r, g.membership)}};
    j["desired"] = g.last_decision ? json(g.last_decision->desired) : json(nullptr);
    j["last_decision"] = g.last_decision ? g.last_decision->ToJson() : json(nullptr);
    if (g.last_decision) {
      const Decision& d = *g.last_decision;
      std::string outcome = OutcomeName(d.outcome);
      if (d.held_by != HeldBy::kNone) outcome += std::string(" (") + HeldByName(d.held_by) + ")";
      if (d.result != DecisionResult::kNone && d.result != DecisionResult::kDryRun)
        outcome += std::string(": ") + DecisionResultName(d.result);
      j["last_outcome"] = outcome;
    } else {
      j["last_outcome"] = nullptr;
    }
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json Engine::DecisionsJson(const DecisionFilter& filter) const {
  std::lock_guard lock(mu_);
  return log_.Json(filter);
}

nlohmann::json Engine::DecisionsJson(size_t limit) const {
  DecisionFilter filter;
  filter.limit = limit;
  return DecisionsJson(filter);
}

std::vector<MetricFamily> Engine::Collect() const {
  std::lock_guard lock(mu_);
  MetricFamilies f;
  auto members =
      f.Family("virtscale_group_members",
               "Members of an autoscaling group by state (running, paused, stopped, unhealthy, "
               "other); all but stopped count towards max.",
               MetricType::Gauge);
  auto desired = f.Family("virtscale_group_desired_members",
                          "Active members the group's last evaluation wanted.", MetricType::Gauge);
  auto min = f.Family("virtscale_group_min_members", "Lower bound of the group's active members.",
                      MetricType::Gauge);
  auto max = f.Family("virtscale_group_max_members", "Upper bound of the group's active members.",
                      MetricType::Gauge);
  auto value =
      f.Family("virtscale_group_metric_value",
               "Value of a rule metric at the group's last evaluation (absent when missing).",
               MetricType::Gauge);
  auto state =
      f.Family("virtscale_group_condition_state",
               "State of a scaling condition: 0 inactive, 1 pending, 2 firing.", MetricType::Gauge);
  auto threshold =
      f.Family("virtscale_group_threshold", "Threshold of a scaling condition.", MetricType::Gauge);
  auto actions = f.Family("virtscale_scale_actions_total",
                          "Scale operations by group, direction and result (ok, error, dry_run).",
                          MetricType::Counter);
  auto decisions = f.Family("virtscale_group_decisions_total",
                            "Rule evaluations by group, outcome and what held the group (none when "
                            "nothing did).",
                            MetricType::Counter);
  auto last = f.Family("virtscale_group_last_scale_timestamp_seconds",
                       "Unix time at which the group's last scale action in a direction finished.",
                       MetricType::Gauge);
  auto in_flight = f.Family("virtscale_group_action_in_flight",
                            "1 while the group's scale actions are running.", MetricType::Gauge);
  auto paused =
      f.Family("virtscale_group_paused", "1 while the group is paused through the lifecycle API.",
               MetricType::Gauge);
  auto refresh_due = f.Family("virtscale_group_refresh_due_members",
                              "Members made from an older template that refresh still replaces "
                              "(groups with refresh: only).",
                              MetricType::Gauge);
  auto forecast = f.Family("virtscale_group_forecast_members",
                           "Active members the group's load forecast asks for over its horizon, "
                           "within the bounds in force (groups with forecast: only; absent "
                           "without a forecast).",
                           MetricType::Gauge);
  auto protected_members =
      f.Family("virtscale_member_protected",
               "1 for a member protected from scale-down through the lifecycle API, else 0.",
               MetricType::Gauge);
  const WallTime wall = options_.clock->Now().wall;
  for (const Group& g : groups_) {
    const std::string& name = g.rule.name;
    // The bounds in force: an open schedule window's, else the group's.
    const std::optional<ActiveSchedule> window = ActiveScheduleAt(g.rule.schedules, wall);
    const Bounds bounds =
        EffectiveBounds(g.rule.min, g.rule.max, window ? window->schedule : nullptr);
    f.Add(min, {{"group", name}}, static_cast<double>(bounds.min));
    f.Add(paused, {{"group", name}}, g.membership.paused ? 1 : 0);
    for (const Member& m : g.membership.members)
      f.Add(protected_members, {{"group", name}, {"domain", m.name}}, m.is_protected ? 1 : 0);
    f.Add(max, {{"group", name}}, static_cast<double>(bounds.max));
    f.Add(in_flight, {{"group", name}}, g.state.in_flight ? 1 : 0);
    if (g.rule.refresh && g.last_decision && g.last_decision->snapshot_time)
      f.Add(refresh_due, {{"group", name}}, static_cast<double>(RefreshDue(g.rule, g.membership)));
    for (const auto& [key, count] : g.actions_total)
      f.Add(actions, {{"group", name}, {"direction", key.first}, {"result", key.second}}, count);
    for (const auto& [key, count] : g.decisions_total)
      f.Add(decisions, {{"group", name}, {"outcome", key.first}, {"held_by", key.second}}, count);
    for (int dir = 0; dir < 2; ++dir) {
      if (g.last_scale[dir]) {
        f.Add(last, {{"group", name}, {"direction", DirectionName(static_cast<Direction>(dir))}},
              UnixSeconds(*g.last_scale[dir]));
      }
    }
    // Until a snapshot has been evaluated the membership is unknown, not zero.
    if (!g.last_decision || !g.last_decision->snapshot_time) continue;
    const Decision& d = *g.last_decision;
    for (int st = 0; st < kMemberStates; ++st) {
      f.Add(members, {{"group", name}, {"state", MemberStateName(static_cast<MemberState>(st))}},
            static_cast<double>(d.by_state_count[st]));
    }
    f.Add(desired, {{"group", name}}, static_cast<double>(d.desired));
    if (d.forecast && d.forecast->members)
      f.Add(forecast, {{"group", name}}, static_cast<double>(*d.forecast->members));
    for (const MetricValue& m : d.metrics)
      if (m.value) f.Add(value, {{"group", name}, {"metric", m.key}}, *m.value);
    for (const ConditionReport& c : d.conditions) {
      std::vector<ClientMetric::Label> labels{{"group", name},
                                              {"direction", DirectionName(c.direction)},
                                              {"condition", std::to_string(c.index)},
                                              {"metric", c.metric_key}};
      f.Add(state, labels, static_cast<double>(static_cast<int>(c.state)));
      f.Add(threshold, labels, c.threshold);
    }
  }
  auto eval = f.Family("virtscale_rule_evaluation_duration_seconds",
                       "Duration of the last autoscaler tick (all due groups).", MetricType::Gauge);
  // Without groups a tick evaluates nothing; the series would only say how fast nothing is.
  if (ticked_ && !groups_.empty()) f.Add(eval, {}, last_tick_seconds_);
  return f.Take();
}

}  // namespace virtscale::autoscale
