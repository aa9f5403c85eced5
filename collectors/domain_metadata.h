#pragma once
// The <metadata> element virtscale puts on every domain it creates. It is the only
// record of ownership: a restarted agent rebuilds its groups from it, and only
// domains that carry it may ever be undefined.
//
//   <virtscale:instance xmlns:virtscale="http://virtscale.org/xmlns/domain/1.0">
//     <virtscale:group>web</virtscale:group>
//     <virtscale:template>/etc/virtscale/templates/web.xml</virtscale:template>
//     <virtscale:created-at>1764194400</virtscale:created-at>
//   </virtscale:instance>
//
// libvirt stores it under the namespace URI; virDomainGetMetadata(dom,
// VIR_DOMAIN_METADATA_ELEMENT, kMetadataNamespace, 0) returns the element.
#include <optional>
#include <string>
#include <string_view>

#include "collectors/snapshot.h"

namespace virtscale {

inline constexpr const char* kMetadataNamespace = "http://virtscale.org/xmlns/domain/1.0";
inline constexpr const char* kMetadataPrefix = "virtscale";

// Parses the element as returned by virDomainGetMetadata (any prefix, or none).
// nullopt when it is not well-formed or has no group.
std::optional<VirtscaleMetadata> ParseVirtscaleMetadata(std::string_view xml);

// The element's XML for virDomainSetMetadata or for embedding in a domain's
// <metadata>; values are XML-escaped.
std::string FormatVirtscaleMetadata(const VirtscaleMetadata& meta);

}  // namespace virtscale
