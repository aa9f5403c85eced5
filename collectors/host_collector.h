#pragma once
// The "host" collector: the node's CPUs and memory (virNodeGetInfo,
// virNodeGetFreeMemory) and its CPU time by mode (virNodeGetCPUStats). It
// runs as a deadline task beside the bulk stats calls. Success is false when
// virNodeGetInfo fails, or when virNodeGetCPUStats fails on a driver that has
// it; a driver without CPU stats or free memory (the test driver) is no failure.
//
//   HostResult r;
//   CollectHost(conn.get(), call_errors, r);  // or as a CollectorCall<HostResult>
#include <libvirt/libvirt.h>

#include "collectors/call_errors.h"
#include "collectors/snapshot.h"

namespace virtscale {

struct HostResult {
  HostStats host;
  bool ok = false;
  bool connection_lost = false;
  double duration_seconds = 0;
};

// Fills `out`; records failed calls in `errors` (node_info, node_cpu_stats).
// Blocks on libvirt.
void CollectHost(virConnectPtr conn, CallErrorLog& errors, HostResult& out);

}  // namespace virtscale
