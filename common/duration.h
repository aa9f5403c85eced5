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

// Returns std::nullopt when `text` is not a valid duration.
[[nodiscard]] std::optional<Duration> ParseDuration(std::string_view text);

// Inverse of ParseDuration: 5400000ms -> "1h30m", 0 -> "0s".
[[nodiscard]] std::string FormatDuration(Duration d);

inline double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace virtscale
