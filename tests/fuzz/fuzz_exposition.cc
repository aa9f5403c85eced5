// Fuzzes the Prometheus text exposition parser and the scrape source's series
// selection on its result. Contract: never crashes, never throws, on any input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/sources/exposition.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = virtscale::ParseExposition(text);
  if (parsed.ok() && !parsed.value().empty()) {
    const auto& first = parsed.value().front();
    (void)virtscale::SelectSample(parsed.value(), first.name, first.labels, false);
    (void)virtscale::SelectSample(parsed.value(), first.name, {{"le", ""}}, true);
    (void)virtscale::FormatSeries(first.name, first.labels);
  }
  // The float grammar on its own: the first line of the input.
  (void)virtscale::ParsePrometheusFloat(text.substr(0, text.find('\n')));
  return 0;
}
