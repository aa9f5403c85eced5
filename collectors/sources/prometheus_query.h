#pragma once
// Decoding of Prometheus HTTP API answers: an instant query (GET /api/v1/query)
// into one number, a range query (GET /api/v1/query_range) into its series.
// Pure: no I/O, never throws, safe on any input.
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
//
// A range answer must be a matrix; each series keeps its string labels and
// its samples [t, "v"] as (Unix seconds, value), NaN and infinities included:
//   {"status":"success","data":{"resultType":"matrix","result":[
//     {"metric":{"domain":"web-1"},"values":[[1714521600,"0.5"],[1714521660,"NaN"]]}]}}
// It shares the status/error handling, the sample format and the depth bound;
// its value bound is kMaxRangeJsonValues (a sample counts three values, so
// about 650 000 samples, some 12 MiB of answer).
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "collectors/sources/source_result.h"

namespace virtscale {

inline constexpr int kMaxJsonDepth = 32;
inline constexpr size_t kMaxJsonValues = 100000;
inline constexpr size_t kMaxRangeJsonValues = 2000000;

[[nodiscard]] SourceResult<double> ParsePrometheusQueryResponse(std::string_view body);

struct PrometheusSeries {
  std::map<std::string, std::string> labels;
  std::vector<std::pair<double, double>> samples;  // (Unix seconds, value)
};

[[nodiscard]] SourceResult<std::vector<PrometheusSeries>> ParsePrometheusRangeResponse(
    std::string_view body);

}  // namespace virtscale
