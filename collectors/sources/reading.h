#pragma once
// What the autoscaler sees of one external source (queue depth, ...) at
// evaluation time. A missing value is never 0: `value` is empty and `error`
// says why (source error, never polled, stale).
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace virtscale {

// For people (landing page): the autoscaler reads only `value`.
enum class SourceHealth {
  kPending,  // not polled yet
  kOk,       // fresh value, newest poll succeeded (virtscale_source_up 1)
  kFailing,  // newest poll failed; the last good value is still fresh and used
  kStale,    // the last good value is too old to use
  kError,    // every poll so far failed
};
const char* SourceHealthName(SourceHealth h);  // "pending", "ok", "failing", "stale", "error"

// The history of a source a group forecasts from (`forecast.source`): a range
// query over the last kHistoryRange (collectors/sources/poll.h).
// Fetched at once, then every kHistoryRefetch (kHistoryRetry after a failure).
inline constexpr std::chrono::minutes kHistoryRefetch{5};
inline constexpr std::chrono::minutes kHistoryRetry{1};
struct SourceHistory {
  std::vector<std::pair<double, double>> samples;  // (Unix seconds, value), finite, oldest first
  std::chrono::system_clock::time_point fetched_at{};
};

struct SourceReading {
  std::optional<double> value;  // absent on error or when stale
  // Why `value` is absent, e.g. "empty_vector: query returned no series"; with
  // kFailing, why the newest poll failed.
  std::string error;
  std::chrono::system_clock::time_point last_success{};  // epoch when never
  SourceHealth health = SourceHealth::kPending;
  // Only for forecast sources: the newest history fetched (null before the
  // first success), and why the newest fetch failed ("" when it did not).
  std::shared_ptr<const SourceHistory> history;
  std::string history_error;
};

using SourceReadings = std::map<std::string, SourceReading>;  // by source name

}  // namespace virtscale
