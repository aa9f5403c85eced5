#include "autoscale/domain_template.h"

#include <fmt/format.h>

#include <algorithm>
#include <pugixml.hpp>
#include <random>
#include <set>
#include <sstream>

#include "collectors/domain_metadata.h"
#include "common/file_reader.h"
#include "common/sha256.h"

namespace virtscale::autoscale {
namespace {

std::string_view LocalName(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

// Namespace URI of an element, resolved through the xmlns attributes of it and
// its ancestors (pugixml does not track namespaces itself).
std::string_view NamespaceOf(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  std::string attr = colon == std::string_view::npos
                         ? std::string("xmlns")
                         : "xmlns:" + std::string(name.substr(0, colon));
  for (pugi::xml_node n = node; n && n.type() == pugi::node_element; n = n.parent()) {
    if (pugi::xml_attribute a = n.attribute(attr.c_str())) return a.value();
  }
  return {};
}

bool IsTemplateAnnotation(const pugi::xml_node& node) {
  return node.type() == pugi::node_element && NamespaceOf(node) == kTemplateNamespace;
}

// 1-based line of a byte offset in `text`.
int LineAt(std::string_view text, ptrdiff_t offset) {
  offset = std::clamp<ptrdiff_t>(offset, 0, static_cast<ptrdiff_t>(text.size()));
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + offset, '\n'));
}

pugi::xml_node FindDiskByTarget(const pugi::xml_node& domain, std::string_view target) {
  for (pugi::xml_node disk : domain.child("devices").children("disk")) {
    if (target == disk.child("target").attribute("dev").value()) return disk;
  }
  return {};
}

// Decodes one annotation; returns an error message or nullopt.
std::optional<std::string> DecodeAnnotation(const pugi::xml_node& node, VolumeAnnotation& out) {
  if (LocalName(node) != "volume") {
    return fmt::format("unknown virtscale template annotation <{}>", node.name());
  }
  for (pugi::xml_attribute attr : node.attributes()) {
    std::string_view key = attr.name();
    if (key == "target") {
      out.target = attr.value();
    } else if (key == "pool") {
      out.pool = attr.value();
    } else if (key == "base") {
      out.base = attr.value();
    } else if (key == "format") {
      out.format = attr.value();
    } else if (key == "mode") {
      std::string_view mode = attr.value();
      if (mode == "overlay") {
        out.mode = VolumeAnnotation::Mode::kOverlay;
      } else if (mode == "clone") {
        out.mode = VolumeAnnotation::Mode::kClone;
      } else {
        return fmt::format("volume annotation: mode must be overlay or clone, got '{}'", mode);
      }
    } else if (key.substr(0, 5) != "xmlns") {
      return fmt::format("volume annotation: unknown attribute '{}'", key);
    }
  }
  for (auto [value, what] : {std::pair{&out.target, "target"}, std::pair{&out.pool, "pool"},
                             std::pair{&out.base, "base"}}) {
    if (value->empty()) return fmt::format("volume annotation: missing attribute '{}'", what);
  }
  if (out.format.empty() && out.mode == VolumeAnnotation::Mode::kOverlay) out.format = "qcow2";
  if (out.mode == VolumeAnnotation::Mode::kOverlay && out.format != "qcow2" &&
      out.format != "qed") {
    return fmt::format(
        "volume annotation: an overlay needs a backing-capable format (qcow2), got '{}'",
        out.format);
  }
  return std::nullopt;
}

void SetOrInsertText(pugi::xml_node parent, const char* name, const std::string& text,
                     pugi::xml_node after) {
  pugi::xml_node node = parent.child(name);
  if (!node) {
    node = after ? parent.insert_child_after(name, after) : parent.prepend_child(name);
  }
  node.text().set(text.c_str());
}

void ReplaceDiskSource(pugi::xml_node disk, const CreatedVolume& volume, bool add_driver_name) {
  disk.attribute("type")
      ? disk.attribute("type").set_value(volume.block ? "block" : "file")
      : disk.prepend_attribute("type").set_value(volume.block ? "block" : "file");
  while (pugi::xml_node old = disk.child("source")) disk.remove_child(old);
  while (pugi::xml_node old = disk.child("backingStore")) disk.remove_child(old);
  pugi::xml_node target = disk.child("target");
  pugi::xml_node source =
      target ? disk.insert_child_before("source", target) : disk.append_child("source");
  source.append_attribute(volume.block ? "dev" : "file").set_value(volume.path.c_str());
  pugi::xml_node driver = disk.child("driver");
  if (!driver) {
    driver = disk.prepend_child("driver");
    if (add_driver_name) driver.append_attribute("name").set_value("qemu");
  }
  if (!driver.attribute("type")) driver.append_attribute("type");
  driver.attribute("type").set_value(volume.format.c_str());
}

// 52:54:00 is the locally administered, unicast prefix QEMU and libvirt use.
std::string MacFromBits(uint64_t bits) {
  return fmt::format("52:54:00:{:02x}:{:02x}:{:02x}", bits & 0xff, (bits >> 8) & 0xff,
                     (bits >> 16) & 0xff);
}

// The deepest element and its depth (the root is 1), found without recursion.
std::pair<pugi::xml_node, int> DeepestElement(const pugi::xml_document& doc) {
  struct Walker : pugi::xml_tree_walker {
    pugi::xml_node node;
    int max_depth = 0;
    bool for_each(pugi::xml_node& n) override {
      // depth() is 0 for the root element's own level.
      if (n.type() == pugi::node_element && depth() + 1 > max_depth) {
        max_depth = depth() + 1;
        node = n;
      }
      return true;
    }
  } walker;
  const_cast<pugi::xml_document&>(doc).traverse(walker);
  return {walker.node, walker.max_depth};
}

}  // namespace

std::string VolumeAnnotation::VolumeName(const std::string& domain,
                                         const std::string& resolved_format) const {
  return fmt::format("{}-{}.{}", domain, target, resolved_format);
}

TemplateParseResult DomainTemplate::Parse(std::string_view xml) {
  TemplateParseResult result;
  if (xml.size() > kMaxTemplateBytes) {
    result.error = fmt::format("template is {} bytes, more than the limit of {} MiB", xml.size(),
                               kMaxTemplateBytes >> 20);
    return result;
  }
  pugi::xml_document doc;
  pugi::xml_parse_result parsed = doc.load_buffer(xml.data(), xml.size());
  if (!parsed) {
    result.error = fmt::format("line {}: not well-formed XML: {}", LineAt(xml, parsed.offset),
                               parsed.description());
    return result;
  }
  pugi::xml_node root = doc.document_element();
  if (!root) {
    result.error = "no root element";
    return result;
  }
  if (auto deepest = DeepestElement(doc); deepest.second > kMaxTemplateDepth) {
    result.error =
        fmt::format("line {}: elements nest {} deep, more than the limit of {}",
                    LineAt(xml, deepest.first.offset_debug()), deepest.second, kMaxTemplateDepth);
    return result;
  }
  if (std::string_view(root.name()) != "domain") {
    result.error = fmt::format("root element is <{}>, expected <domain>", root.name());
    return result;
  }
  if (std::string_view(root.attribute("type").value()).empty()) {
    result.error = "<domain> has no type attribute (e.g. type='kvm')";
    return result;
  }
  if (std::string_view(root.child("os").child_value("type")).empty()) {
    result.error = "<domain> has no <os><type> (e.g. <type>hvm</type>)";
    return result;
  }
  DomainTemplate tmpl;
  tmpl.xml_ = std::string(xml);
  tmpl.content_hash_ = Sha256Hex(xml);
  std::set<std::string> targets;
  for (pugi::xml_node node : root.child("metadata").children()) {
    if (!IsTemplateAnnotation(node)) continue;
    VolumeAnnotation volume;
    if (auto error = DecodeAnnotation(node, volume)) {
      result.error = *error;
      return result;
    }
    if (!FindDiskByTarget(root, volume.target)) {
      result.error =
          fmt::format("volume annotation: no <disk> with <target dev='{}'>", volume.target);
      return result;
    }
    if (!targets.insert(volume.target).second) {
      result.error = fmt::format("volume annotation: target '{}' annotated twice", volume.target);
      return result;
    }
    tmpl.volumes_.push_back(std::move(volume));
  }
  result.value = std::move(tmpl);
  return result;
}

TemplateParseResult DomainTemplate::Load(const std::string& path) {
  std::string error;
  auto text = ReadRegularFile(path, kMaxTemplateBytes, error);
  if (!text) {
    TemplateParseResult result;
    result.error = fmt::format("{}: cannot read template: {}", path, error);
    return result;
  }
  TemplateParseResult result = Parse(*text);
  if (!result.ok()) {
    // "line N: ..." becomes "PATH:N: ..." (the FILE:LINE form of check config).
    if (result.error.rfind("line ", 0) == 0) {
      result.error = path + ":" + result.error.substr(5);
    } else {
      result.error = path + ": " + result.error;
    }
  }
  return result;
}

std::optional<std::string> CheckDomainTemplate(const std::string& abs_path) {
  TemplateParseResult result = DomainTemplate::Load(abs_path);
  if (result.ok()) return std::nullopt;
  return result.error;
}

std::string DomainTemplate::Render(const RenderParams& params,
                                   const std::vector<CreatedVolume>& volumes,
                                   const RandomSource& random) const {
  pugi::xml_document doc;
  doc.load_buffer(xml_.data(), xml_.size());
  pugi::xml_node root = doc.document_element();
  root.remove_attribute("id");

  SetOrInsertText(root, "name", params.name, {});
  pugi::xml_node name = root.child("name");
  while (pugi::xml_node old = root.child("uuid")) root.remove_child(old);
  // The same UUID goes into the ownership element: a copy gets another UUID
  // and so is never mistaken for an owned member (DESIGN.md "Ownership").
  const std::string uuid = RandomUuid(random);
  root.insert_child_after("uuid", name).text().set(uuid.c_str());
  // A VM generation ID identifies one VM instance; `<genid/>` asks libvirt for a new one.
  if (pugi::xml_node genid = root.child("genid")) genid.text().set("");

  std::set<std::string> macs;
  for (pugi::xml_node iface : root.child("devices").children("interface")) {
    uint64_t bits = random();
    std::string mac = MacFromBits(bits);
    for (uint64_t k = 1; !macs.insert(mac).second; ++k) mac = MacFromBits(bits + k);
    pugi::xml_node mac_node = iface.child("mac");
    if (!mac_node) mac_node = iface.prepend_child("mac");
    if (!mac_node.attribute("address")) mac_node.append_attribute("address");
    mac_node.attribute("address").set_value(mac.c_str());
    while (pugi::xml_node target = iface.child("target")) iface.remove_child(target);
  }

  std::string_view domain_type = root.attribute("type").value();
  bool qemu = domain_type == "kvm" || domain_type == "qemu";
  for (const CreatedVolume& volume : volumes) {
    if (pugi::xml_node disk = FindDiskByTarget(root, volume.target)) {
      ReplaceDiskSource(disk, volume, qemu);
    }
  }

  pugi::xml_node metadata = root.child("metadata");
  if (!metadata) {
    pugi::xml_node after = root.child("uuid");
    for (const char* n : {"genid", "title", "description"}) {
      if (pugi::xml_node node = root.child(n)) after = node;
    }
    metadata = root.insert_child_after("metadata", after);
  }
  for (pugi::xml_node child = metadata.first_child(); child;) {
    pugi::xml_node next = child.next_sibling();
    if (IsTemplateAnnotation(child) || NamespaceOf(child) == kMetadataNamespace) {
      metadata.remove_child(child);
    }
    child = next;
  }
  pugi::xml_document instance;
  std::string instance_xml = FormatVirtscaleMetadata({.group = params.group,
                                                      .template_path = params.template_path,
                                                      .created_at_unix = params.created_at_unix,
                                                      .uuid = uuid,
                                                      .template_hash = content_hash_});
  instance.load_buffer(instance_xml.data(), instance_xml.size());
  std::string volume_tag = std::string(kMetadataPrefix) + ":volume";
  for (const CreatedVolume& volume : volumes) {
    pugi::xml_node node = instance.document_element().append_child(volume_tag.c_str());
    node.append_attribute("target").set_value(volume.target.c_str());
    node.append_attribute("pool").set_value(volume.pool.c_str());
    node.append_attribute("name").set_value(volume.name.c_str());
  }
  metadata.append_copy(instance.document_element());

  // Unindented: indentation grows with the square of the depth; libvirt
  // formats the stored definition itself.
  std::ostringstream out;
  doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
  return out.str();
}

std::vector<CreatedVolume> ParseRecordedVolumes(std::string_view metadata_xml) {
  std::vector<CreatedVolume> volumes;
  pugi::xml_document doc;
  if (!doc.load_buffer(metadata_xml.data(), metadata_xml.size())) return volumes;
  pugi::xml_node root = doc.document_element();
  if (LocalName(root) != "instance") return volumes;
  for (pugi::xml_node child : root.children()) {
    if (child.type() != pugi::node_element || LocalName(child) != "volume") continue;
    CreatedVolume volume;
    volume.target = child.attribute("target").value();
    volume.pool = child.attribute("pool").value();
    volume.name = child.attribute("name").value();
    if (volume.pool.empty() || volume.name.empty()) continue;
    volumes.push_back(std::move(volume));
  }
  return volumes;
}

RandomSource MakeSystemRandomSource() {
  std::random_device device;
  std::seed_seq seed{device(), device(), device(), device()};
  return [engine = std::mt19937_64(seed)]() mutable { return engine(); };
}

std::string RandomUuid(const RandomSource& random) {
  uint8_t bytes[16];
  for (int half = 0; half < 2; ++half) {
    uint64_t value = random();
    for (int i = 0; i < 8; ++i) bytes[half * 8 + i] = static_cast<uint8_t>(value >> (8 * i));
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40;  // version 4: random
  bytes[8] = (bytes[8] & 0x3f) | 0x80;  // RFC 4122 variant
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += fmt::format("{:02x}", bytes[i]);
  }
  return out;
}

std::string RandomMac(const RandomSource& random) { return MacFromBits(random()); }

}  // namespace virtscale::autoscale
