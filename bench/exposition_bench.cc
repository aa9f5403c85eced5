// /metrics rendering cost for 1000 domains. Prints figures; asserts nothing.
//
//   BM_SnapshotFamilies/1000   AppendSnapshotFamilies on a synthetic snapshot
//                              shaped like a busy KVM host (every family set)
//   BM_SnapshotExposition/1000 the same plus prometheus::TextSerializer: what
//                              the first scrape of a new snapshot pays
//   BM_CachedScrape/1000       MetricsExposition::Render of an already seen
//                              snapshot: what every later scrape pays
//   BM_TestDriverExposition    families + text of a real sample of the node
//                              file in $VIRTSCALE_BENCH_NODE_XML (test driver;
//                              skipped when unset)
#include <benchmark/benchmark.h>
#include <prometheus/text_serializer.h>

#include <cstdlib>
#include <memory>

#include "agent/metrics_body_cache.h"
#include "bench/bench_support.h"
#include "collectors/libvirt_connection.h"
#include "collectors/sampler.h"
#include "collectors/snapshot_metrics.h"

namespace virtscale {
namespace {

void BM_SnapshotFamilies(benchmark::State& state) {
  const Snapshot snap = bench::SyntheticSnapshot(static_cast<int>(state.range(0)));
  size_t series = 0;
  for (auto _ : state) {
    std::vector<prometheus::MetricFamily> families;
    AppendSnapshotFamilies(snap, families);
    series = 0;
    for (const auto& f : families) series += f.metric.size();
    benchmark::DoNotOptimize(families.data());
  }
  state.counters["series"] = static_cast<double>(series);
}
BENCHMARK(BM_SnapshotFamilies)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_SnapshotExposition(benchmark::State& state) {
  const Snapshot snap = bench::SyntheticSnapshot(static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    std::vector<prometheus::MetricFamily> families;
    AppendSnapshotFamilies(snap, families);
    std::string text = SerializeFamilies(families);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_SnapshotExposition)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_CachedScrape(benchmark::State& state) {
  auto snap =
      std::make_shared<const Snapshot>(bench::SyntheticSnapshot(static_cast<int>(state.range(0))));
  MetricsExposition exposition;
  const std::vector<prometheus::MetricFamily> no_dynamic;
  exposition.Prepare(snap);
  const MetricsBody warm = exposition.Render(snap, no_dynamic, /*gzip=*/false);
  for (auto _ : state) {
    MetricsBody body = exposition.Render(snap, no_dynamic, /*gzip=*/false);
    benchmark::DoNotOptimize(body.tail.get());
  }
  state.counters["bytes"] = static_cast<double>(warm.size());
}
BENCHMARK(BM_CachedScrape)->Arg(1000)->Unit(benchmark::kMicrosecond);

// One real sample of the node file, taken once per process (opening a
// 1000-domain test driver costs seconds).
SnapshotPtr TestDriverSnapshot(const std::string& node) {
  static const SnapshotPtr snap = [&]() -> SnapshotPtr {
    LibvirtConnection conn({.uri = "test://" + node});
    conn.Start();
    if (!conn.WaitUp(std::chrono::seconds(60))) return nullptr;
    Sampler sampler(conn, {});
    SnapshotPtr s = sampler.SampleNow();
    conn.Stop();
    return s;
  }();
  return snap;
}

void BM_TestDriverExposition(benchmark::State& state) {
  const char* node = std::getenv("VIRTSCALE_BENCH_NODE_XML");
  if (node == nullptr || *node == '\0') {
    state.SkipWithError("VIRTSCALE_BENCH_NODE_XML is not set");
    return;
  }
  SnapshotPtr snap = TestDriverSnapshot(node);
  if (snap == nullptr) {
    state.SkipWithError("cannot open the test driver node file");
    return;
  }
  size_t bytes = 0;
  for (auto _ : state) {
    std::vector<prometheus::MetricFamily> families;
    AppendSnapshotFamilies(*snap, families);
    std::string text = SerializeFamilies(families);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["domains"] = static_cast<double>(snap->domains.size());
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_TestDriverExposition)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace virtscale

BENCHMARK_MAIN();
