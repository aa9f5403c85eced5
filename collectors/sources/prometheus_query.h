#pragma once
// Decoding of a Prometheus HTTP API instant-query answer (GET /api/v1/query)
// into one number. Pure: no I/O, never throws, safe on any input.
//
// A scalar, or a vector with exactly one sample, gives the value. Everything
// else is an error, never 0:
//   {"status":"success","data":{"resultType":"vector","result":[]}}
//     -> empty_vector: query returned no series
//   two samples -> multiple_series; "NaN" -> nan; "+Inf" -> inf;
//   {"status":"error","errorType":"bad_data","error":"..."} -> query_error;
//   a matrix or string result -> query_error; not such a JSON document -> bad_json.
//
// The answer comes from outside, so before nlohmann builds its tree (about 50
// bytes per value) a scan that allocates nothing refuses one nested deeper than
// kMaxJsonDepth (bad_json) or holding more than kMaxJsonValues values
// (response_too_large). A one-series answer is 5 levels deep with about ten
// values. Text quoted from the answer into messages is cut to kMaxQuotedBytes.
#include <cstddef>
#include <string_view>

#include "collectors/sources/source_result.h"

namespace virtscale {

inline constexpr int kMaxJsonDepth = 32;
inline constexpr size_t kMaxJsonValues = 100000;

[[nodiscard]] SourceResult<double> ParsePrometheusQueryResponse(std::string_view body);

}  // namespace virtscale
