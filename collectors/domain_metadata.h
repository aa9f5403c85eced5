#pragma once
// The <metadata> element virtscale puts on every domain it creates. It is the only
// record of ownership: a restarted agent rebuilds its groups from it, and only
// domains that carry it may ever be undefined.
//
//   <virtscale:instance xmlns:virtscale="http://virtscale.org/xmlns/domain/1.0">
//     <virtscale:group>web</virtscale:group>
//     <virtscale:template>/etc/virtscale/templates/web.xml</virtscale:template>
//     <virtscale:created-at>1764194400</virtscale:created-at>
//     <virtscale:uuid>0b4e3f4a-5d7c-4e2a-9c1b-2f6a8d9e0c11</virtscale:uuid>
//     <virtscale:template-hash>9f86d081...</virtscale:template-hash>  (SHA-256 of the template)
//     <virtscale:volume target="vda" pool="default" name="web-3-vda.qcow2"/>
//   </virtscale:instance>
//
// The group OWNS the domain only while the recorded UUID is the domain's own
// (DESIGN.md "Ownership"): a copy carries the element, not the UUID.
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

// When a group last scaled, in its own element on each member acted on (and on
// the group's remaining members), so cooldowns survive a restart. A separate
// namespace from the ownership element, so stamping never rewrites ownership and
// adopted members can carry it too:
//
//   <vss:scale xmlns:vss="http://virtscale.org/xmlns/scale/1.0"
//              group="web" up="1764194400" down="1764194500"/>
//
// up/down are unix seconds of the last scale-up/-down action; 0 or absent: never.
inline constexpr const char* kScaleStampNamespace = "http://virtscale.org/xmlns/scale/1.0";
inline constexpr const char* kScaleStampPrefix = "vss";

// Parses the element as returned by virDomainGetMetadata (any prefix, or none).
// nullopt when it is not well-formed, not a <scale> element or has no group.
// A time that is not a plain non-negative integer, or lies after the year 9999,
// reads as 0 (never).
std::optional<ScaleStamp> ParseScaleStamp(std::string_view xml);

// The element's XML; the group is XML-escaped. `bare` leaves out the prefix
// and namespace declaration, as virDomainSetMetadata takes the element (it
// adds them from its key and uri arguments).
std::string FormatScaleStamp(const ScaleStamp& stamp, bool bare = false);

// Pause and protection (LifecycleStamp), one element per domain:
//
//   <vsl:lifecycle xmlns:vsl="http://virtscale.org/xmlns/lifecycle/1.0" group="web"
//                  paused="true" paused-changed="1764194400123"
//                  protected="false" protected-changed="0"/>
inline constexpr const char* kLifecycleNamespace = "http://virtscale.org/xmlns/lifecycle/1.0";
inline constexpr const char* kLifecyclePrefix = "vsl";

// nullopt when not well-formed, not a <lifecycle> element or without group. A
// flag other than "true" reads as false; a bad time as 0.
std::optional<LifecycleStamp> ParseLifecycleStamp(std::string_view xml);
std::string FormatLifecycleStamp(const LifecycleStamp& stamp, bool bare = false);

}  // namespace virtscale
