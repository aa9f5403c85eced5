#pragma once
// The "jobs" collector: the background job of each running domain (migration,
// save, dump, snapshot, backup), read with virDomainGetJobStats. One call per
// running domain per sample; a driver without jobs (the test driver) says so
// once and is not asked again.
//
//   DomainJobCall call = GetDomainJob(dom);
//   if (call.outcome == DomainJobCall::kOk && call.job) { /* a job is running */ }
#include <libvirt/libvirt.h>

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "collectors/call_errors.h"
#include "collectors/deadline_runner.h"
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

// One running domain to ask, and where its answer goes.
struct JobTarget {
  size_t domain_index;  // into the `domains` passed to CollectDomainJobs
  std::shared_ptr<virDomain> dom;
};

struct JobsCollectorOptions {
  int workers = 1;
  Duration call_timeout = std::chrono::seconds(10);
  std::shared_ptr<StuckCalls> stuck;  // a call abandoned here blocks the domain's next calls
  CallErrorLog* errors = nullptr;
  // Set once the driver reports it has no job API; later samples skip the calls.
  std::atomic<bool>* unsupported = nullptr;
};

struct JobsCollectorResult {
  CollectorResult collector{"jobs", 0, false};
  bool connection_lost = false;
  int timed_out = 0;
};

// Asks every target for its job under the deadline and fills domains[i].job.
// A call that fails adds "job_stats" to the domain's errors; one that times
// out marks the domain timed_out. Success is false if any call failed or timed out.
JobsCollectorResult CollectDomainJobs(const std::vector<JobTarget>& targets,
                                      const JobsCollectorOptions& options,
                                      std::vector<DomainStats>& domains);

// "bounded", "unbounded", or "unknown" for a type this build does not know.
const char* JobTypeName(int type);
// virDomainJobOperation lower case ("migration_out", "dump", ...), else "unknown".
const char* JobOperationName(int operation);

}  // namespace virtscale
