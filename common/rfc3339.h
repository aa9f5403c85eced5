#pragma once
// RFC 3339 timestamps from outside (query parameters, history files, flags):
// "2026-12-01T10:00:00Z", "2026-12-01T11:00:00.250+01:00". Strict: every field
// has its digits and range (a 31st of April is refused, not rolled over), and
// the zone is `Z` or `±HH:MM`; `t` and `z` may be lower case (RFC 3339 5.6).
//
//   ParseRfc3339("2026-12-01T10:00:00Z")  -> 2026-12-01 10:00:00 UTC
//   ParseRfc3339("2026-12-01T10:00:00")   -> nullopt (no zone)
#include <chrono>
#include <optional>
#include <string_view>

namespace virtscale {

[[nodiscard]] std::optional<std::chrono::system_clock::time_point> ParseRfc3339(
    std::string_view text);

}  // namespace virtscale
