#pragma once
// The storage_pools collector: every storage pool of the connection with its
// state, type and sizes (virConnectListAllStoragePools, then per pool
// virStoragePoolGetInfo and the pool XML for its type). The sampler runs it
// beside the host collector under libvirt.call_timeout; a failure leaves the
// pools out of that sample and never fails the sample.
//
//   StoragePoolsResult r;
//   CollectStoragePools(conn.get(), r);
//   if (!r.ok) { /* listed nothing, or some pool could not be read */ }
//
// Reading is split from parsing: ParseStoragePoolType takes the XML text.
#include <libvirt/libvirt.h>

#include <string>
#include <string_view>
#include <vector>

#include "collectors/snapshot.h"

namespace virtscale {

struct StoragePoolsResult {
  std::vector<StoragePoolStats> pools;  // sorted by name; empty when the list failed
  // The list succeeded and every listed pool was read (a pool undefined since
  // the list is left out and is no failure).
  bool ok = false;
  bool connection_lost = false;
  // The first failure's libvirt error ("" when ok). Not logged here: the
  // sampler logs when it starts, changes and ends, not every sample (a host
  // without a storage driver fails every list).
  std::string error;
  double duration_seconds = 0;
};

// Fills `out`; frees every libvirt object it gets. Blocks on libvirt.
void CollectStoragePools(virConnectPtr conn, StoragePoolsResult& out);

// The `type` attribute of a pool XML's root <pool>; empty when the text is not
// such XML.
[[nodiscard]] std::string ParseStoragePoolType(std::string_view xml);

}  // namespace virtscale
