// Cost of the `scrape` source's parser on a whole 1000-domain /metrics body.
// Prints figures; asserts nothing.
//
//   BM_ParseExposition   ParseExposition on the body in $VIRTSCALE_BENCH_METRICS_BODY
//                        (bench/run saves a real /metrics body of virtscale on
//                        1000 test-driver domains there); without it, on the
//                        text of a synthetic 1000-domain KVM snapshot.
//   BM_ParseAndSelect    the same plus SelectSample of one series, i.e. one
//                        poll of a scrape source pointed at such an endpoint.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "agent/metrics_body_cache.h"
#include "bench/bench_support.h"
#include "collectors/snapshot_metrics.h"
#include "collectors/sources/text_format_parser.h"

namespace virtscale {
namespace {

const std::string& Body() {
  static const std::string body = [] {
    if (const char* path = std::getenv("VIRTSCALE_BENCH_METRICS_BODY"); path && *path) {
      if (auto text = bench::ReadFile(path)) return *text;
    }
    std::vector<prometheus::MetricFamily> families;
    AppendSnapshotFamilies(bench::SyntheticSnapshot(1000), families);
    return SerializeFamilies(families);
  }();
  return body;
}

void BM_ParseExposition(benchmark::State& state) {
  const std::string& body = Body();
  size_t samples = 0;
  for (auto _ : state) {
    auto parsed = ParseExposition(body);
    if (!parsed.ok()) {
      state.SkipWithError("the body does not parse");
      return;
    }
    samples = parsed.value().size();
    benchmark::DoNotOptimize(parsed.value().data());
  }
  state.counters["samples"] = static_cast<double>(samples);
  state.counters["bytes"] = static_cast<double>(body.size());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_ParseExposition)->Unit(benchmark::kMillisecond);

void BM_ParseAndSelect(benchmark::State& state) {
  const std::string& body = Body();
  for (auto _ : state) {
    auto parsed = ParseExposition(body);
    if (!parsed.ok()) {
      state.SkipWithError("the body does not parse");
      return;
    }
    auto value = SelectSample(parsed.value(), "libvirt_domains", {}, false);
    benchmark::DoNotOptimize(value);
  }
}
BENCHMARK(BM_ParseAndSelect)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace virtscale

BENCHMARK_MAIN();
