#include "collectors/metadata_labels.h"

#include <pugixml.hpp>

#include "common/utf8.h"

namespace virtscale {
namespace {

bool IsLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string_view LocalName(std::string_view name) {
  const size_t colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

std::string_view PrefixOf(std::string_view name) {
  const size_t colon = name.find(':');
  return colon == std::string_view::npos ? std::string_view() : name.substr(0, colon);
}

// The namespace URI of `node`'s name, from the nearest declaration of its prefix.
std::string_view NamespaceOf(pugi::xml_node node) {
  const std::string_view prefix = PrefixOf(node.name());
  const std::string attr = prefix.empty() ? "xmlns" : "xmlns:" + std::string(prefix);
  for (pugi::xml_node n = node; n; n = n.parent()) {
    if (pugi::xml_attribute a = n.attribute(attr.c_str())) return a.value();
  }
  return {};
}

// Appends a copy of element `from` under `to`, with prefixes removed and
// namespace declarations dropped; deeper than 64 levels is left out.
void CopyLocal(pugi::xml_node from, pugi::xml_node to, int depth = 0) {
  if (depth > 64) return;
  pugi::xml_node copy = to.append_child(std::string(LocalName(from.name())).c_str());
  for (pugi::xml_attribute a : from.attributes()) {
    const std::string_view name = a.name();
    if (name == "xmlns" || name.starts_with("xmlns:")) continue;
    copy.append_attribute(std::string(LocalName(name)).c_str()) = a.value();
  }
  for (pugi::xml_node child : from.children()) {
    if (child.type() == pugi::node_element) {
      CopyLocal(child, copy, depth + 1);
    } else if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
      copy.append_child(pugi::node_pcdata).set_value(child.value());
    }
  }
}

}  // namespace

bool MetadataLabels::Add(const std::string& name, const std::string& ns, const std::string& xpath,
                         std::string& error) {
  if (labels_.size() >= kMaxLabels) {
    error = "at most " + std::to_string(kMaxLabels) + " labels";
    return false;
  }
  if (!IsLabelName(name) || name == "domain") {
    error = "\"" + BoundedUtf8(name, 64) +
            "\" is not a usable label name (want [a-zA-Z_][a-zA-Z0-9_]*, not \"domain\", "
            "not starting with __)";
    return false;
  }
  for (const Label& l : labels_) {
    if (l.name == name) {
      error = "label \"" + name + "\" is defined twice";
      return false;
    }
  }
  if (ns.empty()) {
    error = "namespace: must be the metadata element's namespace URI";
    return false;
  }
  std::shared_ptr<const pugi::xpath_query> query;
  std::string problem;
  try {
    query = std::make_shared<const pugi::xpath_query>(xpath.c_str());
    if (!*query) problem = query->result().description();
  } catch (const pugi::xpath_exception& e) {
    problem = e.what();
  }
  if (xpath.empty()) problem = "empty";
  if (!problem.empty()) {
    error = "xpath \"" + BoundedUtf8(xpath, 128) + "\": " + problem;
    return false;
  }
  labels_.push_back({name, ns, xpath, std::move(query)});
  return true;
}

std::vector<std::string> MetadataLabels::Names() const {
  std::vector<std::string> names;
  for (const Label& l : labels_) names.push_back(l.name);
  return names;
}

std::vector<std::string> MetadataLabels::Extract(std::string_view domain_xml) const {
  std::vector<std::string> values(labels_.size());
  if (labels_.empty()) return values;
  pugi::xml_document doc;
  if (!doc.load_buffer(domain_xml.data(), domain_xml.size())) return values;
  pugi::xml_node metadata = doc.child("domain").child("metadata");
  for (size_t i = 0; i < labels_.size(); ++i) {
    for (pugi::xml_node element : metadata.children()) {
      if (element.type() != pugi::node_element || NamespaceOf(element) != labels_[i].ns) continue;
      pugi::xml_document local;
      CopyLocal(element, local);
      values[i] = BoundedUtf8(labels_[i].query->evaluate_string(local), kMaxValueBytes);
      break;
    }
  }
  return values;
}

bool MetadataLabels::operator==(const MetadataLabels& other) const {
  if (labels_.size() != other.labels_.size()) return false;
  for (size_t i = 0; i < labels_.size(); ++i) {
    const Label &a = labels_[i], &b = other.labels_[i];
    if (a.name != b.name || a.ns != b.ns || a.xpath != b.xpath) return false;
  }
  return true;
}

}  // namespace virtscale
