#pragma once
// Prometheus-style durations ("500ms", "5s", "1m", "1h30m", "2d"), used by every
// config and rule file. Units must appear largest first, each at most once.
//
//   ParseDuration("1h30m") -> 5400s;  ParseDuration("90") -> error (no unit)
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace virtscale {

using Duration = std::chrono::milliseconds;

// The longest duration any key accepts. Bounded so that every duration fits
// any std::chrono clock's nanoseconds with room for sums (2^63 ns is 292 years).
inline constexpr Duration kMaxDuration = std::chrono::hours(24 * 100);
inline constexpr std::string_view kMaxDurationText = "100d";

// Returns std::nullopt when `text` is not a valid duration or exceeds
// kMaxDuration; then `why`, when given, says which.
[[nodiscard]] std::optional<Duration> ParseDuration(std::string_view text,
                                                    std::string* why = nullptr);

// Inverse of ParseDuration: 5400000ms -> "1h30m", 0 -> "0s".
[[nodiscard]] std::string FormatDuration(Duration d);

inline double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace virtscale
