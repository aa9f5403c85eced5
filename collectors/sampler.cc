#include "collectors/sampler.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <cstdlib>
#include <unordered_set>
#include <utility>

#include "collectors/domain_jobs.h"
#include "collectors/domain_metadata.h"
#include "collectors/libvirt_error.h"
#include "collectors/storage_pools.h"
#include "common/log.h"

namespace virtscale {

struct DomainIdentity {
  std::string name;
  std::string os_type, os_arch, os_machine;
  std::vector<DomainXmlInfo::Disk> disks;
  std::vector<std::string> interfaces;
  std::optional<VirtscaleMetadata> metadata;
  std::optional<ScaleStamp> scale_stamp;
  std::optional<LifecycleStamp> lifecycle;
  std::vector<std::string> metadata_labels;  // values of libvirt.metadata_labels
  std::chrono::steady_clock::time_point fetched_at;
};

namespace {

using Clock = std::chrono::steady_clock;
using DomainRef = std::shared_ptr<virDomain>;
using UnsupportedFlags = std::shared_ptr<std::atomic<unsigned>>;

// Per-domain calls a driver may lack; once it says so we stop asking.
enum UnsupportedCall : unsigned {
  kNoMemoryStats = 1 << 0,
  kNoVcpus = 1 << 1,
  kNoBlockStats = 1 << 2,
  kNoBlockInfo = 1 << 3,
  kNoInterfaceStats = 1 << 4,
  kNoMetadata = 1 << 5,
};

// How often a running domain without a job is asked whether one started.
constexpr Duration kJobRecheck = std::chrono::seconds(15);

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool IsUnsupported(const LibvirtError& e) {
  return e.code == VIR_ERR_NO_SUPPORT || e.code == VIR_ERR_ARGUMENT_UNSUPPORTED ||
         e.code == VIR_ERR_OPERATION_UNSUPPORTED || e.code == VIR_ERR_OPERATION_INVALID;
}

DomainRef WrapDomain(virDomainPtr d) {
  return DomainRef(d, [](virDomainPtr p) { virDomainFree(p); });
}

std::string DomainUuid(virDomainPtr d) {
  char buf[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(d, buf) < 0) return {};
  return buf;
}

std::optional<uint64_t> NonNegative(long long v) {
  if (v < 0) return std::nullopt;  // libvirt: -1 = not supported by the driver
  return static_cast<uint64_t>(v);
}

int WorkerCount(const SamplerOptions& opts, size_t domains) {
  if (opts.workers > 0) return opts.workers;
  // libvirtd spends ~5 ms per KVM domain in QMP and cgroup reads, so a second
  // shard pays off from a few domains on (12 guests: 2 shards 0.70x the time of
  // one); at most 4 (measured: 4 shards beat 1 on 2 cores).
  return static_cast<int>(std::clamp<size_t>((domains + 3) / 4, 1, 4));
}

// Records a failed call: unsupported calls are remembered and not errors.
struct CallErrors {
  std::vector<std::string>* errors;
  bool* connection_lost;
  UnsupportedFlags unsupported;
  const std::string* domain;
  bool* vanished;  // set when the domain is gone (undefined since the list); may be null
  CallErrorLog* log;

  void Fail(const char* call, unsigned unsupported_bit = 0) {
    LibvirtError err = LastLibvirtError();
    if (unsupported_bit != 0 && IsUnsupported(err)) {
      unsupported->fetch_or(unsupported_bit);
      return;
    }
    // A domain that is gone is not a failing one: the sample leaves it out.
    if (vanished != nullptr && err.code == VIR_ERR_NO_DOMAIN) {
      *vanished = true;
      return;
    }
    if (err.connection_lost) *connection_lost = true;
    errors->emplace_back(call);
    log->Record(call, err, *domain);
  }
};

// ---- listing ----

struct ListResult {
  std::vector<DomainRef> domains;
  bool ok = false;
  LibvirtError error;
};

void ListDomains(virConnectPtr conn, ListResult& out) {
  virDomainPtr* doms = nullptr;
  int n = virConnectListAllDomains(conn, &doms, 0);
  if (n < 0) {
    out.error = LastLibvirtError();
    return;
  }
  out.domains.reserve(n);
  for (int i = 0; i < n; ++i) out.domains.push_back(WrapDomain(doms[i]));
  free(doms);
  out.ok = true;
}

// ---- bulk stats ----

struct BulkResult {
  DomainStats stats;
  StatGroups present = 0;
  int skipped_devices = 0;
  bool got_record = false;
  Clock::time_point read_at;
};

struct ShardResult {
  std::vector<BulkResult> domains;  // parallel to the shard's domain list
  bool ok = false;
  bool unsupported = false;  // the driver has no bulk stats at all
  LibvirtError error;
};

// Records are matched to the shard's domains by name, unique on a connection:
// reading a record's UUID string costs a formatted debug message in libvirt
// per call, 8% of a 1000-domain sample.
void BulkStats(const std::vector<DomainRef>& shard, const std::vector<std::string>& names,
               StatGroups groups, std::atomic<bool>& nowait, ShardResult& out) {
  out.domains.resize(shard.size());
  std::vector<virDomainPtr> array;
  array.reserve(shard.size() + 1);
  for (const DomainRef& d : shard) array.push_back(d.get());
  array.push_back(nullptr);
  virDomainStatsRecordPtr* records = nullptr;
  bool use_nowait = nowait.load();
  int n =
      virDomainListGetStats(array.data(), groups, &records,
                            use_nowait ? unsigned{VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT} : 0U);
  if (n < 0 && use_nowait) {
    LibvirtError err = LastLibvirtError();
    if (err.code == VIR_ERR_INVALID_ARG || IsUnsupported(err)) {
      // Older daemons and some drivers reject NOWAIT: do without it from now on.
      nowait.store(false);
      LogInfo("libvirt bulk stats without NOWAIT", {{"reason", err.message}});
      n = virDomainListGetStats(array.data(), groups, &records, 0);
    }
  }
  if (n < 0) {
    out.error = LastLibvirtError();
    out.unsupported = out.error.code == VIR_ERR_NO_SUPPORT;
    return;
  }
  Clock::time_point now = Clock::now();
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < names.size(); ++i) index.emplace(names[i], i);
  for (int r = 0; r < n; ++r) {
    const char* name = virDomainGetName(records[r]->dom);
    auto it = index.find(name ? name : "");
    if (it == index.end()) continue;
    BulkResult& br = out.domains[it->second];
    StatsParseResult parsed =
        ParseDomainStatsParams(records[r]->params, records[r]->nparams, br.stats);
    br.present = parsed.groups_present;
    br.skipped_devices = parsed.skipped_devices;
    br.got_record = true;
    br.read_at = now;
  }
  virDomainStatsRecordListFree(records);
  out.ok = true;
}

// ---- per-domain fallback ----

struct FallbackInput {
  DomainRef dom;
  DomainStats stats;  // bulk result (or just name/uuid): completed in place
  StatGroups present = 0;
  StatGroups enabled = 0;
  bool need_identity = false;
  std::shared_ptr<const DomainIdentity> identity;  // cached, when not refetched
  std::shared_ptr<const MetadataLabels> metadata_labels;
};

struct FallbackResult {
  DomainStats stats;
  std::shared_ptr<const DomainIdentity> identity;
  bool identity_fetched = false;
  bool connection_lost = false;
  bool vanished = false;  // undefined between the list and these calls
  Clock::time_point read_at;
};

// One of virtscale's metadata elements; nullopt when absent or unreadable
// (the failure is recorded, and an unsupported call is not tried again).
std::optional<std::string> ReadMetadataElement(virDomainPtr dom, const char* ns, CallErrors& errs) {
  if (errs.unsupported->load() & kNoMetadata) return std::nullopt;
  char* xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, ns, VIR_DOMAIN_AFFECT_CURRENT);
  if (xml == nullptr) {
    if (LastLibvirtError().code != VIR_ERR_NO_DOMAIN_METADATA) errs.Fail("metadata", kNoMetadata);
    return std::nullopt;
  }
  std::string text(xml);
  free(xml);
  return text;
}

std::shared_ptr<DomainIdentity> FetchIdentity(virDomainPtr dom, const std::string& name,
                                              const MetadataLabels* labels, CallErrors& errs) {
  auto id = std::make_shared<DomainIdentity>();
  id->name = name;
  id->fetched_at = Clock::now();
  char* xml = virDomainGetXMLDesc(dom, 0);
  if (xml == nullptr) {
    errs.Fail("xml");
  } else {
    DomainXmlInfo info;
    if (ParseDomainXml(xml, info)) {
      id->os_type = std::move(info.os_type);
      id->os_arch = std::move(info.os_arch);
      id->os_machine = std::move(info.os_machine);
      id->disks = std::move(info.disks);
      id->interfaces = std::move(info.interfaces);
    } else {
      errs.errors->emplace_back("xml_parse");
    }
    if (labels != nullptr && !labels->empty()) id->metadata_labels = labels->Extract(xml);
    free(xml);
  }
  if (std::optional<std::string> xml = ReadMetadataElement(dom, kMetadataNamespace, errs))
    id->metadata = ParseVirtscaleMetadata(*xml);
  if (std::optional<std::string> xml = ReadMetadataElement(dom, kScaleStampNamespace, errs))
    id->scale_stamp = ParseScaleStamp(*xml);
  if (std::optional<std::string> xml = ReadMetadataElement(dom, kLifecycleNamespace, errs))
    id->lifecycle = ParseLifecycleStamp(*xml);
  return id;
}

void FillInfo(virDomainPtr dom, const FallbackInput& in, DomainStats& s, CallErrors& errs) {
  virDomainInfo info{};
  if (virDomainGetInfo(dom, &info) < 0) {
    errs.Fail("info");
    return;
  }
  if (!(in.present & VIR_DOMAIN_STATS_STATE)) {
    s.state = info.state <= static_cast<unsigned char>(DomainState::kPmSuspended)
                  ? static_cast<DomainState>(info.state)
                  : DomainState::kNoState;
    s.active = IsActiveState(s.state);
  }
  if (!s.max_memory_bytes) s.max_memory_bytes = static_cast<uint64_t>(info.maxMem) * 1024;
  if (!s.memory_bytes) s.memory_bytes = static_cast<uint64_t>(info.memory) * 1024;
  if (!s.virtual_cpus) s.virtual_cpus = info.nrVirtCpu;
  if (s.active && !s.cpu_time_ns && (in.enabled & VIR_DOMAIN_STATS_CPU_TOTAL)) {
    s.cpu_time_ns = info.cpuTime;
  }
}

void FillMemoryStats(virDomainPtr dom, DomainStats& s, CallErrors& errs) {
  virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
  int n = virDomainMemoryStats(dom, stats, VIR_DOMAIN_MEMORY_STAT_NR, 0);
  if (n < 0) {
    errs.Fail("memory_stats", kNoMemoryStats);
    return;
  }
  MemoryStats& m = s.memory;
  for (int i = 0; i < n; ++i) {
    const uint64_t kib = stats[i].val * 1024;
    switch (stats[i].tag) {
      case VIR_DOMAIN_MEMORY_STAT_SWAP_IN:
        m.swap_in = kib;
        break;
      case VIR_DOMAIN_MEMORY_STAT_SWAP_OUT:
        m.swap_out = kib;
        break;
      case VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT:
        m.major_fault = stats[i].val;
        break;
      case VIR_DOMAIN_MEMORY_STAT_MINOR_FAULT:
        m.minor_fault = stats[i].val;
        break;
      case VIR_DOMAIN_MEMORY_STAT_UNUSED:
        m.unused = kib;
        break;
      case VIR_DOMAIN_MEMORY_STAT_AVAILABLE:
        m.available = kib;
        break;
      case VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON:
        m.current = kib;
        break;
      case VIR_DOMAIN_MEMORY_STAT_RSS:
        m.rss = kib;
        break;
      case VIR_DOMAIN_MEMORY_STAT_USABLE:
        m.usable = kib;
        break;
      case VIR_DOMAIN_MEMORY_STAT_DISK_CACHES:
        m.disk_caches = kib;
        break;
      case VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGALLOC:
        m.hugetlb_pgalloc = stats[i].val;
        break;
      case VIR_DOMAIN_MEMORY_STAT_HUGETLB_PGFAIL:
        m.hugetlb_pgfail = stats[i].val;
        break;
      case VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE:
        if (stats[i].val <= static_cast<unsigned long long>(INT64_MAX)) {
          m.last_update_unix = static_cast<int64_t>(stats[i].val);
        }
        break;
      default:
        break;
    }
  }
  if (!m.maximum) m.maximum = s.max_memory_bytes;
}

void FillVcpus(virDomainPtr dom, DomainStats& s, CallErrors& errs) {
  if (!s.virtual_cpus || *s.virtual_cpus == 0) return;
  std::vector<virVcpuInfo> info(*s.virtual_cpus);
  int n = virDomainGetVcpus(dom, info.data(), static_cast<int>(info.size()), nullptr, 0);
  if (n < 0) {
    errs.Fail("vcpus", kNoVcpus);
    return;
  }
  s.vcpus.clear();
  for (int i = 0; i < n; ++i) {
    VcpuStats v;
    v.id = info[i].number;
    v.state = info[i].state;
    v.time_ns = info[i].cpuTime;
    s.vcpus.push_back(v);
  }
}

void FillBlocks(virDomainPtr dom, const DomainIdentity& id, DomainStats& s, CallErrors& errs) {
  s.blocks.clear();
  for (const DomainXmlInfo::Disk& disk : id.disks) {
    BlockStats b;
    b.name = disk.target;
    b.path = disk.source;
    if (!(errs.unsupported->load() & kNoBlockStats)) {
      virDomainBlockStatsStruct st{};
      if (virDomainBlockStats(dom, disk.target.c_str(), &st, sizeof st) == 0) {
        b.rd_reqs = NonNegative(st.rd_req);
        b.rd_bytes = NonNegative(st.rd_bytes);
        b.wr_reqs = NonNegative(st.wr_req);
        b.wr_bytes = NonNegative(st.wr_bytes);
        b.errors = NonNegative(st.errs);
      } else {
        errs.Fail("block_stats", kNoBlockStats);
      }
    }
    if (!(errs.unsupported->load() & kNoBlockInfo)) {
      virDomainBlockInfo bi{};
      if (virDomainGetBlockInfo(dom, disk.target.c_str(), &bi, 0) == 0) {
        b.capacity = bi.capacity;
        b.allocation = bi.allocation;
        b.physical = bi.physical;
      } else {
        errs.Fail("block_info", kNoBlockInfo);
      }
    }
    s.blocks.push_back(std::move(b));
  }
}

void FillInterfaces(virDomainPtr dom, const DomainIdentity& id, DomainStats& s, CallErrors& errs) {
  s.interfaces.clear();
  for (const std::string& target : id.interfaces) {
    InterfaceStats n;
    n.name = target;
    if (!(errs.unsupported->load() & kNoInterfaceStats)) {
      virDomainInterfaceStatsStruct st{};
      if (virDomainInterfaceStats(dom, target.c_str(), &st, sizeof st) == 0) {
        n.rx_bytes = NonNegative(st.rx_bytes);
        n.rx_pkts = NonNegative(st.rx_packets);
        n.rx_errs = NonNegative(st.rx_errs);
        n.rx_drop = NonNegative(st.rx_drop);
        n.tx_bytes = NonNegative(st.tx_bytes);
        n.tx_pkts = NonNegative(st.tx_packets);
        n.tx_errs = NonNegative(st.tx_errs);
        n.tx_drop = NonNegative(st.tx_drop);
      } else {
        errs.Fail("interface_stats", kNoInterfaceStats);
      }
    }
    s.interfaces.push_back(std::move(n));
  }
}

// virDomainGetInfo fills what the bulk call's enabled groups left out: the
// vCPU count (which CPU utilisation divides by) for cpu or vcpu, the memory
// sizes for balloon. A group left out of libvirt.stats costs no call.
bool NeedsInfo(const FallbackInput& in) {
  const DomainStats& s = in.stats;
  const bool want_vcpus = in.enabled & (VIR_DOMAIN_STATS_CPU_TOTAL | VIR_DOMAIN_STATS_VCPU);
  const bool want_memory = in.enabled & VIR_DOMAIN_STATS_BALLOON;
  return !(in.present & VIR_DOMAIN_STATS_STATE) || (want_vcpus && !s.virtual_cpus) ||
         (want_memory && (!s.max_memory_bytes || !s.memory_bytes)) ||
         (s.active && (in.enabled & VIR_DOMAIN_STATS_CPU_TOTAL) && !s.cpu_time_ns);
}

StatGroups MissingLiveGroups(const FallbackInput& in) {
  constexpr StatGroups kLive = VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU |
                               VIR_DOMAIN_STATS_BLOCK | VIR_DOMAIN_STATS_INTERFACE;
  return in.enabled & kLive & ~in.present;
}

// Whether a domain needs any per-domain call; inactive domains only need info.
bool NeedsFallback(const FallbackInput& in) {
  if (in.need_identity || NeedsInfo(in)) return true;
  // State unknown until GetInfo runs: NeedsInfo already covered that case.
  return in.stats.active && MissingLiveGroups(in) != 0;
}

void Fallback(const FallbackInput& in, const UnsupportedFlags& unsupported, CallErrorLog& log,
              FallbackResult& out) {
  out.stats = in.stats;
  DomainStats& s = out.stats;
  CallErrors errs{&s.errors, &out.connection_lost, unsupported, &s.name, &out.vanished, &log};
  virDomainPtr dom = in.dom.get();
  if (in.need_identity || in.identity == nullptr) {
    out.identity = FetchIdentity(dom, s.name, in.metadata_labels.get(), errs);
    out.identity_fetched = true;
  } else {
    out.identity = in.identity;
  }
  if (NeedsInfo(in)) FillInfo(dom, in, s, errs);
  out.read_at = Clock::now();
  if (!s.active) return;
  StatGroups missing = MissingLiveGroups(in);
  const unsigned skip = unsupported->load();
  if ((missing & VIR_DOMAIN_STATS_BALLOON) && !(skip & kNoMemoryStats)) {
    FillMemoryStats(dom, s, errs);
  }
  if ((missing & VIR_DOMAIN_STATS_VCPU) && !(skip & kNoVcpus)) FillVcpus(dom, s, errs);
  if (missing & VIR_DOMAIN_STATS_BLOCK) FillBlocks(dom, *out.identity, s, errs);
  if (missing & VIR_DOMAIN_STATS_INTERFACE) FillInterfaces(dom, *out.identity, s, errs);
}

// ---- host ----

struct HostResult {
  HostStats host;
  bool ok = false;
  bool connection_lost = false;
  double duration_seconds = 0;
};

void CollectHost(virConnectPtr conn, CallErrorLog& log, HostResult& out) {
  Clock::time_point start = Clock::now();
  auto fail = [&](const char* call) {
    LibvirtError err = LastLibvirtError();
    out.connection_lost |= err.connection_lost;
    log.Record(call, err, "");
    out.ok = false;
  };
  out.ok = true;
  virNodeInfo info{};
  if (virNodeGetInfo(conn, &info) == 0) {
    out.host.cpus = info.cpus;
    out.host.memory_total_bytes = static_cast<uint64_t>(info.memory) * 1024;
  } else {
    fail("node_info");
  }
  // Optional: drivers without them (the test driver lacks some) are tolerated.
  if (unsigned long long free_bytes = virNodeGetFreeMemory(conn); free_bytes > 0) {
    out.host.memory_free_bytes = free_bytes;
  }
  // A driver without CPU stats is no failure; a driver that has them and fails is.
  int nparams = 0;
  if (virNodeGetCPUStats(conn, VIR_NODE_CPU_STATS_ALL_CPUS, nullptr, &nparams, 0) < 0) {
    if (!IsUnsupported(LastLibvirtError())) fail("node_cpu_stats");
  } else if (nparams > 0) {
    std::vector<virNodeCPUStats> params(nparams);
    if (virNodeGetCPUStats(conn, VIR_NODE_CPU_STATS_ALL_CPUS, params.data(), &nparams, 0) < 0) {
      fail("node_cpu_stats");
    } else {
      for (int i = 0; i < nparams; ++i) {
        std::string field = params[i].field;
        if (field == VIR_NODE_CPU_STATS_UTILIZATION) continue;  // a percentage, not time
        if (field == VIR_NODE_CPU_STATS_KERNEL) field = "system";
        out.host.cpu_time_ns[field] = params[i].value;
      }
    }
  }
  out.duration_seconds = SecondsSince(start);
}

void DeriveUtilization(DomainStats& d) {
  if (!d.active) return;
  const MemoryStats& m = d.memory;
  if (m.available && m.usable && *m.available > 0) {
    double used = static_cast<double>(*m.available) - static_cast<double>(*m.usable);
    d.memory_utilization = std::clamp(used / static_cast<double>(*m.available), 0.0, 1.0);
  } else if (m.rss && d.memory_bytes && *d.memory_bytes > 0) {
    d.memory_utilization =
        std::clamp(static_cast<double>(*m.rss) / static_cast<double>(*d.memory_bytes), 0.0, 1.0);
  }
}

}  // namespace

const std::vector<std::string>& DomainEventNames() {
  static const std::vector<std::string> kNames = {"defined",   "undefined",   "started",
                                                  "suspended", "resumed",     "stopped",
                                                  "shutdown",  "pmsuspended", "crashed"};
  return kNames;
}

Sampler::Sampler(LibvirtConnection& conn, SamplerOptions options)
    : conn_(conn), options_(std::move(options)) {}

Sampler::~Sampler() { Stop(); }

void Sampler::SetSnapshotListener(SnapshotListener listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

void Sampler::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Sampler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SnapshotPtr Sampler::Latest() const {
  std::lock_guard lock(mu_);
  return latest_;
}

SnapshotPtr Sampler::WaitFirstSample(Duration timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return latest_ != nullptr; });
  return latest_;
}

void Sampler::RequestSample() {
  {
    std::lock_guard lock(mu_);
    sample_requested_ = true;
  }
  cv_.notify_all();
}

void Sampler::OnDomainEvent(const std::string& event, const std::string& domain) {
  {
    std::lock_guard lock(mu_);
    ++counters_.domain_events_total[event];
  }
  if (event == "defined" || event == "undefined") {
    RefreshDomains({domain});
  } else {
    RequestSample();
  }
}

void Sampler::RefreshDomains(const std::vector<std::string>& domains) {
  {
    std::lock_guard lock(invalidate_mu_);
    invalidated_names_.insert(invalidated_names_.end(), domains.begin(), domains.end());
  }
  RequestSample();
}

void Sampler::UpdateOptions(SamplerOptions options) {
  {
    std::lock_guard lock(mu_);
    options_ = std::move(options);
  }
  RequestSample();  // apply (and show) the new settings at once
}

SamplerOptions Sampler::options() const {
  std::lock_guard lock(mu_);
  return options_;
}

SamplerCounters Sampler::Counters() const {
  std::lock_guard lock(mu_);
  SamplerCounters c = counters_;
  c.stuck_calls = stuck_->size();
  c.call_errors_total = call_errors_->Totals();
  return c;
}

void Sampler::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    sample_requested_ = false;
    Clock::time_point start = Clock::now();
    lock.unlock();
    SampleNow();
    lock.lock();
    cv_.wait_until(lock, start + options_.interval, [this] { return stop_ || sample_requested_; });
    if (sample_requested_ && !stop_) {
      // Lifecycle events come in bursts (a group starting 10 VMs): gather them.
      cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stop_; });
    }
  }
}

void Sampler::Publish(SnapshotPtr snapshot) {
  SnapshotListener listener;
  {
    std::lock_guard lock(mu_);
    latest_ = snapshot;
    ++counters_.samples_total;
    counters_.skipped_devices_total += static_cast<uint64_t>(snapshot->skipped_devices);
    listener = listener_;
  }
  cv_.notify_all();
  if (listener) listener(snapshot);
}

SnapshotPtr Sampler::SampleNow() {
  std::lock_guard sample_lock(sample_mu_);
  const SamplerOptions opts = options();
  const StatGroups groups = opts.stat_groups | VIR_DOMAIN_STATS_STATE;
  const Clock::time_point start = Clock::now();
  auto snap = std::make_shared<Snapshot>();
  snap->taken_at = std::chrono::system_clock::now();
  snap->taken_at_steady = start;
  snap->libvirt_uri = conn_.uri();
  uint64_t timed_out_calls = 0;
  const SnapshotPtr previous = Latest();

  {
    std::lock_guard lock(invalidate_mu_);
    for (const std::string& name : invalidated_names_) {
      std::erase_if(identities_, [&](const auto& kv) { return kv.second->name == name; });
    }
    invalidated_names_.clear();
  }
  const bool labels_changed =
      opts.metadata_labels != identity_labels_ &&
      !(opts.metadata_labels && identity_labels_ && *opts.metadata_labels == *identity_labels_);
  if (labels_changed) {
    identities_.clear();
    identity_labels_ = opts.metadata_labels;
  }
  if (opts.metadata_labels) snap->metadata_label_names = opts.metadata_labels->Names();

  CollectorResult domains_result{"domains", 0, false};
  CollectorResult host_result{"host", 0, false};
  CollectorResult pools_result{"storage_pools", 0, false};
  CollectorResult jobs_result{"jobs", 0, false};
  // Read before Acquire: a reconnect in between labels the sample older, never newer.
  snap->connection_generation = conn_.generation();
  ConnectionRef conn = conn_.Acquire();
  bool connection_lost = false;

  if (conn != nullptr && !stuck_->Contains("list")) {
    // 1. List the domains (under the deadline: a hung daemon must not hang us).
    auto list = std::make_shared<ListResult>();
    std::vector<DeadlineTask> list_task;
    list_task.push_back({{"list"}, [conn, list] { ListDomains(conn.get(), *list); }});
    DeadlineRunResult listed = RunWithDeadlines(std::move(list_task), 1, opts.call_timeout, stuck_);
    timed_out_calls += listed.timed_out;
    if (!listed.finished[0]) {
      LogWarn("libvirt domain list timed out", {{"uri", conn_.uri()}});
    } else if (!list->ok) {
      connection_lost |= list->error.connection_lost;
      call_errors_->Record("list", list->error, "");
    }
    const bool list_ok = listed.finished[0] && list->ok;
    snap->libvirt_up = list_ok;

    // 2. Bulk stats per shard, host stats beside them.
    std::vector<DomainRef> live;
    std::vector<std::string> live_uuids;
    std::vector<std::string> live_names;
    std::vector<DomainStats> stuck_domains;
    if (list_ok) {
      for (const DomainRef& d : list->domains) {
        DomainStats base;
        const char* name = virDomainGetName(d.get());
        base.name = name ? name : "";
        base.uuid = DomainUuid(d.get());
        if (stuck_->Contains(base.uuid)) {
          base.timed_out = true;
          stuck_domains.push_back(std::move(base));
        } else {
          live.push_back(d);
          live_uuids.push_back(base.uuid);
          live_names.push_back(base.name);
        }
      }
    }
    const int workers = WorkerCount(opts, live.size());
    const size_t shard_count = std::max<size_t>(1, std::min<size_t>(workers, live.size()));
    std::vector<std::shared_ptr<ShardResult>> shards;
    std::vector<std::pair<size_t, size_t>> shard_ranges;  // [begin, end) into live
    std::vector<DeadlineTask> tasks;
    auto host = std::make_shared<HostResult>();
    const bool host_stuck = stuck_->Contains("host");
    if (!host_stuck) {
      tasks.push_back(
          {{"host"}, [conn, host, log = call_errors_] { CollectHost(conn.get(), *log, *host); }});
    }
    for (size_t s = 0; s < shard_count && !live.empty(); ++s) {
      size_t begin = live.size() * s / shard_count;
      size_t end = live.size() * (s + 1) / shard_count;
      std::vector<DomainRef> doms(live.begin() + begin, live.begin() + end);
      std::vector<std::string> uuids(live_uuids.begin() + begin, live_uuids.begin() + end);
      std::vector<std::string> names(live_names.begin() + begin, live_names.begin() + end);
      auto result = std::make_shared<ShardResult>();
      shards.push_back(result);
      shard_ranges.emplace_back(begin, end);
      tasks.push_back({std::move(uuids), [conn, doms = std::move(doms), names = std::move(names),
                                          groups, nowait = nowait_supported_, result] {
                         BulkStats(doms, names, groups, *nowait, *result);
                       }});
    }
    // Last, so the shards keep their indices; its own worker, so it starts at once.
    auto pools = std::make_shared<StoragePoolsResult>();
    const bool pools_stuck = stuck_->Contains("storage_pools");
    const size_t pools_task = tasks.size();
    if (!pools_stuck) {
      tasks.push_back({{"storage_pools"}, [conn, pools, log = call_errors_] {
                         CollectStoragePools(conn.get(), *log, *pools);
                       }});
    }
    // Job calls last, beside the shards. A domain with a job is asked at every
    // sample; others (as the last sample saw them) about every kJobRecheck,
    // spread by UUID: the calls cost libvirtd time, and a job lasts longer.
    std::vector<JobTarget> job_targets;
    const uint64_t recheck_every = static_cast<uint64_t>(
        std::max<int64_t>(1, kJobRecheck / std::max(opts.interval, Duration(1))));
    const uint64_t sequence = previous ? previous->sequence + 1 : 1;
    for (size_t i = 0; i < live.size(); ++i) {
      const DomainStats* seen = previous ? previous->FindDomain(live_names[i]) : nullptr;
      const bool due = (sequence + std::hash<std::string>{}(live_uuids[i])) % recheck_every == 0;
      if (seen == nullptr || seen->job || (seen->active && due)) {
        job_targets.push_back({live_uuids[i], live[i]});
      }
    }
    const JobCalls job_calls(job_targets, jobs_unsupported_, tasks);
    DeadlineRunResult bulk =
        RunWithDeadlines(std::move(tasks), workers + 2, opts.call_timeout, stuck_);
    timed_out_calls += bulk.timed_out;
    if (!host_stuck && bulk.finished[0]) {
      host_result.success = host->ok;
      host_result.duration_seconds = host->duration_seconds;
      connection_lost |= host->connection_lost;
      snap->host = host->host;
    }
    if (!pools_stuck && bulk.finished[pools_task]) {
      pools_result.success = pools->ok;
      pools_result.duration_seconds = pools->duration_seconds;
      connection_lost |= pools->connection_lost;
      snap->storage_pools = std::move(pools->pools);
    }

    // 3. Per-domain calls where bulk left gaps, and identity on cache misses.
    const Clock::time_point now = Clock::now();
    std::vector<FallbackInput> inputs(live.size());
    std::vector<bool> bulk_timed_out(live.size(), false);
    size_t failed_shards = 0;  // finished with an error, or abandoned at the deadline
    for (size_t s = 0; s < shards.size(); ++s) {
      const bool finished = bulk.finished[s + (host_stuck ? 0 : 1)];
      const ShardResult& shard = *shards[s];
      if (!finished) ++failed_shards;
      if (finished && !shard.ok) {
        connection_lost |= shard.error.connection_lost;
        if (!shard.unsupported) {
          ++failed_shards;
          call_errors_->Record("bulk_stats", shard.error, "");
        }
      }
      for (size_t i = shard_ranges[s].first; i < shard_ranges[s].second; ++i) {
        FallbackInput& in = inputs[i];
        in.dom = live[i];
        in.enabled = groups;
        if (!finished) {
          bulk_timed_out[i] = true;
          continue;
        }
        const BulkResult& br = shard.domains[i - shard_ranges[s].first];
        in.stats = br.stats;
        in.present = br.present;
        snap->skipped_devices += br.skipped_devices;
        if (shard.ok && !br.got_record) in.stats.errors.emplace_back("bulk_stats_missing");
        if (finished && !shard.ok && !shard.unsupported) in.stats.errors.emplace_back("bulk_stats");
      }
    }
    std::vector<size_t> fallback_index;
    std::vector<std::shared_ptr<FallbackResult>> fallback_results(live.size());
    std::vector<DeadlineTask> fallback_tasks;
    for (size_t i = 0; i < live.size(); ++i) {
      FallbackInput& in = inputs[i];
      in.stats.name = live_names[i];
      in.stats.uuid = live_uuids[i];
      in.metadata_labels = identity_labels_;
      if (bulk_timed_out[i]) continue;
      auto cached = identities_.find(in.stats.uuid);
      // Spread refreshes over a quarter TTL so 1000 domains do not expire together.
      const Duration jitter(std::hash<std::string>{}(in.stats.uuid) %
                            static_cast<size_t>(opts.identity_ttl.count() / 4 + 1));
      if (cached != identities_.end() && cached->second->name == in.stats.name &&
          now - cached->second->fetched_at < opts.identity_ttl + jitter) {
        in.identity = cached->second;
      } else {
        in.need_identity = true;
      }
      if (!NeedsFallback(in)) continue;
      auto result = std::make_shared<FallbackResult>();
      fallback_results[i] = result;
      fallback_index.push_back(i);
      fallback_tasks.push_back(
          {{in.stats.uuid}, [in, result, unsupported = unsupported_calls_, log = call_errors_] {
             Fallback(in, unsupported, *log, *result);
           }});
    }
    DeadlineRunResult fallback =
        RunWithDeadlines(std::move(fallback_tasks), workers, opts.call_timeout, stuck_);
    timed_out_calls += fallback.timed_out;

    // 4. Merge, derive rates, remember identities and CPU marks.
    std::vector<bool> fallback_finished(live.size(), true);
    for (size_t k = 0; k < fallback_index.size(); ++k) {
      fallback_finished[fallback_index[k]] = fallback.finished[k];
    }
    std::unordered_set<std::string> seen_uuids;
    snap->domains.reserve(live.size() + stuck_domains.size());
    for (size_t i = 0; i < live.size(); ++i) {
      FallbackInput& in = inputs[i];
      if (fallback_finished[i] && fallback_results[i] && fallback_results[i]->vanished) continue;
      seen_uuids.insert(in.stats.uuid);
      DomainStats d;
      Clock::time_point read_at = now;
      std::shared_ptr<const DomainIdentity> identity = in.identity;
      if (bulk_timed_out[i] || !fallback_finished[i]) {
        d.name = in.stats.name;
        d.uuid = in.stats.uuid;
        d.timed_out = true;
      } else if (fallback_results[i] != nullptr) {
        FallbackResult& r = *fallback_results[i];
        d = std::move(r.stats);
        connection_lost |= r.connection_lost;
        read_at = r.read_at;
        identity = r.identity;
        if (r.identity_fetched) identities_[d.uuid] = r.identity;
      } else {
        d = std::move(in.stats);
      }
      if (identity != nullptr) {
        d.os_type = identity->os_type;
        d.os_arch = identity->os_arch;
        d.os_machine = identity->os_machine;
        d.metadata = identity->metadata;
        d.scale_stamp = identity->scale_stamp;
        d.lifecycle = identity->lifecycle;
        d.metadata_labels = identity->metadata_labels;
      }
      if (d.timed_out) {
        // Keep what is known from the last good sample so owners still see it.
        if (const DomainStats* prev = previous ? previous->FindDomain(d.name) : nullptr) {
          d.state = prev->state;
          d.active = prev->active;
          d.virtual_cpus = prev->virtual_cpus;
          d.max_memory_bytes = prev->max_memory_bytes;
        }
      } else if (d.active && d.cpu_time_ns && d.virtual_cpus && *d.virtual_cpus > 0) {
        auto mark = cpu_marks_.find(d.uuid);
        if (mark != cpu_marks_.end() && *d.cpu_time_ns >= mark->second.cpu_time_ns &&
            read_at > mark->second.at) {
          double wall_ns =
              std::chrono::duration<double, std::nano>(read_at - mark->second.at).count();
          double used = static_cast<double>(*d.cpu_time_ns - mark->second.cpu_time_ns);
          d.cpu_utilization = std::clamp(used / (wall_ns * *d.virtual_cpus), 0.0, 1.0);
        }
        cpu_marks_[d.uuid] = {*d.cpu_time_ns, read_at};
      } else if (!d.active) {
        cpu_marks_.erase(d.uuid);
      }
      DeriveUtilization(d);
      snap->domains.push_back(std::move(d));
    }
    for (DomainStats& d : stuck_domains) {
      seen_uuids.insert(d.uuid);
      if (auto it = identities_.find(d.uuid); it != identities_.end()) {
        d.os_type = it->second->os_type;
        d.metadata = it->second->metadata;
        d.metadata_labels = it->second->metadata_labels;
      }
      if (const DomainStats* prev = previous ? previous->FindDomain(d.name) : nullptr) {
        d.state = prev->state;
        d.active = prev->active;
      }
      snap->domains.push_back(std::move(d));
    }
    if (list_ok) {
      std::erase_if(identities_, [&](const auto& kv) { return !seen_uuids.count(kv.first); });
      std::erase_if(cpu_marks_, [&](const auto& kv) { return !seen_uuids.count(kv.first); });
    }
    JobsCollectorResult jobs =
        job_calls.Apply(bulk, jobs_unsupported_, *call_errors_, snap->domains);
    jobs_result = jobs.collector;
    connection_lost |= jobs.connection_lost;
    std::sort(snap->domains.begin(), snap->domains.end(),
              [](const DomainStats& a, const DomainStats& b) { return a.name < b.name; });
    // Per-domain calls may have filled the gaps, but the collector's own call failed.
    domains_result.success = list_ok && (shards.empty() || failed_shards < shards.size());
    domains_result.duration_seconds = SecondsSince(start);
  }
  if (connection_lost) {
    LogWarn("libvirt connection looks broken; reconnecting", {{"uri", conn_.uri()}});
    conn_.ReportBroken();
  }
  snap->collectors = {domains_result, host_result, pools_result, jobs_result};
  call_errors_->EndSample();
  snap->duration_seconds = SecondsSince(start);
  {
    std::lock_guard lock(mu_);
    snap->sequence = ++sequence_;
    counters_.timed_out_calls_total += timed_out_calls;
  }
  SnapshotPtr published = snap;
  Publish(published);
  return published;
}

}  // namespace virtscale
