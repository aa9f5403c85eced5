#pragma once
// The immutable view of the host that one sample produces. The sampler builds a
// Snapshot, publishes it as shared_ptr<const Snapshot>, and never touches it
// again; /metrics and the autoscaler read it concurrently without locks.
//
// Optional fields are absent when the driver did not report them (never 0 as a
// stand-in), so the exposition skips the series and the autoscaler sees
// "missing data" rather than a fake zero.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace virtscale {

// Subset of virDomainState we distinguish; values equal libvirt's.
enum class DomainState : int {
  kNoState = 0,
  kRunning = 1,
  kBlocked = 2,
  kPaused = 3,
  kShutdown = 4,
  kShutoff = 5,
  kCrashed = 6,
  kPmSuspended = 7,
};
const char* DomainStateName(DomainState state);  // "running", "shutoff", ...

// Present on domains that virtscale created: the <metadata> element in its
// XML namespace (see autoscale/ownership). Adopted domains have none.
// A domain is OWNED by the group only when `uuid` equals the domain's own UUID
// (DESIGN.md "Ownership"); a copy carries the element but not its UUID.
struct VirtscaleMetadata {
  std::string group;
  std::string template_path;
  int64_t created_at_unix = 0;  // seconds
  std::string uuid;             // the domain's UUID at creation; empty before 0.2
  // SHA-256 of the template it was made from (DomainTemplate::content_hash);
  // empty for members created before `refresh:` existed.
  std::string template_hash;
};

// When the group last scaled, stamped on its members after every action (its
// own metadata element, also on adopted members) so cooldowns survive a restart.
struct ScaleStamp {
  std::string group;
  int64_t last_up_unix = 0;  // 0: never
  int64_t last_down_unix = 0;
};

// Operator state set through the lifecycle API (pause, protect), in its own
// metadata element on the group's members so it survives a restart. A pause
// is stored on every member; the newest `paused_changed_ms` among a group's
// members holds. Each change is stamped with unix milliseconds (0: never).
struct LifecycleStamp {
  std::string group;
  bool paused = false;
  int64_t paused_changed_ms = 0;
  bool is_protected = false;
  int64_t protected_changed_ms = 0;
};

struct VcpuStats {
  unsigned id = 0;
  std::optional<int> state;
  std::optional<uint64_t> time_ns;
  std::optional<uint64_t> wait_ns;
  std::optional<uint64_t> delay_ns;  // steal: time runnable but not running
};

struct BlockStats {
  std::string name;  // target dev, e.g. "vda"; unique within a domain
  std::string path;
  std::optional<uint64_t> rd_reqs, rd_bytes, rd_times_ns;
  std::optional<uint64_t> wr_reqs, wr_bytes, wr_times_ns;
  std::optional<uint64_t> fl_reqs, fl_times_ns;
  std::optional<uint64_t> errors;
  std::optional<uint64_t> allocation, capacity, physical;  // bytes
  std::optional<uint64_t> threshold;  // bytes; set by virDomainSetBlockThreshold
};

struct InterfaceStats {
  std::string name;  // target dev, e.g. "vnet0"; unique within a domain
  std::optional<uint64_t> rx_bytes, rx_pkts, rx_errs, rx_drop;
  std::optional<uint64_t> tx_bytes, tx_pkts, tx_errs, tx_drop;
};

// Balloon / memory stats, bytes.
struct MemoryStats {
  std::optional<uint64_t> current;  // balloon.current
  std::optional<uint64_t> maximum;  // balloon.maximum
  std::optional<uint64_t> swap_in, swap_out;
  std::optional<uint64_t> major_fault, minor_fault;  // counts
  std::optional<uint64_t> unused, available, usable, disk_caches, rss;
  std::optional<uint64_t> hugetlb_pgalloc = std::nullopt;  // counts
  std::optional<uint64_t> hugetlb_pgfail = std::nullopt;
  std::optional<int64_t> last_update_unix = std::nullopt;  // when the guest last reported
};

// The `perf` group: counters of the perf events enabled on the domain
// (<perf><event enabled='yes'/>). Events are named as libvirt names them.
struct PerfEvent {
  std::string name;  // "cpu_cycles", "cmt", ...; [a-z0-9_], bounded
  uint64_t value = 0;
};

// The `iothread` group, one entry per IOThread.
struct IothreadStats {
  unsigned id = 0;
  std::optional<uint64_t> poll_max_ns, poll_grow, poll_shrink;
};

// The `dirtyrate` group: the last calculation started by
// virDomainStartDirtyRateCalc (`virsh domdirtyrate-calc`).
struct DirtyRateStats {
  std::optional<int> calc_status;          // 0 unstarted, 1 measuring, 2 measured
  std::optional<int64_t> calc_start_time;  // seconds on QEMU's clock, not the epoch
  std::optional<int> calc_period_seconds;
  std::optional<uint64_t> mebibytes_per_second;  // libvirt's megabytes_per_second, MiB/s
  std::vector<std::pair<unsigned, uint64_t>> vcpu_mebibytes_per_second;  // vcpu id -> MiB/s
};

// The domain's current background job (virDomainGetJobStats): migration,
// save, dump, snapshot... Absent when no job runs or the driver has no jobs.
struct JobStats {
  int type = 0;       // virDomainJobType: 1 bounded, 2 unbounded (0 none is never kept)
  int operation = 0;  // virDomainJobOperation; 0 unknown
  std::optional<uint64_t> time_elapsed_ms, time_remaining_ms;
  std::optional<uint64_t> data_total, data_processed, data_remaining;  // bytes
  std::optional<uint64_t> memory_total, memory_processed, memory_remaining;
  std::optional<uint64_t> disk_total, disk_processed, disk_remaining;  // disk copies, bytes
  std::optional<uint64_t> memory_dirty_rate;                           // pages per second
  std::optional<uint64_t> memory_page_size;                            // bytes
  std::optional<uint64_t> memory_iteration;
  std::optional<uint64_t> memory_bps;  // transfer rate, bytes per second
};

struct DomainStats {
  std::string name;
  std::string uuid;
  std::string os_type;     // "hvm", "linux", ...
  std::string os_arch;     // "x86_64", ...; empty when the XML has none
  std::string os_machine;  // "pc-q35-7.2", ...; empty when the XML has none
  DomainState state = DomainState::kNoState;
  int state_reason = 0;
  bool active = false;  // running, paused, blocked: has live stats

  std::optional<unsigned> virtual_cpus;
  std::optional<uint64_t> max_memory_bytes;
  std::optional<uint64_t> memory_bytes;  // current allocation
  std::optional<uint64_t> cpu_time_ns;   // cpu.time
  std::optional<uint64_t> cpu_user_ns, cpu_system_ns;

  MemoryStats memory;
  std::vector<VcpuStats> vcpus;
  std::vector<BlockStats> blocks;
  std::vector<InterfaceStats> interfaces;
  std::vector<PerfEvent> perf_events;  // enabled `perf` group only
  std::optional<unsigned> iothread_count;
  std::vector<IothreadStats> iothreads;      // enabled `iothread` group only
  std::optional<DirtyRateStats> dirty_rate;  // enabled `dirtyrate` group only
  std::optional<JobStats> job;

  std::optional<VirtscaleMetadata> metadata;
  std::optional<ScaleStamp> scale_stamp;
  std::optional<LifecycleStamp> lifecycle;
  // libvirt.metadata_labels values, in Snapshot::metadata_label_names order;
  // empty when none are configured or the domain XML was never read.
  std::vector<std::string> metadata_labels;

  // Derived from this and the previous sample of the same UUID.
  std::optional<double> cpu_utilization;     // 0..1 of virtual_cpus
  std::optional<double> memory_utilization;  // 0..1

  // Per-domain faults; the domain is still exported with what was obtained.
  bool timed_out = false;           // a call exceeded libvirt.call_timeout
  std::vector<std::string> errors;  // short reasons, e.g. "memory_stats"
};

struct HostStats {
  std::optional<unsigned> cpus;
  std::optional<uint64_t> memory_total_bytes;
  std::optional<uint64_t> memory_free_bytes;
  std::map<std::string, uint64_t> cpu_time_ns;  // mode -> ns (user, system, idle, iowait)
};

// virStoragePoolState; values equal libvirt's. A newer libvirt may report a
// code past kInaccessible: it is kept as is and named "unknown".
enum class StoragePoolState : int {
  kInactive = 0,
  kBuilding = 1,
  kRunning = 2,
  kDegraded = 3,
  kInaccessible = 4,
};
const char* StoragePoolStateName(StoragePoolState state);  // "running", ..., "unknown"

struct StoragePoolStats {
  std::string name;
  std::string type;  // the pool XML's <pool type=...>: "dir", "logical", ...; empty if unread
  StoragePoolState state = StoragePoolState::kInactive;
  // Bytes, from virStoragePoolGetInfo; present only while running or degraded
  // (as `virsh pool-info` shows them): in other states libvirt has not
  // measured the pool and reports stale figures or 0.
  std::optional<uint64_t> capacity_bytes, allocation_bytes, available_bytes;
};

// One collector's outcome within a sample (node_exporter style).
struct CollectorResult {
  std::string name;
  double duration_seconds = 0;
  bool success = false;
};

struct Snapshot {
  std::chrono::system_clock::time_point taken_at{};
  std::chrono::steady_clock::time_point taken_at_steady{};
  double duration_seconds = 0;
  uint64_t sequence = 0;  // 1 for the first sample
  bool libvirt_up = false;
  // LibvirtConnection::generation() when the sample began (0: never connected).
  uint64_t connection_generation = 0;
  std::string libvirt_uri;
  HostStats host;
  std::vector<DomainStats> domains;  // sorted by name
  // Sorted by name; empty when the pool list failed or timed out this sample
  // (the "storage_pools" collector result says so).
  std::vector<StoragePoolStats> storage_pools;
  std::vector<CollectorResult> collectors;
  std::vector<std::string> metadata_label_names;  // libvirt.metadata_labels in force
  int skipped_devices = 0;  // devices dropped in this sample for an empty or repeated name

  const DomainStats* FindDomain(const std::string& name) const;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace virtscale
