#pragma once
// Renders /metrics. The families of one snapshot are serialised once, when a
// scrape first sees that snapshot, and the text is reused by every later scrape
// until the next sample: scrape latency stays flat as domains grow. Only the
// small dynamic families (sample age, HTTP, autoscaler, sources) are rendered
// per request.
#include <prometheus/metric_family.h>

#include <mutex>
#include <string>
#include <vector>

#include "collectors/snapshot.h"

namespace virtscale {

class MetricsExposition {
 public:
  // `dynamic` must not repeat a family name of the snapshot's families.
  std::string Render(const SnapshotPtr& snapshot,
                     const std::vector<prometheus::MetricFamily>& dynamic);

 private:
  std::mutex mu_;
  SnapshotPtr cached_snapshot_;  // keeps the pointer alive so the identity check is sound
  std::shared_ptr<const std::string> cached_text_;
};

std::string SerializeFamilies(const std::vector<prometheus::MetricFamily>& families);

}  // namespace virtscale
