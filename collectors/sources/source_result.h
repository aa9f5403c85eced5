#pragma once
// Result of reading one external source: a value or a SourceError. The error
// carries a short machine `reason` (it becomes the `reason` label of
// virtscale_source_errors_total, so the set is small and fixed) and a human
// `message`.
//
//   SourceResult<double> r = ParsePrometheusQueryResponse(body);
//   if (!r.ok()) LogWarn("source failed", {{"reason", r.error().reason}});
//   else Use(r.value());
#include <string>

#include "common/result.h"

namespace virtscale {

// Every reason a source poll can fail with.
namespace source_reason {
inline constexpr char kConnection[] = "connection";           // refused, reset, DNS, TLS
inline constexpr char kTimeout[] = "timeout";                 // no complete answer within `timeout`
inline constexpr char kHttpStatus[] = "http_status";          // non-2xx; redirect not followed
inline constexpr char kBadJson[] = "bad_json";                // prometheus: not a query API answer
inline constexpr char kQueryError[] = "query_error";          // prometheus: status "error", matrix
inline constexpr char kEmptyVector[] = "empty_vector";        // prometheus: no series
inline constexpr char kNoSeries[] = "no_series";              // scrape: no series matched
inline constexpr char kMultipleSeries[] = "multiple_series";  // more than one series
inline constexpr char kNan[] = "nan";                         // value is NaN
inline constexpr char kInf[] = "inf";                         // value is +Inf or -Inf
inline constexpr char kParse[] = "parse";                     // bad exposition text or file content
inline constexpr char kRead[] = "read";                    // file (or credential file) unreadable
inline constexpr char kTooLarge[] = "response_too_large";  // body above the size cap
}  // namespace source_reason

struct SourceError {
  std::string reason;
  std::string message;
  std::string ToString() const { return reason + ": " + message; }
  bool operator==(const SourceError&) const = default;
};

template <typename T>
using SourceResult = Result<T, SourceError>;

}  // namespace virtscale
