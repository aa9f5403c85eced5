#include "collectors/domain_metadata.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <pugixml.hpp>
#include <sstream>

namespace virtscale {
namespace {

// Local name of an element, without any namespace prefix.
std::string_view LocalName(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

// 9999-12-31T23:59:59Z: later values are garbage, not times.
constexpr int64_t kMaxUnixSeconds = 253402300799;

// A plain decimal count in [0, max], else 0.
int64_t ParseCount(std::string_view text, int64_t max) {
  if (text.empty() || text.size() > 15) return 0;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + (c - '0');
  }
  return value <= max ? value : 0;
}

int64_t ParseUnixSeconds(std::string_view text) { return ParseCount(text, kMaxUnixSeconds); }
int64_t ParseUnixMillis(std::string_view text) {
  return ParseCount(text, kMaxUnixSeconds * 1000 + 999);
}

std::string FormatElement(const pugi::xml_document& doc) {
  std::ostringstream out;
  doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
  return out.str();
}

}  // namespace

std::optional<ScaleStamp> ParseScaleStamp(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return std::nullopt;
  pugi::xml_node root = doc.document_element();
  if (LocalName(root) != "scale") return std::nullopt;
  ScaleStamp stamp;
  stamp.group = root.attribute("group").value();
  if (stamp.group.empty()) return std::nullopt;
  stamp.last_up_unix = ParseUnixSeconds(root.attribute("up").value());
  stamp.last_down_unix = ParseUnixSeconds(root.attribute("down").value());
  return stamp;
}

std::string FormatScaleStamp(const ScaleStamp& stamp, bool bare) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child(bare ? "scale" : "vss:scale");
  if (!bare) root.append_attribute("xmlns:vss") = kScaleStampNamespace;
  root.append_attribute("group") = stamp.group.c_str();
  root.append_attribute("up") = static_cast<long long>(std::max<int64_t>(stamp.last_up_unix, 0));
  root.append_attribute("down") =
      static_cast<long long>(std::max<int64_t>(stamp.last_down_unix, 0));
  return FormatElement(doc);
}

std::optional<LifecycleStamp> ParseLifecycleStamp(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return std::nullopt;
  pugi::xml_node root = doc.document_element();
  if (LocalName(root) != "lifecycle") return std::nullopt;
  LifecycleStamp stamp;
  stamp.group = root.attribute("group").value();
  if (stamp.group.empty()) return std::nullopt;
  stamp.paused = std::string_view(root.attribute("paused").value()) == "true";
  stamp.paused_changed_ms = ParseUnixMillis(root.attribute("paused-changed").value());
  stamp.is_protected = std::string_view(root.attribute("protected").value()) == "true";
  stamp.protected_changed_ms = ParseUnixMillis(root.attribute("protected-changed").value());
  return stamp;
}

std::string FormatLifecycleStamp(const LifecycleStamp& stamp, bool bare) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child(bare ? "lifecycle" : "vsl:lifecycle");
  if (!bare) root.append_attribute("xmlns:vsl") = kLifecycleNamespace;
  root.append_attribute("group") = stamp.group.c_str();
  root.append_attribute("paused") = stamp.paused ? "true" : "false";
  root.append_attribute("paused-changed") =
      static_cast<long long>(std::max<int64_t>(stamp.paused_changed_ms, 0));
  root.append_attribute("protected") = stamp.is_protected ? "true" : "false";
  root.append_attribute("protected-changed") =
      static_cast<long long>(std::max<int64_t>(stamp.protected_changed_ms, 0));
  return FormatElement(doc);
}

std::optional<VirtscaleMetadata> ParseVirtscaleMetadata(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return std::nullopt;
  pugi::xml_node root = doc.document_element();
  if (LocalName(root) != "instance") return std::nullopt;
  VirtscaleMetadata meta;
  for (pugi::xml_node child : root.children()) {
    std::string_view name = LocalName(child);
    if (name == "group") {
      meta.group = child.text().as_string();
    } else if (name == "template") {
      meta.template_path = child.text().as_string();
    } else if (name == "created-at") {
      meta.created_at_unix = child.text().as_llong();
    } else if (name == "uuid") {
      meta.uuid = child.text().as_string();
    } else if (name == "template-hash") {
      meta.template_hash = child.text().as_string();
    }
  }
  if (meta.group.empty()) return std::nullopt;
  return meta;
}

std::string FormatVirtscaleMetadata(const VirtscaleMetadata& meta) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("virtscale:instance");
  root.append_attribute("xmlns:virtscale") = kMetadataNamespace;
  root.append_child("virtscale:group").text() = meta.group.c_str();
  root.append_child("virtscale:template").text() = meta.template_path.c_str();
  root.append_child("virtscale:created-at").text() = static_cast<long long>(meta.created_at_unix);
  if (!meta.uuid.empty()) root.append_child("virtscale:uuid").text() = meta.uuid.c_str();
  if (!meta.template_hash.empty())
    root.append_child("virtscale:template-hash").text() = meta.template_hash.c_str();
  return FormatElement(doc);
}

}  // namespace virtscale
