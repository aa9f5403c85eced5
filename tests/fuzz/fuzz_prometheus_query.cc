// Fuzzes the decoding of Prometheus HTTP API instant-query answers.
// Contract: never crashes, never throws; a value is always finite.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "collectors/sources/prometheus_query.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto result = virtscale::ParsePrometheusQueryResponse(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (result.ok() && !std::isfinite(result.value()))
    std::abort();  // documented: nan/inf are errors
  return 0;
}
