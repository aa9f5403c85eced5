#include "collectors/domain_jobs.h"

#include <libvirt/virterror.h>

#include <cstring>
#include <iterator>
#include <string_view>

namespace virtscale {
namespace {

std::optional<uint64_t> AsUnsigned(const virTypedParameter& p) {
  switch (p.type) {
    case VIR_TYPED_PARAM_ULLONG:
      return p.value.ul;
    case VIR_TYPED_PARAM_UINT:
      return p.value.ui;
    case VIR_TYPED_PARAM_LLONG:
      if (p.value.l >= 0) return static_cast<uint64_t>(p.value.l);
      return std::nullopt;
    case VIR_TYPED_PARAM_INT:
      if (p.value.i >= 0) return static_cast<uint64_t>(p.value.i);
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

}  // namespace

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
      {VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, &JobStats::memory_dirty_rate},
      {VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, &JobStats::memory_page_size},
      {VIR_DOMAIN_JOB_MEMORY_ITERATION, &JobStats::memory_iteration},
      {VIR_DOMAIN_JOB_MEMORY_BPS, &JobStats::memory_bps},
  };
  for (int i = 0; params != nullptr && i < nparams; ++i) {
    const virTypedParameter& p = params[i];
    std::string_view key(p.field, strnlen(p.field, VIR_TYPED_PARAM_FIELD_LENGTH));
    if (key == VIR_DOMAIN_JOB_OPERATION) {
      auto v = AsUnsigned(p);
      if (v && *v <= 255) job.operation = static_cast<int>(*v);
      continue;
    }
    for (const Named& n : kFields) {
      if (key == n.key) job.*(n.field) = AsUnsigned(p);
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

JobsCollectorResult CollectDomainJobs(const std::vector<JobTarget>& targets,
                                      const JobsCollectorOptions& options,
                                      std::vector<DomainStats>& domains) {
  const auto start = std::chrono::steady_clock::now();
  JobsCollectorResult out;
  out.collector.success = true;
  if (options.unsupported == nullptr || !options.unsupported->load()) {
    std::vector<std::shared_ptr<DomainJobCall>> calls;
    std::vector<DeadlineTask> tasks;
    calls.reserve(targets.size());
    tasks.reserve(targets.size());
    for (const JobTarget& t : targets) {
      auto call = std::make_shared<DomainJobCall>();
      calls.push_back(call);
      tasks.push_back({{domains[t.domain_index].uuid},
                       [dom = t.dom, call] { *call = GetDomainJob(dom.get()); }});
    }
    DeadlineRunResult run =
        RunWithDeadlines(std::move(tasks), options.workers, options.call_timeout, options.stuck);
    out.timed_out = run.timed_out;
    for (size_t k = 0; k < targets.size(); ++k) {
      DomainStats& d = domains[targets[k].domain_index];
      if (!run.finished[k]) {
        d.timed_out = true;
        out.collector.success = false;
        continue;
      }
      DomainJobCall& call = *calls[k];
      switch (call.outcome) {
        case DomainJobCall::kOk:
          d.job = std::move(call.job);
          break;
        case DomainJobCall::kUnsupported:
          if (options.unsupported != nullptr) options.unsupported->store(true);
          break;
        case DomainJobCall::kGone:
          break;
        case DomainJobCall::kFailed:
          d.errors.emplace_back("job_stats");
          out.connection_lost |= call.error.connection_lost;
          out.collector.success = false;
          if (options.errors != nullptr) options.errors->Record("job_stats", call.error, d.name);
          break;
      }
    }
  }
  out.collector.duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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

}  // namespace virtscale
