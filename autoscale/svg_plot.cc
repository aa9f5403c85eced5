#include "autoscale/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <vector>

#include "common/xml_escape.h"

namespace virtscale::autoscale {
namespace {

constexpr double kWidth = 1100;
constexpr double kLeft = 70;
constexpr double kRight = 30;
constexpr double kTop = 50;
constexpr double kPanel = 170;
constexpr double kGap = 45;

struct ConditionInfo {
  Direction direction;
  size_t index;
  std::string description;
  double threshold;
  std::string Id() const { return fmt::format("{}[{}]", DirectionName(direction), index); }
};

class Canvas {
 public:
  Canvas(TimePoint start, TimePoint end) : start_(start), end_(end) {
    if (end_ <= start_) end_ = start_ + std::chrono::seconds(1);
  }
  double X(TimePoint t) const {
    const double f = std::chrono::duration<double>(t - start_).count() /
                     std::chrono::duration<double>(end_ - start_).count();
    return kLeft + f * (kWidth - kLeft - kRight);
  }
  std::string svg;

  // Frame, y ticks and time grid of a panel spanning [lo, hi] at `top`.
  void Panel(double top, double lo, double hi, const std::string& title) {
    const double right = kWidth - kRight;
    svg += fmt::format(
        "<rect class=\"panel\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fff\" "
        "stroke=\"#999\"/>\n",
        kLeft, top, right - kLeft, kPanel);
    svg +=
        fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
                    kLeft, top - 8, XmlEscape(title));
    for (int i = 0; i <= 4; ++i) {
      const double v = lo + (hi - lo) * i / 4;
      const double y = top + kPanel - kPanel * i / 4;
      svg += fmt::format(
          "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#eee\"/>"
          "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{:.3g}</text>\n",
          kLeft, y, right, y, kLeft - 5, y + 4, v);
    }
    const Duration span = std::chrono::duration_cast<Duration>(end_ - start_);
    Duration tick = std::chrono::seconds(10);
    for (auto candidate :
         {std::chrono::seconds(10), std::chrono::seconds(30), std::chrono::seconds(60),
          std::chrono::seconds(300), std::chrono::seconds(600), std::chrono::seconds(1800),
          std::chrono::seconds(3600), std::chrono::seconds(7200), std::chrono::seconds(10800),
          std::chrono::seconds(21600), std::chrono::seconds(43200), std::chrono::seconds(86400)}) {
      tick = candidate;
      if (span / tick <= 12) break;
    }
    for (TimePoint t = start_; t <= end_; t += tick) {
      const double x = X(t);
      svg += fmt::format(
          "<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#eee\"/>"
          "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n",
          x, top, x, top + kPanel, x, top + kPanel + 14, FormatOffset(t, start_));
    }
  }

 private:
  TimePoint start_;
  TimePoint end_;
};

// Splits (x, y) samples into gap-free polylines.
void Polylines(Canvas& c, const std::vector<std::optional<std::pair<double, double>>>& pts,
               const std::string& attrs) {
  std::string points;
  auto flush = [&] {
    if (!points.empty()) c.svg += fmt::format("<polyline {} points=\"{}\"/>\n", attrs, points);
    points.clear();
  };
  for (const auto& p : pts) {
    if (!p) {
      flush();
      continue;
    }
    points += fmt::format("{}{:.1f},{:.1f}", points.empty() ? "" : " ", p->first, p->second);
  }
  flush();
}

}  // namespace

std::string RenderPlotSvg(const SimulationResult& result, const SimulationSpec& spec) {
  std::vector<const SimulationStep*> evaluated;
  for (const SimulationStep& s : result.steps)
    if (s.decision) evaluated.push_back(&s);
  const TimePoint start = spec.start;
  const TimePoint end = result.steps.empty() ? spec.end : result.steps.back().time;
  Canvas c(start, end);

  // Panels in order of first appearance; conditions grouped under their metric.
  std::vector<std::string> keys;
  std::map<std::string, std::vector<ConditionInfo>> conditions;
  for (const SimulationStep* s : evaluated) {
    for (const MetricValue& m : s->decision->metrics)
      if (std::find(keys.begin(), keys.end(), m.key) == keys.end()) keys.push_back(m.key);
    for (const ConditionReport& r : s->decision->conditions) {
      auto& list = conditions[r.metric_key];
      const bool seen = std::any_of(list.begin(), list.end(), [&](const ConditionInfo& i) {
        return i.direction == r.direction && i.index == r.index;
      });
      if (!seen) list.push_back({r.direction, r.index, r.description, r.threshold});
    }
  }

  const double height = kTop + (kPanel + kGap) * static_cast<double>(keys.size() + 1) + 10;
  c.svg += fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{:.0f}\" "
      "viewBox=\"0 0 {} {:.0f}\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\n"
      "<text x=\"{}\" y=\"22\" font-size=\"16\" font-weight=\"bold\">virtscale simulate: group "
      "{}: {} scale-ups, {} scale-downs in {} evaluations</text>\n"
      "<text x=\"{}\" y=\"38\" font-size=\"11\" fill=\"#555\">{} .. {}; bands: pending (light) "
      "and firing (dark), red = scale_up conditions, blue = scale_down; dashed: "
      "thresholds</text>\n",
      kWidth, height, kWidth, height, kLeft, XmlEscape(spec.rule.name), result.scale_ups,
      result.scale_downs, evaluated.size(), kLeft, FormatTime(start), FormatTime(end));

  double top = kTop + 20;
  for (const std::string& key : keys) {
    const auto& conds = conditions[key];
    double lo = 0;
    double hi = 0;
    for (const SimulationStep* s : evaluated)
      for (const MetricValue& m : s->decision->metrics)
        if (m.key == key && m.value) {
          lo = std::min(lo, *m.value);
          hi = std::max(hi, *m.value);
        }
    for (const ConditionInfo& ci : conds) hi = std::max(hi, ci.threshold);
    const bool ratio =
        (key.starts_with("cpu:") || key.starts_with("memory:")) && !key.ends_with(":sum");
    if (ratio) hi = std::max(hi, 1.0);
    hi = hi > lo ? hi + (ratio ? 0 : (hi - lo) * 0.1) : lo + 1;
    auto y = [&](double v) { return top + kPanel - (v - lo) / (hi - lo) * kPanel; };
    c.Panel(top, lo, hi, key);

    // Bands: one rect per run of pending or firing evaluations.
    for (const ConditionInfo& ci : conds) {
      const bool up = ci.direction == Direction::kUp;
      std::optional<std::pair<TimePoint, ConditionState>> run;
      auto close = [&](TimePoint until) {
        if (!run) return;
        const bool firing = run->second == ConditionState::kFiring;
        const char* fill = up ? (firing ? "#e4572e" : "#f6b26b") : (firing ? "#3182bd" : "#9ecae1");
        c.svg += fmt::format(
            "<rect class=\"band {} {}\" data-condition=\"{}\" x=\"{:.1f}\" y=\"{}\" "
            "width=\"{:.1f}\" height=\"{}\" fill=\"{}\" fill-opacity=\"{}\"/>\n",
            firing ? "firing" : "pending", DirectionName(ci.direction), ci.Id(), c.X(run->first),
            top, std::max(0.5, c.X(until) - c.X(run->first)), kPanel, fill, firing ? 0.35 : 0.3);
        run.reset();
      };
      for (size_t i = 0; i < evaluated.size(); ++i) {
        ConditionState st = ConditionState::kInactive;
        for (const ConditionReport& r : evaluated[i]->decision->conditions)
          if (r.direction == ci.direction && r.index == ci.index) st = r.state;
        if (run && run->second != st) close(evaluated[i]->time);
        if (!run && st != ConditionState::kInactive) run.emplace(evaluated[i]->time, st);
      }
      if (run) close(end);
    }
    for (const ConditionInfo& ci : conds) {
      const bool up = ci.direction == Direction::kUp;
      const double ty = y(ci.threshold);
      c.svg += fmt::format(
          "<line class=\"threshold {}\" data-condition=\"{}\" x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" "
          "y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"1.5\" stroke-dasharray=\"6,4\"/>"
          "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\" fill=\"{}\">{} "
          "{}</text>\n",
          DirectionName(ci.direction), ci.Id(), kLeft, ty, kWidth - kRight, ty,
          up ? "#c0392b" : "#1f5fa8", kWidth - kRight - 4, ty - 4, up ? "#c0392b" : "#1f5fa8",
          ci.Id(), XmlEscape(ci.description));
    }
    std::vector<std::optional<std::pair<double, double>>> pts;
    for (const SimulationStep* s : evaluated) {
      std::optional<std::pair<double, double>> p;
      for (const MetricValue& m : s->decision->metrics)
        if (m.key == key && m.value) p.emplace(c.X(s->time), y(*m.value));
      pts.push_back(p);
    }
    Polylines(c, pts,
              fmt::format("class=\"metric\" data-key=\"{}\" fill=\"none\" stroke=\"#222\" "
                          "stroke-width=\"1.2\"",
                          XmlEscape(key)));
    top += kPanel + kGap;
  }

  // Members: running after each tick, as a step line.
  int64_t hi_members = spec.rule.max;
  for (const SimulationStep& s : result.steps) {
    hi_members = std::max({hi_members, s.running, s.running_before});
    if (s.decision && s.decision->forecast && s.decision->forecast->members)
      hi_members = std::max(hi_members, *s.decision->forecast->members);
  }
  const double lo = 0;
  const double hi = static_cast<double>(hi_members + 1);
  auto y = [&](double v) { return top + kPanel - (v - lo) / (hi - lo) * kPanel; };
  c.Panel(top, lo, hi,
          spec.rule.forecast
              ? fmt::format("running members, and the forecast ({}, {} ahead, dashed)",
                            ForecastModeName(spec.rule.forecast->mode),
                            FormatDuration(spec.rule.forecast->horizon))
              : std::string("running members"));
  for (const auto& [cls, v] : {std::pair{"min", spec.rule.min}, std::pair{"max", spec.rule.max}}) {
    c.svg += fmt::format(
        "<line class=\"bound {}\" x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#888\" "
        "stroke-dasharray=\"3,3\"/><text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" "
        "text-anchor=\"end\" fill=\"#666\">{} {}</text>\n",
        cls, kLeft, y(static_cast<double>(v)), kWidth - kRight, y(static_cast<double>(v)),
        kWidth - kRight - 4, y(static_cast<double>(v)) - 4, cls, v);
  }
  std::string points;
  for (const SimulationStep& s : result.steps) {
    const double x = c.X(s.time);
    points +=
        fmt::format("{}{:.1f},{:.1f} {:.1f},{:.1f}", points.empty() ? "" : " ", x,
                    y(static_cast<double>(s.running_before)), x, y(static_cast<double>(s.running)));
  }
  if (!points.empty()) {
    c.svg += fmt::format(
        "<polyline class=\"members\" fill=\"none\" stroke=\"#2a9d8f\" stroke-width=\"2\" "
        "points=\"{}\"/>\n",
        points);
  }
  if (spec.rule.forecast) {
    std::vector<std::optional<std::pair<double, double>>> forecast;
    for (const SimulationStep* s : evaluated) {
      const std::optional<ForecastReport>& f = s->decision->forecast;
      std::optional<std::pair<double, double>> p;
      if (f && f->members) p.emplace(c.X(s->time), y(static_cast<double>(*f->members)));
      forecast.push_back(p);
    }
    Polylines(c, forecast,
              "class=\"forecast\" fill=\"none\" stroke=\"#e76f51\" stroke-width=\"1.5\" "
              "stroke-dasharray=\"5,3\"");
  }
  for (const SimulationStep* s : evaluated) {
    const Decision& d = *s->decision;
    if (d.actions.empty() || !d.direction) continue;
    const bool up = *d.direction == Direction::kUp;
    c.svg += fmt::format(
        "<circle class=\"action {}\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"><title>{} "
        "{}: {}</title></circle>\n",
        up ? "up" : "down", c.X(s->time), y(static_cast<double>(s->running)),
        up ? "#c0392b" : "#1f5fa8", FormatOffset(s->time, start), up ? "scale_up" : "scale_down",
        XmlEscape(d.reason));
  }
  c.svg += "</svg>\n";
  return std::move(c.svg);
}

}  // namespace virtscale::autoscale
