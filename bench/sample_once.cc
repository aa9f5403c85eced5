// One sample and one exposition, phase by phase, for callgrind:
//
//   valgrind --tool=callgrind --collect-atstart=no sample_once test:///tmp/node-1000.xml
//
// Opens the connection, takes a warm-up sample (fetches and caches every
// domain's XML facts), then a measured steady-state sample, then builds the
// metric families and serialises them. Each phase runs between
// CALLGRIND_ZERO_STATS and CALLGRIND_DUMP_STATS_AT(phase), so callgrind writes
// one profile per phase whose "summary:" line is that phase's instruction
// count (all threads). Outside valgrind the macros do nothing and the program
// just prints the wall time per phase. Prints one JSON object; asserts nothing.
#include <prometheus/metric_family.h>
#include <valgrind/callgrind.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/metrics_body_cache.h"
#include "collectors/libvirt_connection.h"
#include "collectors/sampler.h"
#include "collectors/snapshot_metrics.h"

namespace virtscale {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int Run(const std::string& uri) {
  LibvirtConnection conn({.uri = uri});
  conn.Start();
  if (!conn.WaitUp(std::chrono::seconds(30))) {
    std::fprintf(stderr, "sample_once: cannot connect to %s\n", uri.c_str());
    return 1;
  }
  Sampler sampler(conn, {});
  CALLGRIND_START_INSTRUMENTATION;

  CALLGRIND_ZERO_STATS;
  Clock::time_point t = Clock::now();
  SnapshotPtr warm = sampler.SampleNow();
  const double warm_ms = MsSince(t);
  CALLGRIND_DUMP_STATS_AT("sample_warmup");

  CALLGRIND_ZERO_STATS;
  t = Clock::now();
  SnapshotPtr snap = sampler.SampleNow();
  const double sample_ms = MsSince(t);
  CALLGRIND_DUMP_STATS_AT("sample");

  CALLGRIND_ZERO_STATS;
  t = Clock::now();
  std::vector<prometheus::MetricFamily> families;
  AppendSnapshotFamilies(*snap, families);
  const double families_ms = MsSince(t);
  CALLGRIND_DUMP_STATS_AT("families");

  CALLGRIND_ZERO_STATS;
  t = Clock::now();
  std::string text = SerializeFamilies(families);
  const double serialize_ms = MsSince(t);
  CALLGRIND_DUMP_STATS_AT("serialize");

  CALLGRIND_STOP_INSTRUMENTATION;
  size_t series = 0;
  for (const auto& f : families) series += f.metric.size();
  conn.Stop();
  sampler.Stop();
  std::printf(
      "{\"uri\": \"%s\", \"domains\": %zu, \"series\": %zu, \"bytes\": %zu, "
      "\"wall_ms\": {\"sample_warmup\": %.3f, \"sample\": %.3f, \"families\": %.3f, "
      "\"serialize\": %.3f}}\n",
      uri.c_str(), snap->domains.size(), series, text.size(), warm_ms, sample_ms, families_ms,
      serialize_ms);
  return warm != nullptr ? 0 : 1;
}

}  // namespace
}  // namespace virtscale

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sample_once URI\n");
    return 2;
  }
  return virtscale::Run(argv[1]);
}
