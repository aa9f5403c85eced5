#pragma once
// Domain templates: the libvirt domain XML a group's new members are made from.
// A template is ordinary domain XML (e.g. `virsh dumpxml` of a golden VM). When
// the actuator creates a member it renders the template into the XML it defines:
//
//   - <name> is set to the new name ("web-3");
//   - <uuid> is replaced by a fresh random UUID, the root `id` attribute and any
//     <genid> value are dropped (libvirt assigns them);
//   - every <interface> gets a fresh locally administered unicast MAC
//     (52:54:00:xx:xx:xx; a <mac> is added when missing) and loses its
//     <target dev> (host tap names must be unique; libvirt picks one);
//   - <metadata> (created if missing) gets the virtscale ownership element
//     (collectors/domain_metadata.h) listing the volumes made for the domain and
//     recording the template's content_hash(); any
//     virtscale element already in the template is dropped.
//
// Per-domain disks. A template may ask for a fresh volume per domain with one
// annotation per disk, placed in the template's <metadata>:
//
//   <metadata>
//     <vst:volume xmlns:vst="http://virtscale.org/xmlns/template/1.0"
//                 target="vda" pool="default" base="web-base.qcow2" mode="overlay"/>
//   </metadata>
//
//   target  the <target dev> of the <disk> whose source is replaced (required)
//   pool    storage pool holding the base volume and the new volume (required)
//   base    name of the base volume in that pool (required)
//   mode    "overlay": a qcow2 volume backed by the base (fast, thin; the base
//           must stay unchanged) or "clone": a full copy (default "overlay")
//   format  format of the new volume (default "qcow2"; clone defaults to the
//           base volume's format)
//
// The new volume is named "{domain}-{target}.{format}" ("web-3-vda.qcow2"); the
// disk's <source> then points at its path and its <driver type> at its format.
// The annotations are removed from the rendered XML and each created volume is
// recorded inside the ownership element:
//
//   <virtscale:instance xmlns:virtscale="http://virtscale.org/xmlns/domain/1.0">
//     <virtscale:group>web</virtscale:group> ...
//     <virtscale:volume target="vda" pool="default" name="web-3-vda.qcow2"/>
//   </virtscale:instance>
//
// so deleting the domain removes exactly those volumes and nothing else.
//
// Everything here is pure (no libvirt); LibvirtActuator does the libvirt side.
//
//   auto tmpl = DomainTemplate::Parse(xml_text);
//   if (!tmpl.ok()) return tmpl.error;
//   std::string xml = tmpl.value->Render({.name = "web-3", .group = "web",
//       .template_path = path, .created_at_unix = now}, volumes, random);
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtscale::autoscale {

inline constexpr const char* kTemplateNamespace = "http://virtscale.org/xmlns/template/1.0";

// A libvirt domain is a few KB, six or seven elements deep; far larger
// templates are mistakes or attacks (docs/configuration.md "Limits").
inline constexpr size_t kMaxTemplateBytes = 1 << 20;
inline constexpr int kMaxTemplateDepth = 64;

// Returns a problem with the template file, or nullopt when it can be used:
// unreadable file, XML that is not well-formed ("PATH:LINE: ..."), a root that is
// not <domain>, no `type` attribute, no <os><type>, bad volume annotations.
// Used by `virtscale check config`.
[[nodiscard]] std::optional<std::string> CheckDomainTemplate(const std::string& abs_path);

// One <vst:volume> annotation of a template.
struct VolumeAnnotation {
  enum class Mode { kOverlay, kClone };
  std::string target;  // disk target dev, e.g. "vda"
  std::string pool;
  std::string base;  // base volume name in `pool`
  Mode mode = Mode::kOverlay;
  std::string format;  // empty: qcow2 for overlays, the base's format for clones

  // "{domain}-{target}.{format}" with format resolved as above.
  std::string VolumeName(const std::string& domain, const std::string& resolved_format) const;
};

// A volume the actuator made for one domain, as recorded in its metadata.
struct CreatedVolume {
  std::string target;  // disk target dev
  std::string pool;
  std::string name;  // volume name in `pool`
  // Only needed while rendering: where the disk's <source> points.
  std::string path;
  std::string format;  // "qcow2", "raw", ...
  bool block = false;  // a block device (disk type='block') rather than a file
};

// Parses the volumes recorded in a virtscale ownership element (as returned by
// virDomainGetMetadata; any prefix or none). Entries without pool or name are
// skipped. `path`, `format` and `block` are left empty.
std::vector<CreatedVolume> ParseRecordedVolumes(std::string_view metadata_xml);

// Random 64-bit values for UUIDs and MACs; tests pass a seeded generator.
using RandomSource = std::function<uint64_t()>;
// A generator seeded from std::random_device; not thread-safe.
RandomSource MakeSystemRandomSource();

struct RenderParams {
  std::string name;
  std::string group;
  std::string template_path;  // recorded in the metadata
  int64_t created_at_unix = 0;
};

struct TemplateParseResult;

class DomainTemplate {
 public:
  // Validates the template text (see CheckDomainTemplate for what is checked).
  [[nodiscard]] static TemplateParseResult Parse(std::string_view xml);
  // Reads and parses a file; errors are prefixed with "PATH:" (and the line).
  [[nodiscard]] static TemplateParseResult Load(const std::string& path);

  const std::vector<VolumeAnnotation>& volumes() const { return volumes_; }
  // SHA-256 (hex) of the template text exactly as given (the file's bytes), so
  // any edit, whitespace included, marks members made before it as stale
  // (`refresh:`). Recorded in each created member's <virtscale:template-hash>.
  const std::string& content_hash() const { return content_hash_; }

  // The domain XML to define. `volumes` must hold one entry per annotation
  // (matched by target); annotations without one keep the template's source.
  // Never fails on a template that Parse accepted.
  std::string Render(const RenderParams& params, const std::vector<CreatedVolume>& volumes,
                     const RandomSource& random) const;

 private:
  DomainTemplate() = default;
  std::string xml_;  // the template as given
  std::string content_hash_;
  std::vector<VolumeAnnotation> volumes_;
};

struct TemplateParseResult {
  std::optional<DomainTemplate> value;
  std::string error;  // when !value; "line N: ..." for XML syntax errors
  bool ok() const { return value.has_value(); }
};

// Helpers exposed for tests and the actuator.
std::string RandomUuid(const RandomSource& random);  // RFC 4122 version 4, lower case
std::string RandomMac(const RandomSource& random);   // 52:54:00:xx:xx:xx

}  // namespace virtscale::autoscale
