#include "collectors/host_collector.h"

#include <chrono>
#include <string>
#include <vector>

#include "collectors/libvirt_error.h"
#include "collectors/typed_param_value.h"

namespace virtscale {

void CollectHost(virConnectPtr conn, CallErrorLog& errors, HostResult& out) {
  const auto start = std::chrono::steady_clock::now();
  auto fail = [&](const char* call) {
    LibvirtError err = LastLibvirtError();
    out.connection_lost |= err.connection_lost;
    errors.Record(call, err, "");
    out.ok = false;
  };
  out.ok = true;
  virNodeInfo info{};
  if (virNodeGetInfo(conn, &info) == 0) {
    out.host.cpus = info.cpus;
    out.host.memory_total_bytes = KiBToBytes(info.memory);
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
  out.duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace virtscale
