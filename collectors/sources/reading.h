#pragma once
// What the autoscaler sees of one external source (queue depth, ...) at
// evaluation time. A missing value is never 0: `value` is empty and `error`
// says why (source error, never polled, stale).
#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace virtscale {

struct SourceReading {
  std::optional<double> value;  // absent on error or when stale
  std::string error;  // reason when value is absent, e.g. "empty_vector: query returned no series"
  std::chrono::system_clock::time_point last_success{};  // epoch when never
};

using SourceReadings = std::map<std::string, SourceReading>;  // by source name

}  // namespace virtscale
