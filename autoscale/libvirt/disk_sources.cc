#include "autoscale/libvirt/disk_sources.h"

#include <pugixml.hpp>

namespace virtscale::autoscale {

std::vector<DiskSource> ParseDiskSources(std::string_view domain_xml) {
  std::vector<DiskSource> out;
  pugi::xml_document doc;
  if (!doc.load_buffer(domain_xml.data(), domain_xml.size())) return out;
  for (pugi::xml_node disk : doc.child("domain").child("devices").children("disk")) {
    for (pugi::xpath_node hit : disk.select_nodes(".//source")) {
      pugi::xml_node source = hit.node();
      DiskSource s;
      for (const char* attr : {"file", "dev", "dir"}) {
        if (const char* v = source.attribute(attr).value(); *v) {
          s.path = v;
          break;
        }
      }
      s.pool = source.attribute("pool").value();
      s.volume = source.attribute("volume").value();
      for (pugi::xml_node p = source.parent(); p && p != disk; p = p.parent()) {
        if (std::string_view(p.name()) == "backingStore") s.backing = true;
      }
      if (!s.path.empty() || !s.volume.empty()) out.push_back(std::move(s));
    }
  }
  return out;
}

bool UsesVolume(const std::vector<DiskSource>& sources, const std::string& path,
                const std::string& pool, const std::string& name) {
  for (const DiskSource& s : sources) {
    if (!path.empty() && s.path == path) return true;
    if (!s.volume.empty() && s.volume == name && s.pool == pool) return true;
  }
  return false;
}

}  // namespace virtscale::autoscale
