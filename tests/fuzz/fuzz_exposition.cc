// Fuzzes the Prometheus text exposition parser and the scrape source's series
// selection on its result. Contract: never crashes, never throws, on any input;
// label values kept and every message are valid UTF-8, messages of bounded
// length (they reach decisions and JSON).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "collectors/sources/text_format_parser.h"
#include "common/utf8.h"

namespace {

template <typename T>
void CheckMessage(const virtscale::SourceResult<T>& r) {
  if (!r.ok() && (r.error().message.size() > 2048 || !virtscale::IsValidUtf8(r.error().message)))
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = virtscale::ParseExposition(text);
  CheckMessage(parsed);
  if (parsed.ok() && !parsed.value().empty()) {
    for (const auto& sample : parsed.value())
      for (const auto& [name, value] : sample.labels)
        if (!virtscale::IsValidUtf8(value)) __builtin_trap();
    const auto& first = parsed.value().front();
    CheckMessage(virtscale::SelectSample(parsed.value(), first.name, first.labels, false));
    CheckMessage(virtscale::SelectSample(parsed.value(), first.name, {{"le", ""}}, true));
    (void)virtscale::FormatSeries(first.name, first.labels);
  }
  // The float grammar on its own: the first line of the input.
  (void)virtscale::ParsePrometheusFloat(text.substr(0, text.find('\n')));
  return 0;
}
