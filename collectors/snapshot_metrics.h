#pragma once
// Snapshot -> Prometheus metric families. Families are built fresh from each
// snapshot, so a domain that disappears from libvirt disappears from /metrics
// with no bookkeeping. Domain series keep the inovex prometheus-libvirt-exporter
// names (libvirt_domain_*), agent series use virtscale_*. Base units, `_total` on
// counters, HELP on every family, no timestamps, and a family is only emitted
// when it has samples.
//
//   std::vector<prometheus::MetricFamily> families;
//   AppendSnapshotFamilies(*sampler.Latest(), families);
//   AppendSamplerFamilies(sampler.Latest(), sampler.Counters(),
//                         std::chrono::steady_clock::now(), families);
//   std::string text = prometheus::TextSerializer().Serialize(families);
//
// Or register one SamplerCollectable with anything that collects Collectables.
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <chrono>
#include <string>
#include <vector>

#include "collectors/sampler.h"
#include "collectors/snapshot.h"

namespace virtscale {

// Everything the snapshot holds: libvirt_up, libvirt_domains, per-domain
// libvirt_domain_* and virtscale_domain_*, host libvirt_node_*, storage pools
// libvirt_storage_pool_{info,capacity_bytes,allocation_bytes,available_bytes}
// (label storage_pool, the inovex names; sizes only while a pool is running or
// degraded), and the
// snapshot's own virtscale_sample_duration_seconds and per-collector
// virtscale_scrape_collector_{duration_seconds,success}.
void AppendSnapshotFamilies(const Snapshot& snapshot,
                            std::vector<prometheus::MetricFamily>& families);
// The same series as exposition text (what TextSerializer would write of
// them), built without a MetricFamily per series: the /metrics cache.
std::string SnapshotText(const Snapshot& snapshot);

// Series that change between snapshots: virtscale_sample_age_seconds (from
// `latest`'s steady timestamp to `now`; absent before the first sample),
// virtscale_samples_total, virtscale_domain_events_total{event} (every known
// event, 0 until seen), virtscale_skipped_devices_total,
// virtscale_call_timeouts_total and virtscale_stuck_calls.
void AppendSamplerFamilies(const SnapshotPtr& latest, const SamplerCounters& counters,
                           std::chrono::steady_clock::time_point now,
                           std::vector<prometheus::MetricFamily>& families);

// Both of the above for one sampler, at collect time.
class SamplerCollectable : public prometheus::Collectable {
 public:
  explicit SamplerCollectable(const Sampler& sampler) : sampler_(sampler) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Sampler& sampler_;
};

}  // namespace virtscale
