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
#include <string_view>

#include "collectors/sources/source_result.h"

namespace virtscale {

[[nodiscard]] SourceResult<double> ParsePrometheusQueryResponse(std::string_view body);

}  // namespace virtscale
