// The limit for a sample: what plain libvirt costs for the stats virtscale
// exports, timed with nothing around it. Prints one JSON object; asserts nothing.
//
//   raw_bulk_stats test:///tmp/node-1000.xml [--repeat 20] [--no-classic]
//                  [--groups state,cpu,balloon,vcpu,interface,block]
//
// "bulk" is one unsharded virConnectGetAllDomainStats for the core groups
// (state, cpu, balloon, vcpu, interface, block), with the NOWAIT flag the
// sampler uses (dropped when the driver rejects it). Drivers that fill only
// part of the groups in bulk (the test driver fills state.* only) make the
// sampler fall back to the classic per-domain calls, so "classic" times those
// too: list all domains, virDomainGetInfo on each, and on active ones
// virDomainMemoryStats, virDomainGetVcpus, virDomainBlockStats per disk and
// virDomainBlockStats and virDomainGetBlockInfo per disk, and
// virDomainInterfaceStats per NIC. Device names are read from the domain XML
// once, outside the timing, as the sampler caches them.
//
// Under `valgrind --tool=callgrind --instr-atstart=no` the last round of each
// kind runs between CALLGRIND_ZERO_STATS and CALLGRIND_DUMP_STATS_AT("raw_bulk")
// / ("raw_classic"), so its instruction count can be set beside the agent's.
//
// Plain libvirt and the C library only, so nothing of virtscale is measured.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sys/resource.h>
#include <valgrind/callgrind.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

constexpr unsigned kCoreGroups = VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |
                                 VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU |
                                 VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK;

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double CpuMs() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

struct Series {
  std::vector<double> wall_ms;
  std::vector<double> cpu_ms;

  static double Quantile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
  }
  static std::string List(const std::vector<double>& v) {
    std::string out;
    char buf[32];
    for (double x : v) {
      std::snprintf(buf, sizeof buf, "%s%.3f", out.empty() ? "" : ", ", x);
      out += buf;
    }
    return "[" + out + "]";
  }
  std::string Json() const {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"rounds\": %zu, \"p50_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, "
                  "\"cpu_ms_p50\": %.3f, ",
                  wall_ms.size(), Quantile(wall_ms, 0.5),
                  wall_ms.empty() ? 0 : *std::min_element(wall_ms.begin(), wall_ms.end()),
                  wall_ms.empty() ? 0 : *std::max_element(wall_ms.begin(), wall_ms.end()),
                  Quantile(cpu_ms, 0.5));
    return buf + ("\"wall_ms\": " + List(wall_ms) + ", \"cpu_ms\": " + List(cpu_ms) + "}");
  }
};

// Values of <target dev='X'> inside each <TAG ...>...</TAG> element of `xml`.
std::vector<std::string> DeviceTargets(std::string_view xml, std::string_view tag) {
  std::vector<std::string> out;
  const std::string open = "<" + std::string(tag) + " ";
  const std::string close = "</" + std::string(tag) + ">";
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    size_t end = xml.find(close, pos);
    if (end == std::string_view::npos) break;
    std::string_view element = xml.substr(pos, end - pos);
    size_t t = element.find("<target dev=");
    if (t != std::string_view::npos && t + 13 < element.size()) {
      char quote = element[t + 12];
      size_t value_end = element.find(quote, t + 13);
      if (value_end != std::string_view::npos) {
        out.emplace_back(element.substr(t + 13, value_end - t - 13));
      }
    }
    pos = end;
  }
  return out;
}

struct Devices {
  std::vector<std::string> disks;
  std::vector<std::string> nics;
};
using DeviceMap = std::unordered_map<std::string, Devices>;  // by domain name

// One round of the classic calls; returns how many calls failed.
int ClassicRound(virConnectPtr conn, const DeviceMap& devices) {
  int failed = 0;
  virDomainPtr* doms = nullptr;
  int n = virConnectListAllDomains(conn, &doms, 0);
  if (n < 0) return 1;
  for (int i = 0; i < n; ++i) {
    virDomainPtr dom = doms[i];
    virDomainInfo info{};
    if (virDomainGetInfo(dom, &info) < 0) ++failed;
    if (info.state == VIR_DOMAIN_RUNNING || info.state == VIR_DOMAIN_BLOCKED ||
        info.state == VIR_DOMAIN_PAUSED) {
      virDomainMemoryStatStruct mem[VIR_DOMAIN_MEMORY_STAT_NR];
      if (virDomainMemoryStats(dom, mem, VIR_DOMAIN_MEMORY_STAT_NR, 0) < 0) ++failed;
      std::vector<virVcpuInfo> vcpus(std::max<unsigned>(1, info.nrVirtCpu));
      if (virDomainGetVcpus(dom, vcpus.data(), static_cast<int>(vcpus.size()), nullptr, 0) < 0) {
        ++failed;
      }
      auto found = devices.find(virDomainGetName(dom));
      if (found == devices.end()) continue;
      const Devices& d = found->second;
      for (const std::string& disk : d.disks) {
        virDomainBlockStatsStruct st{};
        if (virDomainBlockStats(dom, disk.c_str(), &st, sizeof st) < 0) ++failed;
        virDomainBlockInfo info{};  // allocation/capacity, as the bulk block group has them
        if (virDomainGetBlockInfo(dom, disk.c_str(), &info, 0) < 0) ++failed;
      }
      for (const std::string& nic : d.nics) {
        virDomainInterfaceStatsStruct st{};
        if (virDomainInterfaceStats(dom, nic.c_str(), &st, sizeof st) < 0) ++failed;
      }
    }
  }
  for (int i = 0; i < n; ++i) virDomainFree(doms[i]);
  free(doms);
  return failed;
}

constexpr std::pair<unsigned, const char*> kGroupNames[] = {
    {VIR_DOMAIN_STATS_STATE, "state"},         {VIR_DOMAIN_STATS_CPU_TOTAL, "cpu"},
    {VIR_DOMAIN_STATS_BALLOON, "balloon"},     {VIR_DOMAIN_STATS_VCPU, "vcpu"},
    {VIR_DOMAIN_STATS_INTERFACE, "interface"}, {VIR_DOMAIN_STATS_BLOCK, "block"}};

// "cpu,block" -> bits; 0 when a name is unknown.
unsigned ParseGroups(std::string_view list) {
  unsigned bits = 0;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    unsigned bit = 0;
    for (const auto& [b, n] : kGroupNames) {
      if (name == n) bit = b;
    }
    if (bit == 0) return 0;
    bits |= bit;
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return bits;
}

std::string GroupList(unsigned bits) {
  std::string out;
  for (const auto& [bit, name] : kGroupNames) {
    if (bits & bit) out += std::string(out.empty() ? "" : ",") + "\"" + name + "\"";
  }
  return out;
}

void Usage() {
  std::fprintf(stderr, "usage: raw_bulk_stats URI [--repeat N] [--no-classic] [--groups LIST]\n");
}

void QuietErrors(void*, virErrorPtr) {}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage();
    return 2;
  }
  const char* uri = argv[1];
  int repeat = 20;
  bool classic = true;
  unsigned groups = kCoreGroups;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--no-classic") == 0) {
      classic = false;
    } else if (std::strcmp(argv[i], "--groups") == 0 && i + 1 < argc) {
      groups = ParseGroups(argv[++i]);
      if (groups == 0) {
        Usage();
        return 2;
      }
    } else {
      Usage();
      return 2;
    }
  }
  virSetErrorFunc(nullptr, QuietErrors);
  double open_start = NowMs();
  virConnectPtr conn = virConnectOpen(uri);
  if (conn == nullptr) {
    std::fprintf(stderr, "raw_bulk_stats: cannot open %s\n", uri);
    return 1;
  }
  const double open_ms = NowMs() - open_start;

  // Device names and domain count, untimed.
  DeviceMap devices;
  {
    virDomainPtr* doms = nullptr;
    int n = virConnectListAllDomains(conn, &doms, 0);
    for (int i = 0; i < n; ++i) {
      Devices d;
      char* xml = virDomainGetXMLDesc(doms[i], 0);
      if (xml != nullptr) {
        d.disks = DeviceTargets(xml, "disk");
        d.nics = DeviceTargets(xml, "interface");
        free(xml);
      }
      devices.emplace(virDomainGetName(doms[i]), std::move(d));
      virDomainFree(doms[i]);
    }
    free(doms);
  }

  CALLGRIND_START_INSTRUMENTATION;
  unsigned flags = VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT;
  Series bulk;
  int records = 0;
  long params = 0;
  unsigned groups_seen = 0;
  for (int r = 0; r < repeat + 1; ++r) {  // round 0 is a warm-up
    virDomainStatsRecordPtr* recs = nullptr;
    if (r == repeat) CALLGRIND_ZERO_STATS;
    double cpu0 = CpuMs();
    double t0 = NowMs();
    int n = virConnectGetAllDomainStats(conn, groups, &recs, flags);
    if (n < 0 && flags != 0) {
      flags = 0;
      n = virConnectGetAllDomainStats(conn, groups, &recs, flags);
    }
    double wall = NowMs() - t0;
    double cpu = CpuMs() - cpu0;
    if (r == repeat) CALLGRIND_DUMP_STATS_AT("raw_bulk");
    if (n < 0) {
      std::fprintf(stderr, "raw_bulk_stats: bulk call failed: %s\n", virGetLastErrorMessage());
      virConnectClose(conn);
      return 1;
    }
    records = n;
    params = 0;
    for (int i = 0; i < n; ++i) {
      params += recs[i]->nparams;
      for (int p = 0; p < recs[i]->nparams; ++p) {
        std::string_view f = recs[i]->params[p].field;
        if (f.starts_with("state.")) groups_seen |= VIR_DOMAIN_STATS_STATE;
        if (f.starts_with("cpu.")) groups_seen |= VIR_DOMAIN_STATS_CPU_TOTAL;
        if (f.starts_with("balloon.")) groups_seen |= VIR_DOMAIN_STATS_BALLOON;
        if (f.starts_with("vcpu.")) groups_seen |= VIR_DOMAIN_STATS_VCPU;
        if (f.starts_with("net.")) groups_seen |= VIR_DOMAIN_STATS_INTERFACE;
        if (f.starts_with("block.")) groups_seen |= VIR_DOMAIN_STATS_BLOCK;
      }
    }
    virDomainStatsRecordListFree(recs);
    if (r > 0) {
      bulk.wall_ms.push_back(wall);
      bulk.cpu_ms.push_back(cpu);
    }
  }

  Series classic_series;
  int classic_failed = 0;
  if (classic) {
    for (int r = 0; r < repeat + 1; ++r) {
      if (r == repeat) CALLGRIND_ZERO_STATS;
      double cpu0 = CpuMs();
      double t0 = NowMs();
      classic_failed = ClassicRound(conn, devices);
      double wall = NowMs() - t0;
      double cpu = CpuMs() - cpu0;
      if (r == repeat) CALLGRIND_DUMP_STATS_AT("raw_classic");
      if (r > 0) {
        classic_series.wall_ms.push_back(wall);
        classic_series.cpu_ms.push_back(cpu);
      }
    }
  }

  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"uri\": \"%s\", \"domains\": %zu, \"open_ms\": %.3f, \"bulk_flags\": \"%s\", "
      "\"bulk_groups\": [%s], \"bulk_records\": %d, \"bulk_params\": %ld, "
      "\"bulk_groups_filled\": [%s], "
      "\"max_rss_kib\": %ld, \"bulk\": %s",
      uri, devices.size(), open_ms, flags ? "NOWAIT" : "0", GroupList(groups).c_str(), records,
      params, GroupList(groups_seen).c_str(), ru.ru_maxrss, bulk.Json().c_str());
  if (classic) {
    std::printf(", \"classic\": %s, \"classic_failed_calls\": %d", classic_series.Json().c_str(),
                classic_failed);
  }
  std::printf("}\n");
  virConnectClose(conn);
  return 0;
}
