#pragma once
// Runs the groups' health checks (autoscale/health_check.h) on worker threads
// and keeps each member's health. The engine calls Update for a group on every
// evaluation with its members; checks that are due are queued and run in the
// background, and Health reads what the last finished rounds found. A slow
// check therefore never delays an evaluation: its result counts at the next.
//
// One round per member runs at a time. A member's address (for {address} and
// tcp checks) is looked up on the worker, right before its round, through
// `lookup` (LibvirtActuator::MemberAddress: lease, agent, ARP).
//
//   HealthMonitor monitor([&](const std::string& d) { return actuator.MemberAddress(d); },
//                         SystemClock());
//   monitor.Update("web", *rule.health, subjects, now.mono);   // queues due rounds
//   auto health = monitor.Health("web", subjects, now.mono);   // domain -> status
//   monitor.Shutdown();                                         // cancels checks in flight
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "autoscale/health_check.h"
#include "autoscale/rules.h"
#include "common/clock.h"

namespace virtscale::autoscale {

// A member as the monitor sees it.
struct HealthSubject {
  std::string domain;
  DomainState state = DomainState::kRunning;
  int state_reason = 0;
  MonoTime started{};             // when it was last seen to start
  bool should_be_running = true;  // false for a member the group itself stopped
};

class HealthMonitor {
 public:
  using AddressLookup = std::function<std::string(const std::string& domain)>;
  // Runs one member's round; RunChecks unless a simulation models the results.
  using Probe = std::function<std::vector<ProbeResult>(const HealthPolicy&, const MemberProbeInput&,
                                                       ProbeCanceller*)>;

  HealthMonitor(AddressLookup lookup, const Clock& clock, size_t workers = 2, Probe probe = {});
  ~HealthMonitor();  // Shutdown()
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Queues a round for each member of `group` that is due, and forgets
  // members that left. A changed policy starts the group's records afresh.
  void Update(const std::string& group, const HealthPolicy& policy,
              const std::vector<HealthSubject>& members, MonoTime now);
  // Forgets every group not in `groups` (a reload removed them).
  void RetainGroups(const std::set<std::string>& groups);
  // Each member's status at `now` (grace, unknown, healthy, failing, unhealthy).
  std::map<std::string, MemberHealthStatus> Health(const std::string& group,
                                                   const std::vector<HealthSubject>& members,
                                                   MonoTime now) const;
  // Blocks until no round is queued or running (tests, simulations).
  void WaitIdle() const;
  // Cancels the rounds in flight, drops the queued ones and joins the workers.
  void Shutdown();

 private:
  struct GroupHealth {
    std::string signature;  // of the policy the tracker was built for
    std::shared_ptr<const HealthPolicy> policy;
    HealthTracker tracker;
    std::set<std::string> in_flight;  // members whose round is queued or running
  };
  struct Round {
    std::string group;
    std::shared_ptr<const HealthPolicy> policy;
    std::string signature;
    HealthSubject subject;
  };

  void WorkerLoop(ProbeCanceller& canceller);
  void RunRound(const Round& round, ProbeCanceller& canceller);

  AddressLookup lookup_;
  const Clock& clock_;
  Probe probe_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  mutable std::condition_variable idle_cv_;
  size_t running_ = 0;  // rounds taken by a worker and not recorded yet
  std::map<std::string, GroupHealth> groups_;
  std::deque<Round> queue_;
  bool stop_ = false;
  // One per worker: a RequestCanceller follows one request at a time.
  std::vector<std::unique_ptr<ProbeCanceller>> cancellers_;
  std::vector<std::thread> workers_;  // last: start after everything above exists
};

// A stable text of everything in `policy` that the checks depend on.
std::string HealthPolicySignature(const HealthPolicy& policy);

}  // namespace virtscale::autoscale
