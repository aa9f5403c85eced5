#pragma once
// The "domains" collector: every domain libvirt knows, with its state and the
// enabled stat groups. A sample of it has three steps:
//   1. List: virConnectListAllDomains, under the call deadline.
//   2. AddBulkTasks: virDomainListGetStats over shards of the listed domains,
//      as deadline tasks that run beside the other collectors' calls.
//   3. Finish: per-domain calls where the bulk call left gaps (drivers without
//      a group, inactive domains) and the domain XML on an identity-cache miss,
//      then one DomainStats per domain with CPU and memory utilisation.
// The collector keeps what outlives a sample: the cached XML facts
// ("identities"), the last CPU time of each domain, and which calls the
// driver lacks. Success is false when the list failed or every bulk call did.
//
//   DomainsCollector domains;
//   DomainsSample sample = domains.List(conn, calls);
//   domains.AddBulkTasks(sample, groups, workers, tasks);   // beside host, pools, jobs
//   DeadlineRunResult run = RunWithDeadlines(std::move(tasks), ...);
//   DomainsCollectorResult r = domains.Finish(sample, run, previous, calls, snapshot);
#include <libvirt/libvirt.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "collectors/call_errors.h"
#include "collectors/deadline_runner.h"
#include "collectors/domain_stats_parser.h"
#include "collectors/libvirt_connection.h"
#include "collectors/metadata_labels.h"
#include "collectors/snapshot.h"
#include "common/duration.h"

namespace virtscale {

struct DomainIdentity;  // cached XML facts of one domain (domains_collector.cc)
struct ShardResult;     // one bulk stats call's answer (domains_collector.cc)

// What every libvirt call of a sample shares.
struct SampleCalls {
  std::string uri;                       // for log lines
  Duration timeout;                      // libvirt.call_timeout, per call
  std::shared_ptr<StuckCalls> stuck;     // calls abandoned at the deadline
  std::shared_ptr<CallErrorLog> errors;  // failed calls, counted and logged
};

struct ListedDomain {
  std::shared_ptr<virDomain> dom;
  std::string name;
  std::string uuid;
};

// One sample of the collector, from List to Finish.
struct DomainsSample {
  bool listed = false;  // the list call finished and succeeded
  bool connection_lost = false;
  uint64_t timed_out_calls = 0;
  std::vector<ListedDomain> live;  // listed, with no call of theirs stuck
  std::vector<DomainStats> stuck;  // listed, a call of theirs still stuck
  std::chrono::steady_clock::time_point start;
  // Filled by AddBulkTasks.
  StatGroups groups = 0;
  int workers = 1;
  std::vector<std::shared_ptr<ShardResult>> shards;
  std::vector<std::pair<size_t, size_t>> shard_ranges;  // [begin, end) into live
  size_t first_shard_task = 0;
};

struct DomainsCollectorResult {
  CollectorResult collector{"domains", 0, false};
  bool connection_lost = false;
  uint64_t timed_out_calls = 0;
  int skipped_devices = 0;
};

class DomainsCollector {
 public:
  DomainsCollector();
  ~DomainsCollector();
  DomainsCollector(const DomainsCollector&) = delete;
  DomainsCollector& operator=(const DomainsCollector&) = delete;

  // Drops the cached XML facts of the domains of these names.
  void Forget(const std::vector<std::string>& names);
  // The labels identities are read with; a change drops every cached identity.
  void UseMetadataLabels(const std::shared_ptr<const MetadataLabels>& labels);

  // Step 1 (blocks up to calls.timeout). `workers`: 0 = auto (up to 4).
  DomainsSample List(const ConnectionRef& conn, const SampleCalls& calls, int workers) const;
  // Step 2: appends one bulk stats task per shard of sample.live to `tasks`.
  void AddBulkTasks(const ConnectionRef& conn, StatGroups groups, DomainsSample& sample,
                    std::vector<DeadlineTask>& tasks) const;
  // Step 3, after the run over `tasks`: the per-domain calls (blocks up to
  // calls.timeout), then every listed domain into `domains`, unsorted.
  // `previous`: the last snapshot (state of timed-out domains), may be null.
  DomainsCollectorResult Finish(const DomainsSample& sample, const DeadlineRunResult& bulk,
                                const Snapshot* previous, const SampleCalls& calls,
                                Duration identity_ttl, std::vector<DomainStats>& domains);

 private:
  struct CpuMark {
    uint64_t cpu_time_ns = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::unordered_map<std::string, std::shared_ptr<const DomainIdentity>> identities_;  // UUID
  std::unordered_map<std::string, CpuMark> cpu_marks_;                                 // UUID
  // Shared with call tasks, which may outlive a sample when abandoned.
  std::shared_ptr<std::atomic<bool>> nowait_supported_ = std::make_shared<std::atomic<bool>>(true);
  std::shared_ptr<std::atomic<unsigned>> unsupported_calls_ =
      std::make_shared<std::atomic<unsigned>>(0);
  std::shared_ptr<const MetadataLabels> labels_;
};

}  // namespace virtscale
