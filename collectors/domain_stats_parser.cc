#include "collectors/domain_stats_parser.h"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <pugixml.hpp>
#include <set>

#include "collectors/typed_param_value.h"

namespace virtscale {

std::optional<uint64_t> TypedParamUint(const virTypedParameter& p) {
  switch (p.type) {
    case VIR_TYPED_PARAM_INT:
      if (p.value.i < 0) return std::nullopt;
      return static_cast<uint64_t>(p.value.i);
    case VIR_TYPED_PARAM_UINT:
      return p.value.ui;
    case VIR_TYPED_PARAM_LLONG:
      if (p.value.l < 0) return std::nullopt;
      return static_cast<uint64_t>(p.value.l);
    case VIR_TYPED_PARAM_ULLONG:
      return p.value.ul;
    case VIR_TYPED_PARAM_BOOLEAN:
      return p.value.b ? 1 : 0;
    default:
      return std::nullopt;
  }
}

namespace {

struct GroupName {
  StatGroups bit;
  const char* name;
};
constexpr GroupName kGroupNames[] = {
    {VIR_DOMAIN_STATS_STATE, "state"},         {VIR_DOMAIN_STATS_CPU_TOTAL, "cpu"},
    {VIR_DOMAIN_STATS_BALLOON, "balloon"},     {VIR_DOMAIN_STATS_VCPU, "vcpu"},
    {VIR_DOMAIN_STATS_INTERFACE, "interface"}, {VIR_DOMAIN_STATS_BLOCK, "block"},
    {VIR_DOMAIN_STATS_PERF, "perf"},           {VIR_DOMAIN_STATS_IOTHREAD, "iothread"},
    {VIR_DOMAIN_STATS_DIRTYRATE, "dirtyrate"},
};

// Bounds on what one record may add, whatever a driver sends.
constexpr size_t kMaxPerfEvents = 64;
constexpr size_t kMaxIothreads = 256;
constexpr size_t kMaxPerfEventName = 64;

// libvirt's perf event names are lower-case identifiers; anything else is
// dropped rather than exported as a label.
bool IsEventName(std::string_view name) {
  if (name.empty() || name.size() > kMaxPerfEventName) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::optional<int64_t> AsInt(const virTypedParameter& p) {
  switch (p.type) {
    case VIR_TYPED_PARAM_INT:
      return p.value.i;
    case VIR_TYPED_PARAM_LLONG:
      return p.value.l;
    default:
      if (auto v = TypedParamUint(p); v && *v <= static_cast<uint64_t>(INT64_MAX)) {
        return static_cast<int64_t>(*v);
      }
      return std::nullopt;
  }
}

std::optional<uint64_t> AsKiB(const virTypedParameter& p) {
  auto v = TypedParamUint(p);
  return v ? KiBToBytes(*v) : std::nullopt;
}

std::string AsString(const virTypedParameter& p) {
  if (p.type == VIR_TYPED_PARAM_STRING && p.value.s != nullptr) return p.value.s;
  return {};
}

// Splits "vcpu.3.time" into index 3 and "time"; false when there is no index.
bool SplitIndexed(std::string_view rest, unsigned& index, std::string_view& field) {
  auto dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + dot, index);
  if (ec != std::errc() || ptr != rest.data() + dot) return false;
  field = rest.substr(dot + 1);
  return true;
}

void SetVcpuField(VcpuStats& v, std::string_view f, const virTypedParameter& p) {
  if (f == "state") {
    if (auto x = TypedParamUint(p)) v.state = static_cast<int>(*x);
  } else if (f == "time") {
    v.time_ns = TypedParamUint(p);
  } else if (f == "wait") {
    v.wait_ns = TypedParamUint(p);
  } else if (f == "delay") {
    v.delay_ns = TypedParamUint(p);
  }
}

void SetBlockField(BlockStats& b, std::string_view f, const virTypedParameter& p) {
  static const std::map<std::string_view, std::optional<uint64_t> BlockStats::*> kFields = {
      {"rd.reqs", &BlockStats::rd_reqs},      {"rd.bytes", &BlockStats::rd_bytes},
      {"rd.times", &BlockStats::rd_times_ns}, {"wr.reqs", &BlockStats::wr_reqs},
      {"wr.bytes", &BlockStats::wr_bytes},    {"wr.times", &BlockStats::wr_times_ns},
      {"fl.reqs", &BlockStats::fl_reqs},      {"fl.times", &BlockStats::fl_times_ns},
      {"errors", &BlockStats::errors},        {"allocation", &BlockStats::allocation},
      {"capacity", &BlockStats::capacity},    {"physical", &BlockStats::physical},
      {"threshold", &BlockStats::threshold},
  };
  if (f == "name") {
    b.name = AsString(p);
  } else if (f == "path") {
    b.path = AsString(p);
  } else if (auto it = kFields.find(f); it != kFields.end()) {
    b.*(it->second) = TypedParamUint(p);
  }
}

void SetNetField(InterfaceStats& n, std::string_view f, const virTypedParameter& p) {
  static const std::map<std::string_view, std::optional<uint64_t> InterfaceStats::*> kFields = {
      {"rx.bytes", &InterfaceStats::rx_bytes}, {"rx.pkts", &InterfaceStats::rx_pkts},
      {"rx.errs", &InterfaceStats::rx_errs},   {"rx.drop", &InterfaceStats::rx_drop},
      {"tx.bytes", &InterfaceStats::tx_bytes}, {"tx.pkts", &InterfaceStats::tx_pkts},
      {"tx.errs", &InterfaceStats::tx_errs},   {"tx.drop", &InterfaceStats::tx_drop},
  };
  if (f == "name") {
    n.name = AsString(p);
  } else if (auto it = kFields.find(f); it != kFields.end()) {
    n.*(it->second) = TypedParamUint(p);
  }
}

void SetBalloonField(DomainStats& d, std::string_view f, const virTypedParameter& p) {
  MemoryStats& m = d.memory;
  if (f == "current") {
    m.current = AsKiB(p);
    d.memory_bytes = m.current;
  } else if (f == "maximum") {
    m.maximum = AsKiB(p);
    d.max_memory_bytes = m.maximum;
  } else if (f == "swap_in") {
    m.swap_in = AsKiB(p);
  } else if (f == "swap_out") {
    m.swap_out = AsKiB(p);
  } else if (f == "major_fault") {
    m.major_fault = TypedParamUint(p);
  } else if (f == "minor_fault") {
    m.minor_fault = TypedParamUint(p);
  } else if (f == "unused") {
    m.unused = AsKiB(p);
  } else if (f == "available") {
    m.available = AsKiB(p);
  } else if (f == "usable") {
    m.usable = AsKiB(p);
  } else if (f == "disk_caches") {
    m.disk_caches = AsKiB(p);
  } else if (f == "rss") {
    m.rss = AsKiB(p);
  } else if (f == "hugetlb_pgalloc") {
    m.hugetlb_pgalloc = TypedParamUint(p);
  } else if (f == "hugetlb_pgfail") {
    m.hugetlb_pgfail = TypedParamUint(p);
  } else if (f == "last-update") {
    m.last_update_unix = AsInt(p);
  }
}

void SetIothreadField(IothreadStats& t, std::string_view f, const virTypedParameter& p) {
  if (f == "poll-max-ns") {
    t.poll_max_ns = TypedParamUint(p);
  } else if (f == "poll-grow") {
    t.poll_grow = TypedParamUint(p);
  } else if (f == "poll-shrink") {
    t.poll_shrink = TypedParamUint(p);
  }
}

void SetDirtyRateField(DirtyRateStats& r, std::string_view f, const virTypedParameter& p) {
  unsigned vcpu = 0;
  std::string_view field;
  if (f == "calc_status") {
    if (auto v = AsInt(p); v && *v >= 0 && *v <= 2) r.calc_status = static_cast<int>(*v);
  } else if (f == "calc_start_time") {
    r.calc_start_time = AsInt(p);
  } else if (f == "calc_period") {
    if (auto v = AsInt(p); v && *v >= 0 && *v <= INT32_MAX) {
      r.calc_period_seconds = static_cast<int>(*v);
    }
  } else if (f == "megabytes_per_second") {
    r.mebibytes_per_second = TypedParamUint(p);
  } else if (f.starts_with("vcpu.") && SplitIndexed(f.substr(5), vcpu, field) &&
             field == "megabytes_per_second" &&
             r.vcpu_mebibytes_per_second.size() < kMaxIothreads) {
    if (auto v = TypedParamUint(p)) r.vcpu_mebibytes_per_second.emplace_back(vcpu, *v);
  }
}

// Keeps the first device of each name, in index order; counts the rest.
template <typename T>
std::vector<T> UniqueByName(std::map<unsigned, T>& by_index, int& skipped) {
  std::vector<T> out;
  std::set<std::string> seen;
  for (auto& [index, dev] : by_index) {
    if (dev.name.empty() || !seen.insert(dev.name).second) {
      ++skipped;
      continue;
    }
    out.push_back(std::move(dev));
  }
  return out;
}

}  // namespace

bool IsActiveState(DomainState state) {
  return state == DomainState::kRunning || state == DomainState::kBlocked ||
         state == DomainState::kPaused || state == DomainState::kShutdown ||
         state == DomainState::kPmSuspended;
}

bool ParseStatGroups(const std::vector<std::string>& names, StatGroups& out) {
  StatGroups groups = 0;
  for (const std::string& name : names) {
    bool found = false;
    for (const GroupName& g : kGroupNames) {
      if (name == g.name) {
        groups |= g.bit;
        found = true;
      }
    }
    if (!found) return false;
  }
  out = groups;
  return true;
}

std::vector<std::string> StatGroupNames(StatGroups groups) {
  std::vector<std::string> out;
  for (const GroupName& g : kGroupNames) {
    if (groups & g.bit) out.emplace_back(g.name);
  }
  return out;
}

StatsParseResult ParseDomainStatsParams(const virTypedParameter* params, int nparams,
                                        DomainStats& out) {
  StatsParseResult result;
  std::map<unsigned, VcpuStats> vcpus;
  std::map<unsigned, BlockStats> blocks;
  std::map<unsigned, InterfaceStats> nets;
  std::map<unsigned, IothreadStats> iothreads;
  for (int i = 0; i < nparams; ++i) {
    const virTypedParameter& p = params[i];
    std::string_view key(p.field, strnlen(p.field, VIR_TYPED_PARAM_FIELD_LENGTH));
    auto dot = key.find('.');
    if (dot == std::string_view::npos) continue;
    std::string_view group = key.substr(0, dot);
    std::string_view rest = key.substr(dot + 1);
    unsigned index = 0;
    std::string_view field;
    if (group == "state") {
      result.groups_present |= VIR_DOMAIN_STATS_STATE;
      auto v = TypedParamUint(p);
      if (!v) continue;
      if (rest == "state") {
        out.state = *v <= static_cast<uint64_t>(DomainState::kPmSuspended)
                        ? static_cast<DomainState>(*v)
                        : DomainState::kNoState;
        out.active = IsActiveState(out.state);
      } else if (rest == "reason") {
        out.state_reason = static_cast<int>(*v);
      }
    } else if (group == "cpu") {
      result.groups_present |= VIR_DOMAIN_STATS_CPU_TOTAL;
      if (rest == "time") {
        out.cpu_time_ns = TypedParamUint(p);
      } else if (rest == "user") {
        out.cpu_user_ns = TypedParamUint(p);
      } else if (rest == "system") {
        out.cpu_system_ns = TypedParamUint(p);
      }
    } else if (group == "balloon") {
      result.groups_present |= VIR_DOMAIN_STATS_BALLOON;
      SetBalloonField(out, rest, p);
    } else if (group == "vcpu") {
      result.groups_present |= VIR_DOMAIN_STATS_VCPU;
      if (rest == "current") {
        if (auto v = TypedParamUint(p)) out.virtual_cpus = static_cast<unsigned>(*v);
      } else if (SplitIndexed(rest, index, field)) {
        VcpuStats& v = vcpus[index];
        v.id = index;
        SetVcpuField(v, field, p);
      }
    } else if (group == "block") {
      result.groups_present |= VIR_DOMAIN_STATS_BLOCK;
      if (SplitIndexed(rest, index, field)) SetBlockField(blocks[index], field, p);
    } else if (group == "net") {
      result.groups_present |= VIR_DOMAIN_STATS_INTERFACE;
      if (SplitIndexed(rest, index, field)) SetNetField(nets[index], field, p);
    } else if (group == "perf") {
      if (!(result.groups_present & VIR_DOMAIN_STATS_PERF)) out.perf_events.clear();
      result.groups_present |= VIR_DOMAIN_STATS_PERF;
      auto v = TypedParamUint(p);
      if (v && IsEventName(rest) && out.perf_events.size() < kMaxPerfEvents) {
        out.perf_events.push_back({std::string(rest), *v});
      }
    } else if (group == "iothread") {
      result.groups_present |= VIR_DOMAIN_STATS_IOTHREAD;
      if (rest == "count") {
        if (auto v = TypedParamUint(p); v && *v <= UINT32_MAX) {
          out.iothread_count = static_cast<unsigned>(*v);
        }
      } else if (SplitIndexed(rest, index, field) &&
                 (iothreads.count(index) || iothreads.size() < kMaxIothreads)) {
        IothreadStats& t = iothreads[index];
        t.id = index;
        SetIothreadField(t, field, p);
      }
    } else if (group == "dirtyrate") {
      result.groups_present |= VIR_DOMAIN_STATS_DIRTYRATE;
      if (!out.dirty_rate) out.dirty_rate.emplace();
      SetDirtyRateField(*out.dirty_rate, rest, p);
    }
  }
  if (result.groups_present & VIR_DOMAIN_STATS_IOTHREAD) {
    out.iothreads.clear();
    for (auto& [id, t] : iothreads) out.iothreads.push_back(t);
  }
  if (!out.active && out.state != DomainState::kNoState) {
    // libvirt 9 reports libvirtd's own CPU time as cpu.* of an inactive domain.
    out.cpu_time_ns.reset();
    out.cpu_user_ns.reset();
    out.cpu_system_ns.reset();
  }
  if (!vcpus.empty()) {
    out.vcpus.clear();
    for (auto& [index, v] : vcpus) out.vcpus.push_back(v);
  }
  if (result.groups_present & VIR_DOMAIN_STATS_BLOCK) {
    out.blocks = UniqueByName(blocks, result.skipped_devices);
  }
  if (result.groups_present & VIR_DOMAIN_STATS_INTERFACE) {
    out.interfaces = UniqueByName(nets, result.skipped_devices);
  }
  return result;
}

bool ParseDomainXml(std::string_view xml, DomainXmlInfo& out) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return false;
  pugi::xml_node domain = doc.child("domain");
  if (!domain) return false;
  pugi::xml_node type = domain.child("os").child("type");
  out.os_type = type.text().as_string();
  out.os_arch = type.attribute("arch").as_string();
  out.os_machine = type.attribute("machine").as_string();
  pugi::xml_node devices = domain.child("devices");
  std::set<std::string> seen_disks;
  for (pugi::xml_node disk : devices.children("disk")) {
    std::string target = disk.child("target").attribute("dev").as_string();
    if (target.empty() || !seen_disks.insert(target).second) continue;
    pugi::xml_node source = disk.child("source");
    std::string path;
    for (const char* attr : {"file", "dev", "name", "volume"}) {
      path = source.attribute(attr).as_string();
      if (!path.empty()) break;
    }
    out.disks.push_back({std::move(target), std::move(path)});
  }
  std::set<std::string> seen_nets;
  for (pugi::xml_node iface : devices.children("interface")) {
    std::string target = iface.child("target").attribute("dev").as_string();
    if (target.empty() || !seen_nets.insert(target).second) continue;
    out.interfaces.push_back(std::move(target));
  }
  return true;
}

}  // namespace virtscale
