#pragma once
// Health checks of group members (DESIGN.md "Lifecycle keys", the `health:`
// group key decoded into HealthPolicy by rule_loader.h): the probes, a runner
// for one member's checks, and HealthTracker, the per-member state machine.
// Nothing here calls libvirt or acts on a member: the engine passes in the
// member's state and address, runs RunChecks on a worker thread (the probes
// block for up to each check's timeout), feeds the results to the tracker on
// its own thread, and decides what an unhealthy member means.
//
//   HealthTracker tracker(*group.health);
//   if (tracker.Due(m.domain, m.started, now)) {               // engine thread
//     MemberProbeInput in{.domain = m.domain, .group = group.name,
//                         .address = m.address, .state = m.state, .state_reason = m.reason};
//     std::vector<ProbeResult> results = RunChecks(*group.health, in, &canceller);  // worker
//     const MemberHealthStatus& s = tracker.Record(m.domain, m.started, now, results);
//     if (s.state == MemberHealth::kUnhealthy) ...;  // s.failed_check: "http
//     http://{address}:8080/healthz"
//   }                                                // s.output: "HTTP 503"
//   tracker.Retain(current_member_names);            // forget members that left
//
// Probe results:
// - libvirt: fails when the domain crashed, is paused on an I/O error or a
//   guest panic, or is shut off (or shutting down) while it should run.
// - exec: passes on exit status 0. argv gets the placeholders substituted
//   and the environment VIRTSCALE_DOMAIN, VIRTSCALE_GROUP, VIRTSCALE_ADDRESS
//   (common/placeholders.h). Output: the first line of the command's output,
//   after "exit status 3: " when it fails.
// - http: passes on a 2xx or 3xx status (redirects within the origin are
//   followed; one to another origin is not, and passes). Values in the URL are
//   percent-encoded. Output: "HTTP 503", or the client's error. A body above
//   kMaxHealthBodyBytes fails the check.
// - tcp: passes when a connection to {address}:port completes within the
//   timeout. Output: "connected", or why not.
// A check whose command or URL uses {address}, and every tcp check, is
// unknown (not failed) while the member's address is not known. A cancelled
// check is unknown ("cancelled").
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "autoscale/rules.h"
#include "collectors/snapshot.h"
#include "common/canceller.h"
#include "common/clock.h"
#include "common/http_client.h"

namespace virtscale::autoscale {

// Bounds what a result carries into the decision record.
inline constexpr size_t kMaxProbeOutputBytes = 256;
inline constexpr size_t kMaxHealthBodyBytes = 1 << 20;

enum class ProbeStatus { kPass, kFail, kUnknown };
const char* ProbeStatusName(ProbeStatus s);  // "pass", "fail", "unknown"

struct ProbeResult {
  ProbeStatus status = ProbeStatus::kUnknown;
  std::string output;  // short, valid UTF-8, at most kMaxProbeOutputBytes (+ "...")
};

// What the probes know of one member.
struct MemberProbeInput {
  std::string domain;
  std::string group;
  std::string address;  // first IPv4 address; empty when not known
  DomainState state = DomainState::kRunning;
  int state_reason = 0;           // libvirt's reason for `state` (virDomainPausedReason, ...)
  bool should_be_running = true;  // false while the agent itself stops it
};

// Stops the checks of a RunChecks in flight (agent shutdown); from any thread.
struct ProbeCanceller {
  Canceller wait;  // subprocesses and tcp connects
  RequestCanceller http;
  void Cancel() {
    wait.Cancel();
    http.Cancel();
  }
  bool cancelled() const { return wait.cancelled(); }
};

// One probe each; blocking up to `check.timeout` (libvirt: not at all).
// `canceller` may be null. Thread-safe: they share no state.
[[nodiscard]] ProbeResult ProbeLibvirt(const MemberProbeInput& in);
[[nodiscard]] ProbeResult ProbeExec(const HealthCheck& check, const MemberProbeInput& in,
                                    ProbeCanceller* canceller);
[[nodiscard]] ProbeResult ProbeHttp(const HealthCheck& check, const MemberProbeInput& in,
                                    ProbeCanceller* canceller);
[[nodiscard]] ProbeResult ProbeTcp(const HealthCheck& check, const MemberProbeInput& in,
                                   ProbeCanceller* canceller);
// Dispatches on check.type.
[[nodiscard]] ProbeResult RunCheck(const HealthCheck& check, const MemberProbeInput& in,
                                   ProbeCanceller* canceller);

// All of `policy.checks` for one member, one after another; results are
// index-aligned with policy.checks. Once cancelled, the remaining checks are
// unknown ("cancelled") without running.
[[nodiscard]] std::vector<ProbeResult> RunChecks(const HealthPolicy& policy,
                                                 const MemberProbeInput& in,
                                                 ProbeCanceller* canceller);

// The states of a member:
// - kGrace: within grace_period of its start; no checks run.
// - kUnknown: out of grace, no round recorded yet.
// - kHealthy: every check of the last round passed.
// - kFailing: the last round did not pass, fewer than unhealthy_after in a row.
// - kUnhealthy: unhealthy_after rounds in a row did not pass.
// A round does not pass when any check fails or is unknown. An unknown result
// counts as a failure because rounds run only after the grace period: a
// member whose address is still unknown then has no working network (DESIGN:
// "unknown, not unhealthy, until the grace period ends").
enum class MemberHealth { kGrace, kUnknown, kHealthy, kFailing, kUnhealthy };
const char* MemberHealthName(
    MemberHealth h);  // "grace", "unknown", "healthy", "failing", "unhealthy"

struct MemberHealthStatus {
  MemberHealth state = MemberHealth::kUnknown;
  int64_t consecutive_failures = 0;
  // The first check of the last round that did not pass (HealthCheck::Describe)
  // and its result's status and output, for the decision record; empty after a pass.
  std::string failed_check;
  ProbeStatus failed_status = ProbeStatus::kPass;
  std::string output;
  std::optional<MonoTime> last_round;
};

// Per member, keyed by domain name. Pure logic on injected times; not
// thread-safe (the engine's thread owns it). `started` is when the member
// last started; a new value (a restart) begins its record afresh, in grace.
class HealthTracker {
 public:
  explicit HealthTracker(HealthPolicy policy);

  // True when out of grace and no round was recorded within `interval`.
  [[nodiscard]] bool Due(const std::string& domain, MonoTime started, MonoTime now) const;
  // Records one round; `results` are aligned with the policy's checks (a
  // missing result counts as unknown). Ignored while in grace.
  const MemberHealthStatus& Record(const std::string& domain, MonoTime started, MonoTime now,
                                   const std::vector<ProbeResult>& results);
  // The member's status at `now` without a new round.
  [[nodiscard]] MemberHealthStatus Status(const std::string& domain, MonoTime started,
                                          MonoTime now) const;
  // Forgets every member not in `present` (members that left the group).
  void Retain(const std::set<std::string>& present);
  size_t size() const { return members_.size(); }
  const HealthPolicy& policy() const { return policy_; }

 private:
  struct Entry {
    MonoTime started{};
    MemberHealthStatus status;
  };
  bool InGrace(MonoTime started, MonoTime now) const {
    return now - started < policy_.grace_period;
  }

  HealthPolicy policy_;
  std::map<std::string, Entry, std::less<>> members_;
  MemberHealthStatus grace_;  // what Record returns while in grace
};

}  // namespace virtscale::autoscale
