#pragma once
// One libvirt typed parameter read as a number, whatever integer type the
// driver chose for it; shared by the bulk-stats and job-stats parsers.
#include <libvirt/libvirt.h>

#include <cstdint>
#include <optional>

namespace virtscale {

// Non-negative integers of any width, booleans as 0 or 1; nullopt for a
// negative value, a string or a double.
std::optional<uint64_t> TypedParamUint(const virTypedParameter& p);

// libvirt reports memory in KiB; a count whose bytes do not fit 64 bits is no
// reading (multiplying would wrap it to a small, plausible one).
inline std::optional<uint64_t> KiBToBytes(uint64_t kib) {
  if (kib > UINT64_MAX / 1024) return std::nullopt;
  return kib * 1024;
}

}  // namespace virtscale
