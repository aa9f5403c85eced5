#pragma once
// Pure parsers for what libvirt hands the sampler: one bulk-stats record's typed
// parameters (virConnectGetAllDomainStats / virDomainListGetStats) and the domain
// XML (os type, device targets for the per-domain fallback calls). No libvirt
// calls here, so tests feed literal parameter arrays and XML strings.
//
//   DomainStats d;
//   StatsParseResult r = ParseDomainStatsParams(rec->params, rec->nparams, d);
//   if (!(r.groups_present & VIR_DOMAIN_STATS_BALLOON)) { /* fetch per domain */ }
#include <libvirt/libvirt.h>

#include <string>
#include <string_view>
#include <vector>

#include "collectors/snapshot.h"

namespace virtscale {

// A set of stat groups, as libvirt's virDomainStatsTypes bits
// (VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL | ...).
using StatGroups = unsigned;
inline constexpr StatGroups kCoreStatGroups = VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |
                                              VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU |
                                              VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK;

// Config names of the groups: "state", "cpu", "balloon", "vcpu", "interface", "block",
// and the optional "perf", "iothread", "dirtyrate".
// Returns false (and leaves `out` alone) when a name is unknown.
[[nodiscard]] bool ParseStatGroups(const std::vector<std::string>& names, StatGroups& out);
std::vector<std::string> StatGroupNames(StatGroups groups);

// Running, blocked, paused, being shut down or pm-suspended: the domain has a
// live process and live stats.
bool IsActiveState(DomainState state);

struct StatsParseResult {
  StatGroups groups_present = 0;  // groups with at least one key in the record
  int skipped_devices = 0;        // devices dropped for an empty or repeated name
};

// Fills the fields of `out` that the record carries (memory in bytes, times in
// ns); fields it does not carry stay untouched. Devices come out in index order,
// each name at most once: a later device with a name already seen (backing-chain
// entries, driver quirks) or with no name is dropped and counted.
StatsParseResult ParseDomainStatsParams(const virTypedParameter* params, int nparams,
                                        DomainStats& out);

struct DomainXmlInfo {
  std::string os_type;     // <os><type>hvm</type>
  std::string os_arch;     // <type arch=...>
  std::string os_machine;  // <type machine=...>
  struct Disk {
    std::string target;  // <target dev='vda'/>
    std::string source;  // file, dev, name or volume of <source>, may be empty
  };
  std::vector<Disk> disks;              // unique non-empty targets, in XML order
  std::vector<std::string> interfaces;  // unique non-empty <target dev=...>, in XML order
};

// Returns false when `xml` is not a well-formed <domain>; `out` is then unspecified.
[[nodiscard]] bool ParseDomainXml(std::string_view xml, DomainXmlInfo& out);

}  // namespace virtscale
