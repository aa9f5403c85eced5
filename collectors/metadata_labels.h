#pragma once
// libvirt.metadata_labels: labels for libvirt_domain_metadata_info{domain,...} 1,
// each read by an XPath from one namespaced element of the domain XML's
// <metadata> (collectd's HostnameMetadataXPath; an info metric to join on,
// as Prometheus users do for OpenStack projects):
//
//   MetadataLabels labels;
//   std::string error;
//   if (!labels.Add("project", "http://openstack.org/xmlns/libvirt/nova/1.1",
//                   "/instance/owner/project/@uuid", error)) { /* bad config */ }
//   std::vector<std::string> values = labels.Extract(domain_xml);  // one per label
//
// The XPath runs on that element alone, with namespace prefixes removed
// (pugixml's XPath has no namespaces, and every producer picks its own
// prefix): write local names, the element itself as the root.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pugi {
class xpath_query;
}

namespace virtscale {

class MetadataLabels {
 public:
  static constexpr size_t kMaxLabels = 16;
  static constexpr size_t kMaxValueBytes = 256;  // longer values are cut at a UTF-8 boundary

  // Adds a label; false with `error` set for a bad name (not a Prometheus
  // label name, or "domain"), a repeated name, an empty namespace, an XPath
  // that does not compile, or more than kMaxLabels labels.
  bool Add(const std::string& name, const std::string& ns, const std::string& xpath,
           std::string& error);

  bool empty() const { return labels_.empty(); }
  std::vector<std::string> Names() const;
  // One value per label, in Add order: the XPath's string value, "" where the
  // element or the node is absent or the XML is not well-formed. Valid UTF-8.
  std::vector<std::string> Extract(std::string_view domain_xml) const;

  // Same labels, namespaces and XPaths in the same order.
  bool operator==(const MetadataLabels& other) const;

 private:
  struct Label {
    std::string name, ns, xpath;
    std::shared_ptr<const pugi::xpath_query> query;
  };
  std::vector<Label> labels_;
};

}  // namespace virtscale
