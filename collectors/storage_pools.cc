#include "collectors/storage_pools.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <pugixml.hpp>

#include "collectors/libvirt_error.h"
#include "common/utf8.h"

namespace virtscale {
namespace {

using PoolRef = std::unique_ptr<virStoragePool, decltype(&virStoragePoolFree)>;

bool HasMeasuredSizes(StoragePoolState state) {
  return state == StoragePoolState::kRunning || state == StoragePoolState::kDegraded;
}

}  // namespace

std::string ParseStoragePoolType(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return {};
  pugi::xml_node root = doc.document_element();
  if (std::string_view(root.name()) != "pool") return {};
  return root.attribute("type").value();
}

void CollectStoragePools(virConnectPtr conn, CallErrorLog& errors, StoragePoolsResult& out) {
  const auto start = std::chrono::steady_clock::now();
  out = StoragePoolsResult{};
  virStoragePoolPtr* list = nullptr;
  const int n = virConnectListAllStoragePools(conn, &list, 0);
  if (n < 0) {
    LibvirtError err = LastLibvirtError();
    out.connection_lost = err.connection_lost;
    errors.Record("list_storage_pools", err, "");
    out.duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return;
  }
  // Own every pool before the first call that can fail, so none leaks.
  std::vector<PoolRef> pools;
  pools.reserve(n);
  for (int i = 0; i < n; ++i) pools.emplace_back(list[i], &virStoragePoolFree);
  free(list);

  out.ok = true;
  for (const PoolRef& pool : pools) {
    const char* name = virStoragePoolGetName(pool.get());  // owned by the pool
    StoragePoolStats p;
    p.name = ValidUtf8(name ? name : "");
    virStoragePoolInfo info{};
    if (virStoragePoolGetInfo(pool.get(), &info) < 0) {
      LibvirtError err = LastLibvirtError();
      if (err.code == VIR_ERR_NO_STORAGE_POOL) continue;  // undefined since the list
      out.ok = false;
      out.connection_lost |= err.connection_lost;
      errors.Record("storage_pool_info", err, p.name);
      continue;
    }
    p.state = static_cast<StoragePoolState>(info.state);
    if (HasMeasuredSizes(p.state)) {
      p.capacity_bytes = info.capacity;
      p.allocation_bytes = info.allocation;
      p.available_bytes = info.available;
    }
    if (char* xml = virStoragePoolGetXMLDesc(pool.get(), 0)) {
      p.type = ValidUtf8(ParseStoragePoolType(xml));
      free(xml);
    } else {
      LibvirtError err = LastLibvirtError();
      if (err.code == VIR_ERR_NO_STORAGE_POOL) continue;
      out.ok = false;
      out.connection_lost |= err.connection_lost;
      errors.Record("storage_pool_xml", err, p.name);
    }
    out.pools.push_back(std::move(p));
  }
  std::sort(out.pools.begin(), out.pools.end(),
            [](const StoragePoolStats& a, const StoragePoolStats& b) { return a.name < b.name; });
  out.duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace virtscale
