#include "collectors/snapshot.h"

#include <algorithm>

namespace virtscale {

const char* DomainStateName(DomainState state) {
  switch (state) {
    case DomainState::kNoState:
      return "nostate";
    case DomainState::kRunning:
      return "running";
    case DomainState::kBlocked:
      return "blocked";
    case DomainState::kPaused:
      return "paused";
    case DomainState::kShutdown:
      return "shutdown";
    case DomainState::kShutoff:
      return "shutoff";
    case DomainState::kCrashed:
      return "crashed";
    case DomainState::kPmSuspended:
      return "pmsuspended";
  }
  return "unknown";
}

const char* StoragePoolStateName(StoragePoolState state) {
  switch (state) {
    case StoragePoolState::kInactive:
      return "inactive";
    case StoragePoolState::kBuilding:
      return "building";
    case StoragePoolState::kRunning:
      return "running";
    case StoragePoolState::kDegraded:
      return "degraded";
    case StoragePoolState::kInaccessible:
      return "inaccessible";
  }
  return "unknown";
}

const DomainStats* Snapshot::FindDomain(const std::string& name) const {
  auto it = std::lower_bound(domains.begin(), domains.end(), name,
                             [](const DomainStats& d, const std::string& n) { return d.name < n; });
  if (it == domains.end() || it->name != name) return nullptr;
  return &*it;
}

}  // namespace virtscale
