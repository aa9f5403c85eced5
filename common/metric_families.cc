#include "common/metric_families.h"

#include <utility>

namespace virtscale {

MetricFamilies::Id MetricFamilies::Family(const char* name, const char* help,
                                          prometheus::MetricType type, IfEmpty if_empty) {
  auto [it, inserted] = index_.try_emplace(name, families_.size());
  if (inserted) {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = type;
    families_.push_back(std::move(family));
    keep_empty_.push_back(if_empty == IfEmpty::kKeep);
  } else if (if_empty == IfEmpty::kKeep) {
    keep_empty_[it->second] = true;
  }
  return it->second;
}

void MetricFamilies::Add(Id family, Labels labels, double value) {
  prometheus::MetricFamily& f = families_[family];
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (f.type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  f.metric.push_back(std::move(metric));
}

void MetricFamilies::MoveTo(std::vector<prometheus::MetricFamily>& out) {
  for (size_t i = 0; i < families_.size(); ++i) {
    if (!families_[i].metric.empty() || keep_empty_[i]) out.push_back(std::move(families_[i]));
  }
  families_.clear();
  keep_empty_.clear();
  index_.clear();
}

}  // namespace virtscale
