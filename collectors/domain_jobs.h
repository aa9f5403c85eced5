#pragma once
// The "jobs" collector: the background job of each running domain (migration,
// save, dump, snapshot, backup), read with virDomainGetJobStats. The sampler
// chooses which domains to ask each sample; a driver without jobs (the test
// driver) says so once and is not asked again.
//
//   DomainJobCall call = GetDomainJob(dom);
//   if (call.outcome == DomainJobCall::kOk && call.job) { /* a job is running */ }
#include <libvirt/libvirt.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collectors/call_errors.h"
#include "collectors/deadline_runner.h"
#include "collectors/domains_collector.h"
#include "collectors/libvirt_error.h"
#include "collectors/snapshot.h"
#include "common/duration.h"

namespace virtscale {

// Pure: the job of `type` (virDomainJobType) from its typed parameters.
// Returns nullopt for "no job" and for finished or unknown types: only a job
// in progress is exported. Times are kept in ms as libvirt reports them.
std::optional<JobStats> ParseJobStats(int type, const virTypedParameter* params, int nparams);

struct DomainJobCall {
  enum Outcome {
    kOk,           // `job` holds the running job, or nullopt when none runs
    kUnsupported,  // the driver has no job API: stop asking
    kGone,         // the domain stopped or vanished since the list: not an error
    kFailed,       // `error` says why
  };
  Outcome outcome = kFailed;
  std::optional<JobStats> job;
  LibvirtError error;
};

DomainJobCall GetDomainJob(virDomainPtr dom);

// One running domain to ask; its answer goes to the domain of that UUID.
struct JobTarget {
  std::string uuid;
  std::shared_ptr<virDomain> dom;
};

// The domains to ask this sample. A domain with a job (as `previous` saw it)
// or not seen before is asked at every sample; another running one about
// every 15 s, spread by UUID: the calls cost libvirtd time, and a job lasts
// longer. `sequence`: this sample's number; `interval`: libvirt.sample_interval.
std::vector<JobTarget> SelectJobTargets(const std::vector<ListedDomain>& live,
                                        const Snapshot* previous, uint64_t sequence,
                                        Duration interval);

struct JobsCollectorResult {
  CollectorResult collector{"jobs", 0, false};
  bool connection_lost = false;
};

// One sample's job calls. They run as deadline tasks beside the bulk stats
// calls (they do not need their answers), so they add little to a sample.
class JobCalls {
 public:
  // Appends one task per target to `tasks` (a driver known to have no job
  // API gets none); remembers where they start.
  JobCalls(const std::vector<JobTarget>& targets, const std::atomic<bool>& unsupported,
           std::vector<DeadlineTask>& tasks);
  // After RunWithDeadlines over `tasks`: fills domains[...].job by UUID. A
  // failed call adds "job_stats" to the domain's errors and is recorded in
  // `errors`; one that timed out marks the domain timed_out; a driver without
  // jobs sets `unsupported`. Success is false if any call failed or timed out.
  JobsCollectorResult Apply(const DeadlineRunResult& run, std::atomic<bool>& unsupported,
                            CallErrorLog& errors, std::vector<DomainStats>& domains) const;

 private:
  struct Call {
    std::string uuid;
    DomainJobCall answer;
    std::chrono::steady_clock::time_point finished_at{};
  };
  std::vector<std::shared_ptr<Call>> calls_;
  size_t first_task_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// "bounded", "unbounded", or "unknown" for a type this build does not know.
const char* JobTypeName(int type);
// virDomainJobOperation lower case ("migration_out", "dump", ...), else "unknown".
const char* JobOperationName(int operation);

}  // namespace virtscale
