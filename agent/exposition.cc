#include "agent/exposition.h"

#include <prometheus/text_serializer.h>

#include <sstream>

#include "collectors/exposition.h"

namespace virtscale {

std::string SerializeFamilies(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

std::string MetricsExposition::Render(const SnapshotPtr& snapshot,
                                      const std::vector<prometheus::MetricFamily>& dynamic) {
  std::shared_ptr<const std::string> snapshot_text;
  if (snapshot) {
    std::lock_guard lock(mu_);
    if (cached_snapshot_ != snapshot) {
      std::vector<prometheus::MetricFamily> families;
      AppendSnapshotFamilies(*snapshot, families);
      cached_text_ = std::make_shared<const std::string>(SerializeFamilies(families));
      cached_snapshot_ = snapshot;
    }
    snapshot_text = cached_text_;
  }
  std::string out = SerializeFamilies(dynamic);
  if (snapshot_text) out += *snapshot_text;
  return out;
}

}  // namespace virtscale
