#pragma once
// The storage a domain's XML points at, for the volume checks of a delete and of
// the start-up leftover cleanup: a volume is deleted only when it is a disk of
// the domain being deleted and no disk (nor backing file) of any other domain.
//
//   std::vector<DiskSource> own = ParseDiskSources(virDomainGetXMLDesc(...));
//   if (UsesVolume(own, "/var/lib/libvirt/images/web-3-vda.qcow2", "default",
//                  "web-3-vda.qcow2")) { ... }
#include <string>
#include <string_view>
#include <vector>

namespace virtscale::autoscale {

// One <source> under a <disk>: its own source or one in its <backingStore>
// chain (or a <mirror>). `path` comes from file=, dev= or dir=; `pool` and
// `volume` from a type='volume' source.
struct DiskSource {
  std::string path;
  std::string pool;
  std::string volume;
  bool backing = false;  // inside <backingStore>
};

// Every disk source of a domain's XML; empty when the XML is not well-formed.
std::vector<DiskSource> ParseDiskSources(std::string_view domain_xml);

// True when any of `sources` is the volume with that path, or names it by pool
// and volume name.
bool UsesVolume(const std::vector<DiskSource>& sources, const std::string& path,
                const std::string& pool, const std::string& name);

}  // namespace virtscale::autoscale
