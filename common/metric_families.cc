#include "common/metric_families.h"

#include <cmath>
#include <cstdio>
#include <utility>

namespace virtscale {
namespace {

// Label values: backslash, double quote and line feed escaped (text format).
void AppendEscaped(std::string& out, const std::string& value, bool quote) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// As TextSerializer: 16 significant digits, Nan, +Inf, -Inf.
void AppendValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "Nan";
  } else if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
  } else {
    char buf[32];
    const int n = std::snprintf(buf, sizeof buf, "%.16g", value);
    out.append(buf, static_cast<size_t>(n));
  }
}

const char* TypeName(prometheus::MetricType type) {
  switch (type) {
    case prometheus::MetricType::Counter:
      return "counter";
    case prometheus::MetricType::Gauge:
      return "gauge";
    case prometheus::MetricType::Summary:
      return "summary";
    case prometheus::MetricType::Histogram:
      return "histogram";
    default:
      return "untyped";
  }
}

}  // namespace

MetricFamilies::Id MetricFamilies::Family(const char* name, const char* help,
                                          prometheus::MetricType type, IfEmpty if_empty) {
  auto [it, inserted] = index_.try_emplace(name, families_.size());
  if (inserted) {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = type;
    families_.push_back(std::move(family));
    if (form_ == Form::kText) lines_.emplace_back();
    keep_empty_.push_back(if_empty == IfEmpty::kKeep);
  } else if (if_empty == IfEmpty::kKeep) {
    keep_empty_[it->second] = true;
  }
  return it->second;
}

void MetricFamilies::Add(Id family, Labels labels, double value) {
  prometheus::MetricFamily& f = families_[family];
  if (form_ == Form::kText) {
    std::string& out = lines_[family];
    out += f.name;
    if (!labels.empty()) {
      out += '{';
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) out += ',';
        out += labels[i].name;
        out += "=\"";
        AppendEscaped(out, labels[i].value, true);
        out += '"';
      }
      out += '}';
    }
    out += ' ';
    AppendValue(out, value);
    out += '\n';
    return;
  }
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (f.type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  f.metric.push_back(std::move(metric));
}

std::string MetricFamilies::TakeText() {
  size_t size = 0;
  for (size_t i = 0; i < families_.size(); ++i) {
    size += families_[i].name.size() * 2 + families_[i].help.size() + 32 + lines_[i].size();
  }
  std::string out;
  out.reserve(size);
  for (size_t i = 0; i < families_.size(); ++i) {
    const prometheus::MetricFamily& f = families_[i];
    if (lines_[i].empty() && !keep_empty_[i]) continue;
    if (!f.help.empty()) {
      out += "# HELP ";
      out += f.name;
      out += ' ';
      AppendEscaped(out, f.help, false);
      out += '\n';
    }
    out += "# TYPE ";
    out += f.name;
    out += ' ';
    out += TypeName(f.type);
    out += '\n';
    out += lines_[i];
    std::string().swap(lines_[i]);  // free as we go: the peak stays near one text
  }
  families_.clear();
  lines_.clear();
  keep_empty_.clear();
  index_.clear();
  return out;
}

void MetricFamilies::MoveTo(std::vector<prometheus::MetricFamily>& out) {
  for (size_t i = 0; i < families_.size(); ++i) {
    if (!families_[i].metric.empty() || keep_empty_[i]) out.push_back(std::move(families_[i]));
  }
  families_.clear();
  lines_.clear();
  keep_empty_.clear();
  index_.clear();
}

}  // namespace virtscale
