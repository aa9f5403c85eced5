#include "collectors/domain_jobs.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <iterator>
#include <string_view>
#include <unordered_map>

#include "collectors/typed_param_value.h"

namespace virtscale {

std::optional<JobStats> ParseJobStats(int type, const virTypedParameter* params, int nparams) {
  if (type != VIR_DOMAIN_JOB_BOUNDED && type != VIR_DOMAIN_JOB_UNBOUNDED) return std::nullopt;
  JobStats job;
  job.type = type;
  using Field = std::optional<uint64_t> JobStats::*;
  struct Named {
    const char* key;
    Field field;
  };
  static constexpr Named kFields[] = {
      {VIR_DOMAIN_JOB_TIME_ELAPSED, &JobStats::time_elapsed_ms},
      {VIR_DOMAIN_JOB_TIME_REMAINING, &JobStats::time_remaining_ms},
      {VIR_DOMAIN_JOB_DATA_TOTAL, &JobStats::data_total},
      {VIR_DOMAIN_JOB_DATA_PROCESSED, &JobStats::data_processed},
      {VIR_DOMAIN_JOB_DATA_REMAINING, &JobStats::data_remaining},
      {VIR_DOMAIN_JOB_MEMORY_TOTAL, &JobStats::memory_total},
      {VIR_DOMAIN_JOB_MEMORY_PROCESSED, &JobStats::memory_processed},
      {VIR_DOMAIN_JOB_MEMORY_REMAINING, &JobStats::memory_remaining},
      {VIR_DOMAIN_JOB_DISK_TOTAL, &JobStats::disk_total},
      {VIR_DOMAIN_JOB_DISK_PROCESSED, &JobStats::disk_processed},
      {VIR_DOMAIN_JOB_DISK_REMAINING, &JobStats::disk_remaining},
      {VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, &JobStats::memory_dirty_rate},
      {VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, &JobStats::memory_page_size},
      {VIR_DOMAIN_JOB_MEMORY_ITERATION, &JobStats::memory_iteration},
      {VIR_DOMAIN_JOB_MEMORY_BPS, &JobStats::memory_bps},
  };
  for (int i = 0; params != nullptr && i < nparams; ++i) {
    const virTypedParameter& p = params[i];
    std::string_view key(p.field, strnlen(p.field, VIR_TYPED_PARAM_FIELD_LENGTH));
    if (key == VIR_DOMAIN_JOB_OPERATION) {
      auto v = TypedParamUint(p);
      if (v && *v <= 255) job.operation = static_cast<int>(*v);
      continue;
    }
    for (const Named& n : kFields) {
      if (key == n.key) job.*(n.field) = TypedParamUint(p);
    }
  }
  return job;
}

DomainJobCall GetDomainJob(virDomainPtr dom) {
  DomainJobCall out;
  int type = VIR_DOMAIN_JOB_NONE;
  virTypedParameterPtr params = nullptr;
  int nparams = 0;
  if (virDomainGetJobStats(dom, &type, &params, &nparams, 0) < 0) {
    out.error = LastLibvirtError();
    switch (out.error.code) {
      case VIR_ERR_NO_SUPPORT:
      case VIR_ERR_ARGUMENT_UNSUPPORTED:
      case VIR_ERR_OPERATION_UNSUPPORTED:
        out.outcome = DomainJobCall::kUnsupported;
        break;
      case VIR_ERR_NO_DOMAIN:
      case VIR_ERR_OPERATION_INVALID:  // "domain is not running"
        out.outcome = DomainJobCall::kGone;
        break;
      default:
        out.outcome = DomainJobCall::kFailed;
    }
    return out;
  }
  out.outcome = DomainJobCall::kOk;
  out.job = ParseJobStats(type, params, nparams);
  virTypedParamsFree(params, nparams);
  return out;
}

JobCalls::JobCalls(const std::vector<JobTarget>& targets, const std::atomic<bool>& unsupported,
                   std::vector<DeadlineTask>& tasks)
    : first_task_(tasks.size()) {
  if (unsupported.load()) return;
  calls_.reserve(targets.size());
  for (const JobTarget& t : targets) {
    auto call = std::make_shared<Call>();
    call->uuid = t.uuid;
    calls_.push_back(call);
    tasks.push_back({{t.uuid}, [dom = t.dom, call] {
                       call->answer = GetDomainJob(dom.get());
                       call->finished_at = std::chrono::steady_clock::now();
                     }});
  }
}

JobsCollectorResult JobCalls::Apply(const DeadlineRunResult& run, std::atomic<bool>& unsupported,
                                    CallErrorLog& errors, std::vector<DomainStats>& domains) const {
  JobsCollectorResult out;
  out.collector.success = true;
  std::unordered_map<std::string_view, DomainStats*> by_uuid;
  for (DomainStats& d : domains) by_uuid.emplace(d.uuid, &d);
  auto last = start_;
  for (size_t k = 0; k < calls_.size(); ++k) {
    const Call& call = *calls_[k];
    auto it = by_uuid.find(call.uuid);
    const bool finished = first_task_ + k < run.finished.size() && run.finished[first_task_ + k];
    if (!finished) {
      out.collector.success = false;
      if (it != by_uuid.end()) it->second->timed_out = true;
      continue;
    }
    last = std::max(last, call.finished_at);
    const DomainJobCall& answer = call.answer;
    switch (answer.outcome) {
      case DomainJobCall::kOk:
        if (it != by_uuid.end()) it->second->job = answer.job;
        break;
      case DomainJobCall::kUnsupported:
        unsupported.store(true);
        break;
      case DomainJobCall::kGone:
        break;
      case DomainJobCall::kFailed:
        out.connection_lost |= answer.error.connection_lost;
        out.collector.success = false;
        if (it != by_uuid.end()) it->second->errors.emplace_back("job_stats");
        errors.Record("job_stats", answer.error, it != by_uuid.end() ? it->second->name : "");
        break;
    }
  }
  // From the sample's start to the last answer: the calls run beside others.
  out.collector.duration_seconds = std::chrono::duration<double>(last - start_).count();
  return out;
}

const char* JobTypeName(int type) {
  switch (type) {
    case VIR_DOMAIN_JOB_BOUNDED:
      return "bounded";
    case VIR_DOMAIN_JOB_UNBOUNDED:
      return "unbounded";
    default:
      return "unknown";
  }
}

const char* JobOperationName(int operation) {
  static constexpr const char* kNames[] = {
      "unknown",  "start",           "save", "restore", "migration_in",   "migration_out",
      "snapshot", "snapshot_revert", "dump", "backup",  "snapshot_delete"};
  if (operation < 0 || static_cast<size_t>(operation) >= std::size(kNames)) return "unknown";
  return kNames[operation];
}

std::vector<JobTarget> SelectJobTargets(const std::vector<ListedDomain>& live,
                                        const Snapshot* previous, uint64_t sequence,
                                        Duration interval) {
  // How often a running domain without a job is asked whether one started.
  constexpr Duration kJobRecheck = std::chrono::seconds(15);
  const uint64_t recheck_every =
      static_cast<uint64_t>(std::max<int64_t>(1, kJobRecheck / std::max(interval, Duration(1))));
  std::vector<JobTarget> targets;
  for (const ListedDomain& d : live) {
    const DomainStats* seen = previous ? previous->FindDomain(d.name) : nullptr;
    const bool due = (sequence + std::hash<std::string>{}(d.uuid)) % recheck_every == 0;
    if (seen == nullptr || seen->job || (seen->active && due)) targets.push_back({d.uuid, d.dom});
  }
  return targets;
}

}  // namespace virtscale
