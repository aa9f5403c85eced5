// Fuzzes domain template parsing and rendering: whatever Parse accepts must
// render (the header promises Render never fails on an accepted template), and
// the recorded-volume reader must survive any metadata text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "autoscale/domain_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace virtscale::autoscale;
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  (void)ParseRecordedVolumes(xml);
  TemplateParseResult parsed = DomainTemplate::Parse(xml);
  if (!parsed.ok()) return 0;
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  RandomSource random = [&state] { return state = state * 6364136223846793005ULL + 1; };
  std::vector<CreatedVolume> volumes;
  for (const VolumeAnnotation& v : parsed.value->volumes())
    volumes.push_back({.target = v.target,
                       .pool = v.pool,
                       .name = v.VolumeName("g-1", "qcow2"),
                       .path = "/var/lib/libvirt/images/g-1.qcow2",
                       .format = "qcow2"});
  const std::string out = parsed.value->Render(
      {.name = "g-1", .group = "g", .template_path = "/t.xml", .created_at_unix = 1}, volumes,
      random);
  // What we define must itself be a template we accept (a domain with a type).
  if (!DomainTemplate::Parse(out).ok()) __builtin_trap();
  return 0;
}
