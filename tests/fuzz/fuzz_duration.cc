// Fuzzes ParseDuration and FormatDuration (common/duration.h). Contract: never
// crashes (UBSan reports any overflow); a parsed duration is non-negative and
// at most the maximum, formats to text that parses back to the same value, and
// that text is canonical (formatting the re-parsed value gives it again). Any
// duration from 0 to the maximum round-trips through FormatDuration.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/duration.h"

// Until common/duration.h states a maximum (virtscale::kMaxDuration), the
// bound is the type's own, and only overflow is checked.
namespace duration_fuzz_fallback {
inline constexpr virtscale::Duration kMaxDuration = virtscale::Duration::max();
}
using namespace duration_fuzz_fallback;  // NOLINT: found only when virtscale has none

namespace virtscale {
namespace {

// Unqualified lookup from here finds virtscale::kMaxDuration before the
// fallback, which the using-directive places in the global namespace.
constexpr Duration kMaximum = kMaxDuration;

void CheckRoundTrip(Duration d) {
  const std::string text = FormatDuration(d);
  const auto again = ParseDuration(text);
  if (!again || *again != d) __builtin_trap();
  if (FormatDuration(*again) != text) __builtin_trap();
}

}  // namespace
}  // namespace virtscale

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace virtscale;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (const auto parsed = ParseDuration(text)) {
    if (parsed->count() < 0 || *parsed > kMaximum) __builtin_trap();
    CheckRoundTrip(*parsed);
  }
  // The first 8 bytes as a duration in range, to reach values no text above spells.
  if (size >= 8) {
    uint64_t bits = 0;
    std::memcpy(&bits, data, 8);
    const auto range = static_cast<uint64_t>(kMaximum.count()) + 1;  // at most 2^63
    CheckRoundTrip(Duration(static_cast<int64_t>(bits % range)));
  }
  return 0;
}
