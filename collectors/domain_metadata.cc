#include "collectors/domain_metadata.h"

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

}  // namespace

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
  std::ostringstream out;
  doc.save(out, "", pugi::format_raw | pugi::format_no_declaration);
  return out.str();
}

}  // namespace virtscale
