#include "collectors/domains_collector.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <unordered_set>
#include <utility>

#include "collectors/domain_metadata.h"
#include "collectors/libvirt_error.h"
#include "collectors/typed_param_value.h"
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

using DomainRef = std::shared_ptr<virDomain>;

struct BulkResult {
  DomainStats stats;
  StatGroups present = 0;
  int skipped_devices = 0;
  bool got_record = false;
  std::chrono::steady_clock::time_point read_at;
};

struct ShardResult {
  std::vector<BulkResult> domains;  // parallel to the shard's domain list
  bool ok = false;
  bool unsupported = false;  // the driver has no bulk stats at all
  LibvirtError error;
};

namespace {

using Clock = std::chrono::steady_clock;
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

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
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

int WorkerCount(int configured, size_t domains) {
  if (configured > 0) return configured;
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
  std::chrono::steady_clock::time_point read_at;
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
  if (!s.max_memory_bytes) s.max_memory_bytes = KiBToBytes(info.maxMem);
  if (!s.memory_bytes) s.memory_bytes = KiBToBytes(info.memory);
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
    const std::optional<uint64_t> kib = KiBToBytes(stats[i].val);
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

DomainsCollector::DomainsCollector() = default;
DomainsCollector::~DomainsCollector() = default;

void DomainsCollector::Forget(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    std::erase_if(identities_, [&](const auto& kv) { return kv.second->name == name; });
  }
}

void DomainsCollector::UseMetadataLabels(const std::shared_ptr<const MetadataLabels>& labels) {
  const bool changed = labels != labels_ && !(labels && labels_ && *labels == *labels_);
  if (!changed) return;
  identities_.clear();
  labels_ = labels;
}

DomainsSample DomainsCollector::List(const ConnectionRef& conn, const SampleCalls& calls,
                                     int workers) const {
  DomainsSample sample;
  sample.start = Clock::now();
  // Under the deadline: a hung daemon must not hang the sampler.
  auto list = std::make_shared<ListResult>();
  std::vector<DeadlineTask> list_task;
  list_task.push_back({{"list"}, [conn, list] { ListDomains(conn.get(), *list); }});
  DeadlineRunResult listed = RunWithDeadlines(std::move(list_task), 1, calls.timeout, calls.stuck);
  sample.timed_out_calls += listed.timed_out;
  if (!listed.finished[0]) {
    LogWarn("libvirt domain list timed out", {{"uri", calls.uri}});
  } else if (!list->ok) {
    sample.connection_lost |= list->error.connection_lost;
    calls.errors->Record("list", list->error, "");
  }
  sample.listed = listed.finished[0] && list->ok;
  if (sample.listed) {
    for (const DomainRef& d : list->domains) {
      const char* name = virDomainGetName(d.get());
      ListedDomain listed_domain{d, name ? name : "", DomainUuid(d.get())};
      if (calls.stuck->Contains(listed_domain.uuid)) {
        DomainStats base;
        base.name = listed_domain.name;
        base.uuid = listed_domain.uuid;
        base.timed_out = true;
        sample.stuck.push_back(std::move(base));
      } else {
        sample.live.push_back(std::move(listed_domain));
      }
    }
  }
  sample.workers = WorkerCount(workers, sample.live.size());
  return sample;
}

void DomainsCollector::AddBulkTasks(const ConnectionRef& conn, StatGroups groups,
                                    DomainsSample& sample, std::vector<DeadlineTask>& tasks) const {
  sample.groups = groups;
  sample.first_shard_task = tasks.size();
  const std::vector<ListedDomain>& live = sample.live;
  const size_t shard_count =
      std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(sample.workers), live.size()));
  for (size_t s = 0; s < shard_count && !live.empty(); ++s) {
    const size_t begin = live.size() * s / shard_count;
    const size_t end = live.size() * (s + 1) / shard_count;
    std::vector<DomainRef> doms;
    std::vector<std::string> uuids, names;
    for (size_t i = begin; i < end; ++i) {
      doms.push_back(live[i].dom);
      uuids.push_back(live[i].uuid);
      names.push_back(live[i].name);
    }
    auto result = std::make_shared<ShardResult>();
    sample.shards.push_back(result);
    sample.shard_ranges.emplace_back(begin, end);
    tasks.push_back({std::move(uuids), [conn, doms = std::move(doms), names = std::move(names),
                                        groups, nowait = nowait_supported_, result] {
                       BulkStats(doms, names, groups, *nowait, *result);
                     }});
  }
}

DomainsCollectorResult DomainsCollector::Finish(const DomainsSample& sample,
                                                const DeadlineRunResult& bulk,
                                                const Snapshot* previous, const SampleCalls& calls,
                                                Duration identity_ttl,
                                                std::vector<DomainStats>& domains) {
  DomainsCollectorResult out;
  const std::vector<ListedDomain>& live = sample.live;
  // Per-domain calls where bulk left gaps, and identity on cache misses.
  const Clock::time_point now = Clock::now();
  std::vector<FallbackInput> inputs(live.size());
  std::vector<bool> bulk_timed_out(live.size(), false);
  size_t failed_shards = 0;  // finished with an error, or abandoned at the deadline
  for (size_t s = 0; s < sample.shards.size(); ++s) {
    const bool finished = bulk.finished[sample.first_shard_task + s];
    const ShardResult& shard = *sample.shards[s];
    if (!finished) ++failed_shards;
    if (finished && !shard.ok) {
      out.connection_lost |= shard.error.connection_lost;
      if (!shard.unsupported) {
        ++failed_shards;
        calls.errors->Record("bulk_stats", shard.error, "");
      }
    }
    for (size_t i = sample.shard_ranges[s].first; i < sample.shard_ranges[s].second; ++i) {
      FallbackInput& in = inputs[i];
      in.dom = live[i].dom;
      in.enabled = sample.groups;
      if (!finished) {
        bulk_timed_out[i] = true;
        continue;
      }
      const BulkResult& br = shard.domains[i - sample.shard_ranges[s].first];
      in.stats = br.stats;
      in.present = br.present;
      out.skipped_devices += br.skipped_devices;
      if (shard.ok && !br.got_record) in.stats.errors.emplace_back("bulk_stats_missing");
      if (finished && !shard.ok && !shard.unsupported) in.stats.errors.emplace_back("bulk_stats");
    }
  }
  std::vector<size_t> fallback_index;
  std::vector<std::shared_ptr<FallbackResult>> fallback_results(live.size());
  std::vector<DeadlineTask> fallback_tasks;
  for (size_t i = 0; i < live.size(); ++i) {
    FallbackInput& in = inputs[i];
    in.stats.name = live[i].name;
    in.stats.uuid = live[i].uuid;
    in.metadata_labels = labels_;
    if (bulk_timed_out[i]) continue;
    auto cached = identities_.find(in.stats.uuid);
    // Spread refreshes over a quarter TTL so 1000 domains do not expire together.
    const Duration jitter(std::hash<std::string>{}(in.stats.uuid) %
                          static_cast<size_t>(identity_ttl.count() / 4 + 1));
    if (cached != identities_.end() && cached->second->name == in.stats.name &&
        now - cached->second->fetched_at < identity_ttl + jitter) {
      in.identity = cached->second;
    } else {
      in.need_identity = true;
    }
    if (!NeedsFallback(in)) continue;
    auto result = std::make_shared<FallbackResult>();
    fallback_results[i] = result;
    fallback_index.push_back(i);
    fallback_tasks.push_back(
        {{in.stats.uuid}, [in, result, unsupported = unsupported_calls_, log = calls.errors] {
           Fallback(in, unsupported, *log, *result);
         }});
  }
  DeadlineRunResult fallback =
      RunWithDeadlines(std::move(fallback_tasks), sample.workers, calls.timeout, calls.stuck);
  out.timed_out_calls += fallback.timed_out;

  // Merge, derive rates, remember identities and CPU marks.
  std::vector<bool> fallback_finished(live.size(), true);
  for (size_t k = 0; k < fallback_index.size(); ++k) {
    fallback_finished[fallback_index[k]] = fallback.finished[k];
  }
  std::unordered_set<std::string> seen_uuids;
  domains.reserve(domains.size() + live.size() + sample.stuck.size());
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
      out.connection_lost |= r.connection_lost;
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
    domains.push_back(std::move(d));
  }
  for (DomainStats d : sample.stuck) {
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
    domains.push_back(std::move(d));
  }
  if (sample.listed) {
    std::erase_if(identities_, [&](const auto& kv) { return !seen_uuids.count(kv.first); });
    std::erase_if(cpu_marks_, [&](const auto& kv) { return !seen_uuids.count(kv.first); });
  }
  // Per-domain calls may have filled the gaps, but the collector's own call failed.
  out.collector.success =
      sample.listed && (sample.shards.empty() || failed_shards < sample.shards.size());
  out.collector.duration_seconds = SecondsSince(sample.start);
  return out;
}

}  // namespace virtscale
