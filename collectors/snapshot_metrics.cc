#include "collectors/snapshot_metrics.h"

#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "collectors/domain_jobs.h"
#include "common/metric_families.h"
#include "common/utf8.h"

namespace virtscale {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

constexpr double kNs = 1e9;  // ns per second; divide (exact for round values)

// The inovex exporter's state_desc values, so its dashboards keep working.
const char* StateDescription(DomainState state) {
  switch (state) {
    case DomainState::kRunning:
      return "the domain is running";
    case DomainState::kBlocked:
      return "the domain is blocked on resource";
    case DomainState::kPaused:
      return "the domain is paused by user";
    case DomainState::kShutdown:
      return "the domain is being shut down";
    case DomainState::kShutoff:
      return "the domain is shut off";
    case DomainState::kCrashed:
      return "the domain is crashed";
    case DomainState::kPmSuspended:
      return "the domain is suspended by guest power management";
    case DomainState::kNoState:
      break;
  }
  return "no state";
}

// libvirt's virDomain<State>Reason enumerators, lower case, by state: the
// reason codes mean something else in each state (libvirt-domain.h).
const char* StateReasonName(DomainState state, int reason) {
  static constexpr const char* kRunning[] = {
      "unknown",       "booted",   "migrated",           "restored",
      "from_snapshot", "unpaused", "migration_canceled", "save_canceled",
      "wakeup",        "crashed",  "postcopy",           "postcopy_failed"};
  static constexpr const char* kPaused[] = {
      "unknown", "user",        "migration",     "save",           "dump",
      "ioerror", "watchdog",    "from_snapshot", "shutting_down",  "snapshot",
      "crashed", "starting_up", "postcopy",      "postcopy_failed"};
  static constexpr const char* kShutdown[] = {"unknown", "user"};
  static constexpr const char* kShutoff[] = {"unknown", "shutdown",      "destroyed",
                                             "crashed", "migrated",      "saved",
                                             "failed",  "from_snapshot", "daemon"};
  static constexpr const char* kCrashed[] = {"unknown", "panicked"};
  static constexpr const char* kOnlyUnknown[] = {"unknown"};
  std::span<const char* const> names = kOnlyUnknown;
  switch (state) {
    case DomainState::kRunning:
      names = kRunning;
      break;
    case DomainState::kPaused:
      names = kPaused;
      break;
    case DomainState::kShutdown:
      names = kShutdown;
      break;
    case DomainState::kShutoff:
      names = kShutoff;
      break;
    case DomainState::kCrashed:
      names = kCrashed;
      break;
    case DomainState::kNoState:
    case DomainState::kBlocked:
    case DomainState::kPmSuspended:
      break;
  }
  // A code newer than this build (or garbage from the driver) is "unknown".
  if (reason < 0 || static_cast<size_t>(reason) >= names.size()) return "unknown";
  return names[static_cast<size_t>(reason)];
}

void AppendMemory(MetricFamilies& f, const Labels& l, const MemoryStats& m) {
  f.Gauge("libvirt_domain_memory_stats_current_balloon_bytes",
          "Current balloon size of the domain, in bytes.", l, m.current);
  f.Gauge("libvirt_domain_memory_stats_maximum_bytes",
          "Maximum memory the balloon may give the domain, in bytes.", l, m.maximum);
  f.Gauge("libvirt_domain_memory_stats_swap_in_bytes",
          "Memory swapped in by the guest since boot, in bytes.", l, m.swap_in);
  f.Gauge("libvirt_domain_memory_stats_swap_out_bytes",
          "Memory swapped out by the guest since boot, in bytes.", l, m.swap_out);
  f.Counter("libvirt_domain_memory_stats_major_fault_total",
            "Major page faults in the guest (disk I/O needed).", l, m.major_fault);
  f.Counter("libvirt_domain_memory_stats_minor_fault_total",
            "Minor page faults in the guest (no disk I/O).", l, m.minor_fault);
  f.Gauge("libvirt_domain_memory_stats_unused_bytes",
          "Memory left completely unused by the guest, in bytes.", l, m.unused);
  f.Gauge("libvirt_domain_memory_stats_available_bytes",
          "Memory the guest sees as total, in bytes.", l, m.available);
  f.Gauge("libvirt_domain_memory_stats_usable_bytes",
          "Memory the guest could use without swapping (MemAvailable), in bytes.", l, m.usable);
  f.Gauge("libvirt_domain_memory_stats_disk_caches_bytes",
          "Guest memory reclaimable without I/O (disk caches), in bytes.", l, m.disk_caches);
  f.Gauge("libvirt_domain_memory_stats_rss_bytes",
          "Resident set size of the domain's process on the host, in bytes.", l, m.rss);
  f.Counter("libvirt_domain_memory_stats_hugetlb_pgalloc_total",
            "Huge page allocations in the guest.", l, m.hugetlb_pgalloc);
  f.Counter("libvirt_domain_memory_stats_hugetlb_pgfail_total",
            "Failed huge page allocations in the guest.", l, m.hugetlb_pgfail);
  f.Gauge("libvirt_domain_memory_stats_last_update_timestamp_seconds",
          "When the guest's balloon driver last updated its statistics, in seconds since the "
          "epoch.",
          l, m.last_update_unix);
}

void AppendPerf(MetricFamilies& f, const std::string& domain,
                const std::vector<PerfEvent>& events) {
  for (const PerfEvent& e : events) {
    const double v = static_cast<double>(e.value);
    if (e.name == "cmt") {
      f.Gauge("libvirt_domain_perf_cache_occupancy_bytes",
              "Last-level cache the domain occupies (perf event cmt), in bytes.",
              {{"domain", domain}}, v);
    } else if (e.name == "mbmt" || e.name == "mbml") {
      f.Gauge("libvirt_domain_perf_memory_bandwidth_bytes_per_second",
              "Memory bandwidth of the domain (perf events mbmt, mbml), by scope.",
              {{"domain", domain}, {"scope", e.name == "mbmt" ? "total" : "local"}}, v);
    } else if (e.name == "cpu_clock" || e.name == "task_clock") {
      f.Counter("libvirt_domain_perf_clock_seconds_total",
                "CPU time the perf clocks of the domain counted (cpu_clock, task_clock).",
                {{"domain", domain}, {"clock", e.name}}, v / kNs);
    } else {
      f.Counter("libvirt_domain_perf_events_total",
                "Perf event count of the domain (libvirt's perf.<event>).",
                {{"domain", domain}, {"event", e.name}}, v);
    }
  }
}

void AppendIothreads(MetricFamilies& f, const DomainStats& d) {
  f.Gauge("libvirt_domain_iothreads", "Number of IOThreads of the domain.", {{"domain", d.name}},
          d.iothread_count);
  for (const IothreadStats& t : d.iothreads) {
    Labels l = {{"domain", d.name}, {"iothread", std::to_string(t.id)}};
    f.Gauge("libvirt_domain_iothread_poll_max_seconds",
            "Longest time the IOThread polls before it sleeps (0: polling off).", l, t.poll_max_ns,
            kNs);
    f.Gauge("libvirt_domain_iothread_poll_grow",
            "Factor the IOThread's polling time grows by (0: the hypervisor's default).", l,
            t.poll_grow);
    f.Gauge("libvirt_domain_iothread_poll_shrink",
            "Divisor the IOThread's polling time shrinks by (0: the hypervisor's default).", l,
            t.poll_shrink);
  }
}

constexpr double kMiB = 1024.0 * 1024.0;

void AppendDirtyRate(MetricFamilies& f, const std::string& domain, const DirtyRateStats& r) {
  const Labels l = {{"domain", domain}};
  f.Gauge("libvirt_domain_dirty_rate_calc_status",
          "State of the last dirty-rate calculation (0 unstarted, 1 measuring, 2 measured).", l,
          r.calc_status);
  f.Gauge(
      "libvirt_domain_dirty_rate_calc_start_time_seconds",
      "When the last dirty-rate calculation started, in seconds on QEMU's clock (not the epoch).",
      l, r.calc_start_time);
  f.Gauge("libvirt_domain_dirty_rate_calc_period_seconds",
          "How long the last dirty-rate calculation measured.", l, r.calc_period_seconds);
  if (r.calc_status != 2) return;  // a rate is meaningful only once measured
  if (r.mebibytes_per_second) {
    f.Gauge("libvirt_domain_dirty_rate_bytes_per_second",
            "Guest memory dirtied per second in the last dirty-rate calculation.", l,
            static_cast<double>(*r.mebibytes_per_second) * kMiB);
  }
  for (const auto& [vcpu, mib] : r.vcpu_mebibytes_per_second) {
    f.Gauge("libvirt_domain_dirty_rate_vcpu_bytes_per_second",
            "Guest memory dirtied per second by each vCPU (dirty-ring mode).",
            {{"domain", domain}, {"vcpu", std::to_string(vcpu)}}, static_cast<double>(mib) * kMiB);
  }
}

// The names are inovex's (libvirt_domain_job_info_*), which export the same
// quantities; the extra migration figures follow the same prefix.
void AppendJob(MetricFamilies& f, const std::string& domain, const JobStats& j) {
  f.Gauge("libvirt_domain_job_info", "The domain's background job in progress; always 1.",
          {{"domain", domain},
           {"type", JobTypeName(j.type)},
           {"operation", JobOperationName(j.operation)}},
          1);
  const Labels l = {{"domain", domain}};
  f.Gauge("libvirt_domain_job_info_type", "Code of the job type (1 bounded, 2 unbounded).", l,
          j.type);
  f.Gauge("libvirt_domain_job_info_time_elapsed_seconds", "Time since the job started.", l,
          j.time_elapsed_ms, 1e3);
  f.Gauge("libvirt_domain_job_info_time_remaining_seconds",
          "Estimated time until the job ends (bounded jobs).", l, j.time_remaining_ms, 1e3);
  f.Gauge("libvirt_domain_job_info_data_total_bytes", "Bytes the job has to process in total.", l,
          j.data_total);
  f.Gauge("libvirt_domain_job_info_data_processed_bytes", "Bytes the job has processed so far.", l,
          j.data_processed);
  f.Gauge("libvirt_domain_job_info_data_remaining_bytes", "Bytes the job still has to process.", l,
          j.data_remaining);
  f.Gauge("libvirt_domain_job_info_memory_total_bytes", "Guest memory the job has to transfer.", l,
          j.memory_total);
  f.Gauge("libvirt_domain_job_info_memory_processed_bytes", "Guest memory transferred so far.", l,
          j.memory_processed);
  f.Gauge("libvirt_domain_job_info_memory_remaining_bytes", "Guest memory still to transfer.", l,
          j.memory_remaining);
  f.Gauge("libvirt_domain_job_info_file_total_bytes", "Disk data the job has to copy.", l,
          j.disk_total);
  f.Gauge("libvirt_domain_job_info_file_processed_bytes", "Disk data copied so far.", l,
          j.disk_processed);
  f.Gauge("libvirt_domain_job_info_file_remaining_bytes", "Disk data still to copy.", l,
          j.disk_remaining);
  f.Gauge("libvirt_domain_job_info_memory_dirty_rate_pages_per_second",
          "Guest pages dirtied per second while the job runs (migration).", l, j.memory_dirty_rate);
  f.Gauge("libvirt_domain_job_info_memory_page_size_bytes",
          "Page size the dirty rate counts in, in bytes.", l, j.memory_page_size);
  f.Gauge("libvirt_domain_job_info_memory_iteration",
          "Passes over guest memory so far (migration; grows while pages are dirtied).", l,
          j.memory_iteration);
  f.Gauge("libvirt_domain_job_info_memory_transfer_bytes_per_second",
          "Rate guest memory is transferred at, in bytes per second.", l, j.memory_bps);
}

void AppendVcpus(MetricFamilies& f, const std::string& domain,
                 const std::vector<VcpuStats>& vcpus) {
  for (const VcpuStats& v : vcpus) {
    Labels l = {{"domain", domain}, {"vcpu", std::to_string(v.id)}};
    f.Gauge("libvirt_domain_vcpu_state", "State of the vCPU (0 offline, 1 running, 2 blocked).", l,
            v.state);
    f.Counter("libvirt_domain_vcpu_time_seconds_total", "Time spent by the virtual CPU.", l,
              v.time_ns, kNs);
    f.Counter("libvirt_domain_vcpu_wait_seconds_total",
              "Time the vCPU wanted to run but waited on I/O or other host work.", l, v.wait_ns,
              kNs);
    f.Counter("libvirt_domain_vcpu_delay_seconds_total",
              "Time the vCPU was runnable but waiting for a host CPU (guest steal time).", l,
              v.delay_ns, kNs);
  }
}

void AppendBlocks(MetricFamilies& f, const std::string& domain,
                  const std::vector<BlockStats>& blocks) {
  for (const BlockStats& b : blocks) {
    Labels l = {{"domain", domain}, {"target_device", b.name}};
    if (!b.path.empty()) {
      f.Gauge("libvirt_domain_block_stats_info", "Block device identity; always 1.",
              {{"domain", domain}, {"target_device", b.name}, {"source_file", b.path}}, 1);
    }
    f.Counter("libvirt_domain_block_stats_read_bytes_total", "Bytes read from the block device.", l,
              b.rd_bytes);
    f.Counter("libvirt_domain_block_stats_read_requests_total",
              "Read requests to the block device.", l, b.rd_reqs);
    f.Counter("libvirt_domain_block_stats_read_time_seconds_total",
              "Time spent on reads from the block device.", l, b.rd_times_ns, kNs);
    f.Counter("libvirt_domain_block_stats_write_bytes_total", "Bytes written to the block device.",
              l, b.wr_bytes);
    f.Counter("libvirt_domain_block_stats_write_requests_total",
              "Write requests to the block device.", l, b.wr_reqs);
    f.Counter("libvirt_domain_block_stats_write_time_seconds_total",
              "Time spent on writes to the block device.", l, b.wr_times_ns, kNs);
    f.Counter("libvirt_domain_block_stats_flush_requests_total",
              "Flush requests to the block device.", l, b.fl_reqs);
    f.Counter("libvirt_domain_block_stats_flush_time_seconds_total",
              "Time spent on flushes to the block device.", l, b.fl_times_ns, kNs);
    f.Counter("libvirt_domain_block_stats_errors_total", "I/O errors on the block device.", l,
              b.errors);
    f.Gauge("libvirt_domain_block_stats_allocation_bytes",
            "Bytes of the block device's image allocated on the host.", l, b.allocation);
    f.Gauge("libvirt_domain_block_stats_capacity_bytes",
            "Logical size of the block device as the guest sees it, in bytes.", l, b.capacity);
    f.Gauge("libvirt_domain_block_stats_physical_bytes",
            "Physical size of the block device's backing storage, in bytes.", l, b.physical);
    f.Gauge("libvirt_domain_block_stats_threshold_bytes",
            "Write threshold set on the block device (virDomainSetBlockThreshold), in bytes.", l,
            b.threshold);
  }
}

void AppendInterfaces(MetricFamilies& f, const std::string& domain,
                      const std::vector<InterfaceStats>& nets) {
  for (const InterfaceStats& n : nets) {
    Labels l = {{"domain", domain}, {"target_device", n.name}};
    f.Counter("libvirt_domain_interface_stats_receive_bytes_total",
              "Bytes received on the network interface.", l, n.rx_bytes);
    f.Counter("libvirt_domain_interface_stats_receive_packets_total",
              "Packets received on the network interface.", l, n.rx_pkts);
    f.Counter("libvirt_domain_interface_stats_receive_errors_total",
              "Receive errors on the network interface.", l, n.rx_errs);
    f.Counter("libvirt_domain_interface_stats_receive_drops_total",
              "Received packets dropped on the network interface.", l, n.rx_drop);
    f.Counter("libvirt_domain_interface_stats_transmit_bytes_total",
              "Bytes transmitted on the network interface.", l, n.tx_bytes);
    f.Counter("libvirt_domain_interface_stats_transmit_packets_total",
              "Packets transmitted on the network interface.", l, n.tx_pkts);
    f.Counter("libvirt_domain_interface_stats_transmit_errors_total",
              "Transmit errors on the network interface.", l, n.tx_errs);
    f.Counter("libvirt_domain_interface_stats_transmit_drops_total",
              "Transmitted packets dropped on the network interface.", l, n.tx_drop);
  }
}

void AppendDomain(MetricFamilies& f, const DomainStats& d,
                  const std::vector<std::string>& metadata_label_names) {
  const Labels l = {{"domain", d.name}};
  if (!metadata_label_names.empty() && d.metadata_labels.size() == metadata_label_names.size()) {
    Labels labels = l;
    for (size_t i = 0; i < metadata_label_names.size(); ++i) {
      labels.push_back({metadata_label_names[i], d.metadata_labels[i]});
    }
    f.Gauge("libvirt_domain_metadata_info",
            "Labels read from the domain XML's metadata (libvirt.metadata_labels); always 1.",
            std::move(labels), 1);
  }
  f.Gauge("libvirt_domain_info", "Domain identity; always 1.",
          {{"domain", d.name},
           {"uuid", d.uuid},
           {"os_type", d.os_type},
           {"os_type_arch", d.os_arch},
           {"os_type_machine", d.os_machine}},
          1);
  if (d.metadata) {
    f.Gauge(
        "virtscale_domain_metadata_info",
        "virtscale ownership metadata of a domain virtscale created; always 1.",
        {{"domain", d.name}, {"group", d.metadata->group}, {"template", d.metadata->template_path}},
        1);
    f.Gauge("virtscale_domain_created_timestamp_seconds",
            "When virtscale created the domain, in seconds since the epoch.", l,
            static_cast<double>(d.metadata->created_at_unix));
  }
  f.Gauge("libvirt_domain_info_state", "Domain state code (libvirt virDomainState).",
          {{"domain", d.name}, {"state_desc", StateDescription(d.state)}},
          static_cast<double>(d.state));
  f.Gauge("libvirt_domain_info_state_reason",
          "Why the domain is in its state: libvirt's virDomain<State>Reason code, named by "
          "the reason label.",
          {{"domain", d.name}, {"reason", StateReasonName(d.state, d.state_reason)}},
          static_cast<double>(d.state_reason));
  f.Gauge("libvirt_domain_info_maximum_memory_bytes", "Maximum memory of the domain, in bytes.", l,
          d.max_memory_bytes);
  f.Gauge("libvirt_domain_info_memory_usage_bytes",
          "Memory currently allocated to the domain, in bytes.", l, d.memory_bytes);
  f.Gauge("libvirt_domain_info_virtual_cpus", "Number of virtual CPUs of the domain.", l,
          d.virtual_cpus);
  f.Counter("libvirt_domain_info_cpu_time_seconds_total", "CPU time used by the domain.", l,
            d.cpu_time_ns, kNs);
  f.Counter("libvirt_domain_cpu_stats_user_seconds_total",
            "User-mode CPU time of the domain's process on the host.", l, d.cpu_user_ns, kNs);
  f.Counter("libvirt_domain_cpu_stats_system_seconds_total",
            "Kernel-mode CPU time of the domain's process on the host.", l, d.cpu_system_ns, kNs);
  AppendMemory(f, l, d.memory);
  AppendVcpus(f, d.name, d.vcpus);
  AppendBlocks(f, d.name, d.blocks);
  AppendInterfaces(f, d.name, d.interfaces);
  AppendPerf(f, d.name, d.perf_events);
  AppendIothreads(f, d);
  if (d.dirty_rate) AppendDirtyRate(f, d.name, *d.dirty_rate);
  if (d.job) AppendJob(f, d.name, *d.job);
  f.Gauge("virtscale_domain_cpu_utilization_ratio",
          "CPU used over the last sample interval, as a ratio of the domain's vCPUs (0..1).", l,
          d.cpu_utilization);
  f.Gauge("virtscale_domain_memory_utilization_ratio",
          "Guest-used memory ratio from balloon stats, else host RSS / current memory (0..1).", l,
          d.memory_utilization);
  f.Gauge("virtscale_domain_timed_out",
          "1 when a libvirt call for the domain exceeded the call timeout in this sample.", l,
          d.timed_out ? 1 : 0);
  for (const std::string& call : d.errors) {
    f.Gauge("virtscale_domain_errors",
            "1 for each libvirt call that failed for the domain in this sample.",
            {{"domain", d.name}, {"call", call}}, 1);
  }
}

// The collector repairs names where they enter; repairing here as well keeps
// any snapshot's exposition valid UTF-8. Two names that repair to the same
// label would be duplicate series: the first (by name) is kept.
void AppendStoragePools(MetricFamilies& f, const std::vector<StoragePoolStats>& pools) {
  std::unordered_set<std::string> seen;
  for (const StoragePoolStats& p : pools) {
    std::string name = ValidUtf8(p.name);
    if (!seen.insert(name).second) continue;
    f.Gauge("libvirt_storage_pool_info", "Storage pool identity, type and state; always 1.",
            {{"storage_pool", name},
             {"type", ValidUtf8(p.type)},
             {"state", StoragePoolStateName(p.state)}},
            1);
    const Labels l = {{"storage_pool", name}};
    f.Gauge("libvirt_storage_pool_state",
            "Code of the storage pool state (0 inactive, 1 building, 2 running, 3 degraded, 4 "
            "inaccessible).",
            l, static_cast<int>(p.state));
    f.Gauge("libvirt_storage_pool_capacity_bytes", "Logical size of the storage pool, in bytes.", l,
            p.capacity_bytes);
    f.Gauge("libvirt_storage_pool_allocation_bytes",
            "Bytes of the storage pool allocated to volumes.", l, p.allocation_bytes);
    f.Gauge("libvirt_storage_pool_available_bytes",
            "Bytes of the storage pool free for new volumes.", l, p.available_bytes);
  }
}

void AddSnapshot(MetricFamilies& f, const Snapshot& snapshot) {
  f.Gauge("libvirt_up", "1 when the last sample could talk to libvirt.", {},
          snapshot.libvirt_up ? 1 : 0);
  f.Gauge("libvirt_domains", "Number of domains libvirt knows (running or not).", {},
          static_cast<double>(snapshot.domains.size()));
  for (const DomainStats& d : snapshot.domains) AppendDomain(f, d, snapshot.metadata_label_names);

  const HostStats& h = snapshot.host;
  f.Gauge("libvirt_node_cpus", "Number of logical CPUs of the host.", {}, h.cpus);
  f.Gauge("libvirt_node_memory_total_bytes", "Memory of the host, in bytes.", {},
          h.memory_total_bytes);
  f.Gauge("libvirt_node_memory_free_bytes", "Free memory of the host, in bytes.", {},
          h.memory_free_bytes);
  for (const auto& [mode, ns] : h.cpu_time_ns) {
    f.Counter("libvirt_node_cpu_seconds_total", "CPU time of the host by mode, all CPUs.",
              {{"mode", mode}}, static_cast<double>(ns) / kNs);
  }
  AppendStoragePools(f, snapshot.storage_pools);

  f.Gauge("virtscale_sample_duration_seconds", "How long the last sample of libvirt took.", {},
          snapshot.duration_seconds);
  f.Gauge("virtscale_sample_timestamp_seconds",
          "When the last sample was taken, in seconds since the epoch.", {},
          std::chrono::duration<double>(snapshot.taken_at.time_since_epoch()).count());
  for (const CollectorResult& c : snapshot.collectors) {
    f.Gauge("virtscale_scrape_collector_duration_seconds",
            "How long each collector took in the last sample.", {{"collector", c.name}},
            c.duration_seconds);
    f.Gauge("virtscale_scrape_collector_success",
            "1 when the collector succeeded in the last sample.", {{"collector", c.name}},
            c.success ? 1 : 0);
  }
}

}  // namespace

void AppendSnapshotFamilies(const Snapshot& snapshot, std::vector<MetricFamily>& families) {
  MetricFamilies f;
  AddSnapshot(f, snapshot);
  f.MoveTo(families);
}

std::string SnapshotText(const Snapshot& snapshot) {
  MetricFamilies f(MetricFamilies::Form::kText);
  AddSnapshot(f, snapshot);
  return f.TakeText();
}

void AppendSamplerFamilies(const SnapshotPtr& latest, const SamplerCounters& counters,
                           std::chrono::steady_clock::time_point now,
                           std::vector<MetricFamily>& families) {
  MetricFamilies f;
  if (latest != nullptr) {
    double age = std::chrono::duration<double>(now - latest->taken_at_steady).count();
    f.Gauge("virtscale_sample_age_seconds", "Seconds since the served sample was taken.", {},
            age < 0 ? 0 : age);
  }
  f.Counter("virtscale_samples_total", "Samples of libvirt taken.", {},
            static_cast<double>(counters.samples_total));
  std::map<std::string, uint64_t> events;
  for (const std::string& name : DomainEventNames()) events[name] = 0;
  for (const auto& [name, count] : counters.domain_events_total) events[name] = count;
  for (const auto& [name, count] : events) {
    f.Counter("virtscale_domain_events_total", "libvirt domain lifecycle events received.",
              {{"event", name}}, static_cast<double>(count));
  }
  f.Counter("virtscale_skipped_devices_total",
            "Block or network devices dropped for an empty or repeated name.", {},
            static_cast<double>(counters.skipped_devices_total));
  f.Counter("virtscale_call_timeouts_total", "libvirt calls abandoned after the call timeout.", {},
            static_cast<double>(counters.timed_out_calls_total));
  f.Gauge("virtscale_stuck_calls", "Abandoned libvirt calls that have not returned yet.", {},
          static_cast<double>(counters.stuck_calls));
  for (const auto& [key, count] : counters.call_errors_total) {
    f.Counter("virtscale_libvirt_call_errors_total",
              "Failed libvirt calls of the sampler, by call and libvirt error code.",
              {{"call", key.first}, {"code", std::to_string(key.second)}},
              static_cast<double>(count));
  }
  f.MoveTo(families);
}

std::vector<MetricFamily> SamplerCollectable::Collect() const {
  std::vector<MetricFamily> families;
  SnapshotPtr latest = sampler_.Latest();
  if (latest != nullptr) AppendSnapshotFamilies(*latest, families);
  AppendSamplerFamilies(latest, sampler_.Counters(), std::chrono::steady_clock::now(), families);
  return families;
}

}  // namespace virtscale
