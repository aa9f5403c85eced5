// Fuzzes the decoding of Prometheus HTTP API instant- and range-query answers.
// Contract: never crashes, never throws; a value is always finite; an error
// message is valid UTF-8 of bounded length (it reaches decisions and JSON).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "collectors/sources/prometheus_query.h"
#include "common/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto range = virtscale::ParsePrometheusRangeResponse(body);
  if (!range.ok() &&
      (range.error().message.size() > 2048 || !virtscale::IsValidUtf8(range.error().message)))
    std::abort();
  auto result = virtscale::ParsePrometheusQueryResponse(body);
  if (result.ok() && !std::isfinite(result.value()))
    std::abort();  // documented: nan/inf are errors
  if (!result.ok() &&
      (result.error().message.size() > 2048 || !virtscale::IsValidUtf8(result.error().message)))
    std::abort();
  return 0;
}
