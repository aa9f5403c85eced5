#pragma once
// One poll of one source: an HTTP GET (prometheus, scrape; common/http_client.h)
// or a file read, decoded to a single number. Blocking, bounded by the source's
// `timeout` (one deadline for the whole request);
// SourceManager calls it from the source's own thread. Redirects are followed
// only within the source's origin (scheme, host, port), at most 10, all within
// that one timeout, so credentials never reach another origin; a redirect
// elsewhere fails the poll ("http_status: redirect from ... not followed").
//
//   RequestCanceller canceller;   // another thread may call canceller.Cancel()
//   SourceResult<double> r = PollSource(config, &canceller);
//   // r.error().ToString() e.g. "timeout: no complete response within 5s from http://..."
#include <chrono>
#include <utility>
#include <vector>

#include "collectors/sources/source_config.h"
#include "collectors/sources/source_result.h"
#include "common/http_client.h"  // RequestCanceller, kMaxHttpBodyBytes

namespace virtscale {

// Reads the source once. `canceller` may be null.
[[nodiscard]] SourceResult<double> PollSource(const SourceConfig& config,
                                              RequestCanceller* canceller = nullptr);

// The history of a prometheus source, for forecasts: its query as a range
// query (GET /api/v1/query_range) over the kHistoryRange before `end_unix`,
// one point every kHistoryStep (8353 points, below Prometheus's limit of
// 11000), within max(the source's timeout, kHistoryTimeout). The answer must
// hold exactly one series (none: empty_vector; more: multiple_series); its
// non-finite samples are left out. Other source types: query_error.
inline constexpr std::chrono::seconds kHistoryRange{29 * 24 * 3600};
inline constexpr std::chrono::seconds kHistoryStep{300};
inline constexpr std::chrono::seconds kHistoryTimeout{60};
[[nodiscard]] SourceResult<std::vector<std::pair<double, double>>> FetchSourceHistory(
    const SourceConfig& config, double end_unix, RequestCanceller* canceller = nullptr);

// The HTTP body cap is kMaxHttpBodyBytes (more is "response_too_large"); a
// larger file is "parse".
inline constexpr size_t kMaxFileBytes = 64 << 10;

}  // namespace virtscale
