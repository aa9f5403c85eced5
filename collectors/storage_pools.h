#pragma once
// The storage_pools collector: every storage pool of the connection with its
// state, type and sizes (virConnectListAllStoragePools, then per pool
// virStoragePoolGetInfo and the pool XML for its type). The sampler runs it
// beside the host collector under libvirt.call_timeout; a failure leaves the
// pools out of that sample and never fails the sample.
//
//   StoragePoolsResult r;
//   CollectStoragePools(conn.get(), call_errors, r);
//   if (!r.ok) { /* listed nothing, or some pool could not be read */ }
//
// Reading is split from parsing: ParseStoragePoolType takes the XML text.
#include <libvirt/libvirt.h>

#include <string>
#include <string_view>
#include <vector>

#include "collectors/call_errors.h"
#include "collectors/snapshot.h"

namespace virtscale {

struct StoragePoolsResult {
  std::vector<StoragePoolStats> pools;  // sorted by name; empty when the list failed
  // The list succeeded and every listed pool was read (a pool undefined since
  // the list is left out and is no failure).
  bool ok = false;
  bool connection_lost = false;
  double duration_seconds = 0;
};

// Fills `out`; frees every libvirt object it gets; records failed calls in
// `errors` (list_storage_pools, storage_pool_info, storage_pool_xml). Blocks on libvirt.
void CollectStoragePools(virConnectPtr conn, CallErrorLog& errors, StoragePoolsResult& out);

// The `type` attribute of a pool XML's root <pool>; empty when the text is not
// such XML.
[[nodiscard]] std::string ParseStoragePoolType(std::string_view xml);

}  // namespace virtscale
