#pragma once
// The autoscaler engine: holds the rules and each group's state, evaluates
// groups whose interval elapsed on every Tick, and hands the planned operations
// to worker threads that run them through the Actuator (the only code that
// changes VMs): one job per group at a time, groups in parallel, so a slow
// create in one group does not delay another. Every evaluation is recorded in
// a bounded decision log, which keeps changes apart from no-op evaluations.
//
// Thread-safety: every public method may be called from any thread. Tick is
// meant for one autoscaler thread (after each sample); SetRules for reloads;
// the *Json readers and Collect() for HTTP handlers.
//
// Acting safely on snapshots: while a group's actions run it is held
// ("action_in_flight"); after they finish it is held until a snapshot taken
// after they finished is ticked in ("awaiting_snapshot"), so one stale snapshot
// never triggers the same action twice. Failed actions count as
// result="error", and the group is held for a backoff (retry_backoff doubling
// per consecutive failure, capped at max_backoff) before it may act again.
//
//   LibvirtActuator actuator(...);
//   Engine engine(actuator, EngineOptions{.dry_run = flags.dry_run});
//   engine.SetRules(std::move(rules));
//   // after each sample:
//   engine.Tick(snapshot, sources.Readings(), SystemClock().Now(), conn.generation());
//   // /api/v1/groups: engine.GroupsJson(); /api/v1/decisions: engine.DecisionsJson(filter)
//   // /metrics: families = engine.Collect();
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "autoscale/actuator.h"
#include "autoscale/decision.h"
#include "autoscale/evaluator.h"
#include "autoscale/health_monitor.h"
#include "autoscale/hook_runner.h"
#include "autoscale/leadership.h"
#include "autoscale/rules.h"
#include "collectors/snapshot.h"
#include "collectors/sources/reading.h"
#include "common/clock.h"

namespace virtscale::autoscale {

struct EngineOptions {
  bool dry_run = false;  // global --dry-run: decide, log and export, change nothing
  // Several controllers, one acts (leader_election): while IsLeader() is false
  // the groups decide as a dry run (held_by follower), and every operation
  // runs only after ConfirmLeadership() (else it is cancelled, not run). Null:
  // this engine always acts. Must outlive the engine.
  Leadership* leadership = nullptr;
  // Decision records kept: those that changed something (DecisionLog), and
  // no-op evaluations apart from them.
  size_t change_history = 1000;
  size_t evaluation_history = 500;
  // A snapshot older than max(stale_after, 3 x the group's interval) is missing data.
  Duration stale_after{std::chrono::seconds(30)};
  Duration retry_backoff{std::chrono::seconds(10)};
  Duration max_backoff{std::chrono::minutes(5)};
  size_t action_workers = 4;      // groups whose actions may run at the same time
  size_t operations_per_job = 4;  // a group's operations that run at the same time
  // Stamps action completions (compared with Snapshot::taken_at_steady) and the
  // scale stamps written to libvirt; SystemClock() when null. Tests pass a fake.
  const Clock* clock = nullptr;
  // Called (under the engine's lock, with actions still "pending") with every
  // decision as it is made; the simulator records its timeline with it.
  std::function<void(const Decision&)> on_decision;
  // Called (without the lock) with the domains whose lifecycle metadata the
  // engine just wrote, so the sampler reads them again (Sampler::RefreshDomains).
  std::function<void(const std::vector<std::string>&)> on_metadata_written;
  // Called (outside the lock, on the worker) with a copy of every decision whose
  // actions finished, results included; notifications hang on it. WaitIdle
  // waits for it.
  std::function<void(const Decision&)> on_change_finished;
  // Replaces the real health checks (simulations model their results).
  HealthMonitor::Probe health_probe;
  // Replaces RunHook for the groups' lifecycle hooks (simulations model them):
  // called on a worker with the hook's name ("before_scale_down",
  // "after_scale_up"), the hook, its placeholder values and the engine's
  // shutdown canceller. Null: RunHook.
  std::function<HookRun(const char* which, const Hook& hook, const PlaceholderValues& values,
                        Canceller* canceller)>
      hook_runner;
};

// (domain, what failed) pairs.
using DomainErrors = std::vector<std::pair<std::string, std::string>>;

// What a lifecycle request (pause, resume, protect, unprotect) did. The
// change takes effect at once in memory; `persisted` says whether it was also
// stored in libvirt, so that it survives a restart.
struct LifecycleChange {
  enum class Status {
    kOk,        // applied, and stored (or nothing could be: see `note`)
    kNoGroup,   // no such group
    kNoMember,  // the domain is not a member of the group
    kNotStored  // applied in memory, but every write to libvirt failed
  };
  Status status = Status::kOk;
  nlohmann::json body;  // the endpoint's `data`: what changed, where it is stored, errors
};

class Engine : public prometheus::Collectable {
 public:
  Engine(Actuator& actuator, EngineOptions options);
  // Shutdown().
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Replaces the rules. Groups whose name persists keep their state (condition
  // timers unless their conditions changed, cooldowns, backoff, counters).
  void SetRules(RuleSet rules);
  // Evaluates every group whose interval elapsed since its last evaluation (all
  // of them on the first call) and queues the resulting actions.
  // `connection_generation` is LibvirtConnection::generation() now (0: unknown).
  void Tick(const SnapshotPtr& snapshot, const SourceReadings& sources, Instant now,
            uint64_t connection_generation = 0);
  // Cancels the actuator's running operations (they roll back and return
  // promptly), records queued ones as skipped, and joins the workers. Idempotent.
  void Shutdown();
  // Blocks until no action or health check is queued or running (tests, simulations).
  void WaitIdle();
  // Action jobs queued or running now (a job holds one decision's operations).
  size_t ActiveJobs() const {
    std::lock_guard lock(mu_);
    return queue_.size() + busy_;
  }
  // Blocks until no health check is queued or running; actions may still run.
  void WaitHealthIdle() { health_.WaitIdle(); }

  // The lifecycle API. A paused group evaluates as usual but every decision is
  // held (held_by paused); pause and resume are decision records of their own.
  // A protected member is never chosen for scale-down. Both are stored in each
  // member's lifecycle metadata (Actuator::RecordLifecycle), except in dry run.
  LifecycleChange SetPaused(const std::string& group, bool paused);
  LifecycleChange SetProtected(const std::string& group, const std::string& domain,
                               bool is_protected);

  // /api/v1/groups: one object per group (rule, members, state, last decision).
  nlohmann::json GroupsJson() const;
  // /api/v1/decisions: the records `filter` selects, newest first.
  nlohmann::json DecisionsJson(const DecisionFilter& filter) const;
  nlohmann::json DecisionsJson(size_t limit) const;  // any record, at most `limit`
  // virtscale_group_* families, virtscale_scale_actions_total and
  // virtscale_rule_evaluation_duration_seconds.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Group {
    GroupRule rule;
    GroupState state;
    std::optional<MonoTime> last_evaluated;
    Membership membership;
    std::optional<Decision> last_decision;
    std::map<std::pair<std::string, std::string>, double> actions_total;    // (direction, result)
    std::map<std::pair<std::string, std::string>, double> decisions_total;  // (outcome, held_by)
    std::optional<WallTime> last_scale[2];  // by Direction: when an action last ran
    // Lifecycle changes made here and not yet seen in a snapshot (or never
    // stored: dry run, no members); a stored change at least as new wins.
    struct Override {
      bool value = false;
      int64_t changed_ms = 0;
      bool stored = true;  // false: every write failed, so a repeated request writes again
    };
    std::optional<Override> pause_override;
    std::map<std::string, Override> protect_overrides;  // by member name
    // For health checks: when each member was first seen active since it last
    // started (its grace period runs from then), and the members this group
    // stopped itself (warm pool), which are not expected to run.
    std::map<std::string, MonoTime> running_since;
    std::set<std::string> stopped_by_group;
  };
  struct Job {
    std::string group;
    uint64_t decision_id = 0;
    Direction direction = Direction::kUp;
    std::vector<Operation> operations;
    std::vector<std::string> members;  // the group's members when it was decided
    std::optional<HookPolicy> hooks;   // the group's, when it was decided
  };

  void WorkerLoop();
  // One operation with the group's hooks around it: before_scale_down before a
  // stop or delete (abandon keeps the member), after_scale_up after a start or
  // create (abandon removes the member again). Hook output goes to the result.
  OperationResult ExecuteWithHooks(const Job& job, const Operation& op);
  void SetEnteringService(const std::string& domain, bool entering);
  // Runs a job's operations, up to operations_per_job at once; results in order.
  std::vector<OperationResult> RunOperations(const Job& job);
  // Stamps the job's time on the members the group has after it.
  void StampScaleTime(const Job& job, const std::vector<OperationResult>& results);
  void Finish(const Job& job, const std::vector<OperationResult>& results);
  Group* FindGroup(const std::string& name);
  // Applies the group's overrides to its membership, dropping those a snapshot caught up with.
  static void ApplyOverrides(Group& g);
  // Queues the group's due health checks and marks its unhealthy members.
  void ApplyHealth(Group& g, MonoTime now);
  // Unix ms for a lifecycle change: wall time, but always after the previous change.
  int64_t NextChangeMs();
  // Writes the stamps (unless persisting is off) and returns per-domain errors.
  DomainErrors StoreLifecycle(const std::vector<std::pair<std::string, LifecycleStamp>>& stamps);

  Actuator& actuator_;
  EngineOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  RuleSet rules_;  // rules_.groups[i] is groups_[i].rule
  std::vector<Group> groups_;
  DecisionLog log_;
  std::deque<Job> queue_;
  size_t busy_ = 0;  // workers running a job
  bool stop_ = false;
  bool shut_down_ = false;
  int64_t last_change_ms_ = 0;
  std::mutex lifecycle_mu_;  // one lifecycle request at a time, so stored changes keep their order
  double last_tick_seconds_ = 0;
  bool ticked_ = false;
  // Members whose after_scale_up hook runs: active, but not in service yet.
  std::set<std::string> entering_service_;
  HealthMonitor health_;              // its workers run the groups' health checks
  Canceller hooks_cancel_;            // Shutdown stops the hooks that run
  std::vector<std::thread> workers_;  // last: start after everything above exists
};

}  // namespace virtscale::autoscale
