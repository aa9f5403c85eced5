#pragma once
// The one builder of Prometheus metric families for everything that exports
// series (snapshot, sampler, engine, notifier, sources). Families keep the
// order in which they are declared or first used. A family without samples is
// left out, unless it was declared with IfEmpty::kKeep (its HELP and TYPE then
// say that the series exist, for example a counter with no label value yet).
//
// In the text form the samples are written as exposition text at once, in the
// Prometheus text format as prometheus-cpp's TextSerializer writes it, so a
// large exposition never holds one object per sample (at 1000 domains the
// objects take three times the memory of the text).
//
//   MetricFamilies f;
//   auto up = f.Family("virtscale_source_up", "1 when ...", MetricType::Gauge);
//   f.Add(up, {{"source", "queue"}}, 1);
//   f.Gauge("libvirt_up", "1 when ...", {}, 1);  // declared on first use
//   std::vector<prometheus::MetricFamily> families = f.Take();
//
//   MetricFamilies text(MetricFamilies::Form::kText);
//   text.Gauge("libvirt_up", "1 when ...", {}, 1);
//   std::string exposition = text.TakeText();
#include <prometheus/metric_family.h>

#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace virtscale {

class MetricFamilies {
 public:
  using Labels = std::vector<prometheus::ClientMetric::Label>;
  using Id = size_t;
  enum class IfEmpty { kDrop, kKeep };
  enum class Form { kFamilies, kText };

  explicit MetricFamilies(Form form = Form::kFamilies) : form_(form) {}

  // Declares a family (or finds it by name) and returns its handle.
  Id Family(const char* name, const char* help, prometheus::MetricType type,
            IfEmpty if_empty = IfEmpty::kDrop);
  // One sample: the counter or the gauge value, as the family's type says.
  void Add(Id family, Labels labels, double value);

  // By name: the family is declared on first use.
  void Gauge(const char* name, const char* help, Labels labels, double value) {
    Add(Family(name, help, prometheus::MetricType::Gauge), std::move(labels), value);
  }
  void Counter(const char* name, const char* help, Labels labels, double value) {
    Add(Family(name, help, prometheus::MetricType::Counter), std::move(labels), value);
  }
  // Optional readings: no sample when absent; `divisor` converts to base units.
  template <typename T>
  void Gauge(const char* name, const char* help, const Labels& labels, const std::optional<T>& v,
             double divisor = 1) {
    if (v) Gauge(name, help, labels, static_cast<double>(*v) / divisor);
  }
  template <typename T>
  void Counter(const char* name, const char* help, const Labels& labels, const std::optional<T>& v,
               double divisor = 1) {
    if (v) Counter(name, help, labels, static_cast<double>(*v) / divisor);
  }

  // Families form: appends the families (empty ones only when kept) and
  // leaves this empty.
  void MoveTo(std::vector<prometheus::MetricFamily>& out);
  std::vector<prometheus::MetricFamily> Take() {
    std::vector<prometheus::MetricFamily> out;
    MoveTo(out);
    return out;
  }

  // Text form: the exposition text of every family, and leaves this empty.
  std::string TakeText();

 private:
  Form form_;
  std::unordered_map<std::string, Id> index_;
  std::vector<prometheus::MetricFamily> families_;  // samples in the families form only
  std::vector<std::string> lines_;                  // text form: sample lines per family
  std::vector<bool> keep_empty_;
};

}  // namespace virtscale
