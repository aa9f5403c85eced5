#include "agent/simulate_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "autoscale/svg_plot.h"
#include "collectors/sources/prometheus_query.h"
#include "common/http_client.h"
#include "common/log.h"
#include "common/rfc3339.h"

namespace virtscale {
namespace {

using autoscale::MetricKind;
using autoscale::Series;
using autoscale::TimePoint;

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return std::string(s);
}

std::vector<std::string> SplitCsv(std::string_view line) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t comma = line.find(',', pos);
    out.push_back(Trim(line.substr(pos, comma == std::string_view::npos ? comma : comma - pos)));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::optional<double> ParseValue(const std::string& s, bool& ok) {
  ok = true;
  if (s.empty() || s == "_" || s == "NaN" || s == "nan") return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) {
    ok = false;
    return std::nullopt;
  }
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<MetricKind> ParseKind(const std::string& s) {
  if (s == "cpu") return MetricKind::kCpu;
  if (s == "memory") return MetricKind::kMemory;
  return std::nullopt;
}

// Sorted union of the sample times of every member series of `kind`.
std::vector<TimePoint> SampleTimes(const History& h, MetricKind kind) {
  std::set<TimePoint> times;
  for (const auto& [key, points] : h.members)
    if (key.first == kind)
      for (const auto& p : points) times.insert(p.time);
  return {times.begin(), times.end()};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One query_range request, connect to last byte, redirects included: a day at
// a 10s step is about 9000 samples a series, which Prometheus answers in well
// under a second.
constexpr Duration kPrometheusQueryTimeout = std::chrono::seconds(60);

bool FetchPrometheus(const SimulateOptions& o, TimePoint start, TimePoint end, Duration step,
                     History& history, std::string& error) {
  std::string why;
  auto base = ParseHttpUrl(o.prometheus_url, why);
  if (!base || base->path.find('?') != std::string::npos) {
    error = "invalid --prometheus.url " + o.prometheus_url + ": " +
            (base ? "must not carry a query string" : why);
    return false;
  }
  std::string prefix = base->path;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  HttpRequestOptions options;
  options.timeout = kPrometheusQueryTimeout;
  auto unix = [](TimePoint t) {
    return fmt::format("{:.3f}", std::chrono::duration<double>(t.time_since_epoch()).count());
  };
  auto query = [&](const std::string& q, MetricKind kind, const std::string& source) {
    HttpUrl url = *base;
    url.path = fmt::format("{}/api/v1/query_range?query={}&start={}&end={}&step={:.3f}", prefix,
                           PercentEncode(q), unix(start), unix(end), Seconds(step));
    auto answer = HttpGet(url, {{"Accept", "application/json"}}, options);
    if (!answer.ok()) {
      error = fmt::format("query {}: {}", q, answer.error().ToString());
      return false;
    }
    const HttpClientResponse& res = answer.value();
    std::string perr;
    const bool parsed = ParsePrometheusRange(res.body, kind, source, history, perr);
    const bool ok = res.status >= 200 && res.status < 300;
    // Prometheus explains a bad query (400, 422) in a JSON error.
    if (!ok && (parsed || !perr.starts_with(source_reason::kQueryError))) {
      error = fmt::format("query {}: HTTP {} from {}", q, res.status, res.url);
      return false;
    }
    if (!parsed) {
      error = fmt::format("query {}: HTTP {}: {}", q, res.status, perr);
      return false;
    }
    return true;
  };
  if (!o.query_cpu.empty() && !query(o.query_cpu, MetricKind::kCpu, "")) return false;
  if (!o.query_memory.empty() && !query(o.query_memory, MetricKind::kMemory, "")) return false;
  for (const auto& [name, q] : o.query_sources)
    if (!query(q, MetricKind::kSource, name)) return false;
  return true;
}

}  // namespace

std::optional<TimePoint> ParseTimestamp(std::string_view text) {
  const std::string s = Trim(text);
  if (s.empty()) return std::nullopt;
  if (s.find_first_not_of("0123456789.") == std::string::npos) {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size()) return std::nullopt;
    return TimePoint(
        std::chrono::duration_cast<TimePoint::duration>(std::chrono::duration<double>(v)));
  }
  return ParseRfc3339(s);
}

bool ParseHistoryCsv(std::string_view text, History& out, std::string& error) {
  std::istringstream in{std::string(text)};
  std::string line;
  int lineno = 0;
  enum { kUnknown, kMembers, kSources } kind = kUnknown;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string trimmed = Trim(line);
    if (trimmed.empty() || trimmed.front() == '#') continue;
    const auto cols = SplitCsv(trimmed);
    if (kind == kUnknown) {
      if (cols == std::vector<std::string>{"time", "member", "metric", "value"}) {
        kind = kMembers;
      } else if (cols == std::vector<std::string>{"time", "source", "value"}) {
        kind = kSources;
      } else {
        error = fmt::format(
            "line {}: expected the header time,member,metric,value or time,source,value", lineno);
        return false;
      }
      continue;
    }
    const size_t want = kind == kMembers ? 4 : 3;
    if (cols.size() != want) {
      error = fmt::format("line {}: expected {} columns, got {}", lineno, want, cols.size());
      return false;
    }
    const auto t = ParseTimestamp(cols[0]);
    if (!t) {
      error = fmt::format("line {}: bad time \"{}\" (Unix seconds or RFC 3339)", lineno, cols[0]);
      return false;
    }
    bool ok = true;
    const auto v = ParseValue(cols.back(), ok);
    if (!ok) {
      error = fmt::format("line {}: bad value \"{}\"", lineno, cols.back());
      return false;
    }
    if (kind == kMembers) {
      const auto k = ParseKind(cols[2]);
      if (!k || cols[1].empty()) {
        error = fmt::format("line {}: want a member name and metric cpu or memory", lineno);
        return false;
      }
      out.members[{*k, cols[1]}].push_back({*t, v});
    } else {
      if (cols[1].empty()) {
        error = fmt::format("line {}: empty source name", lineno);
        return false;
      }
      out.sources[cols[1]].push_back({*t, v});
    }
  }
  if (kind == kUnknown) {
    error = "empty file: expected a header";
    return false;
  }
  return true;
}

bool ParseHistoryJson(std::string_view text, History& out, std::string& error) {
  using nlohmann::json;
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    error = "not a JSON object";
    return false;
  }
  auto time_of = [](const json& j) -> std::optional<TimePoint> {
    if (j.is_number()) return ParseTimestamp(fmt::format("{:.6f}", j.get<double>()));
    if (j.is_string()) return ParseTimestamp(j.get<std::string>());
    return std::nullopt;
  };
  for (const char* section : {"members", "sources"}) {
    if (!doc.contains(section)) continue;
    const json& list = doc[section];
    if (!list.is_array()) {
      error = fmt::format("{}: expected an array", section);
      return false;
    }
    const bool members = std::string_view(section) == "members";
    for (size_t i = 0; i < list.size(); ++i) {
      const json& s = list[i];
      const std::string where = fmt::format("{}[{}]", section, i);
      if (!s.is_object()) {
        error = where + ": expected an object";
        return false;
      }
      const auto t = s.contains("time") ? time_of(s["time"]) : std::nullopt;
      if (!t) {
        error = where + ": missing or bad time";
        return false;
      }
      std::optional<double> v;
      if (s.contains("value") && s["value"].is_number()) {
        v = s["value"].get<double>();
      } else if (!s.contains("value") || !s["value"].is_null()) {
        error = where + ": value must be a number or null";
        return false;
      }
      const char* name_key = members ? "member" : "source";
      if (!s.contains(name_key) || !s[name_key].is_string() ||
          s[name_key].get<std::string>().empty()) {
        error = fmt::format("{}: missing {}", where, name_key);
        return false;
      }
      const std::string name = s[name_key].get<std::string>();
      if (members) {
        const auto k = s.contains("metric") && s["metric"].is_string()
                           ? ParseKind(s["metric"].get<std::string>())
                           : std::nullopt;
        if (!k) {
          error = where + ": metric must be cpu or memory";
          return false;
        }
        out.members[{*k, name}].push_back({*t, v});
      } else {
        out.sources[name].push_back({*t, v});
      }
    }
  }
  return true;
}

bool ParsePrometheusRange(std::string_view body, MetricKind kind, const std::string& source,
                          History& out, std::string& error) {
  auto parsed = ParsePrometheusRangeResponse(body);
  if (!parsed.ok()) {
    error = parsed.error().ToString();
    return false;
  }
  const std::vector<PrometheusSeries>& result = parsed.value();
  if (!source.empty() && result.size() != 1) {
    error = fmt::format("a source query must return one series, got {}", result.size());
    return false;
  }
  for (size_t i = 0; i < result.size(); ++i) {
    const auto domain = result[i].labels.find("domain");
    const std::string name =
        domain != result[i].labels.end() ? domain->second : fmt::format("series-{}", i);
    auto& points = source.empty() ? out.members[{kind, name}] : out.sources[source];
    for (const auto& [time, value] : result[i].samples) {
      points.push_back({TimePoint(std::chrono::duration_cast<TimePoint::duration>(
                            std::chrono::duration<double>(time))),
                        std::isfinite(value) ? std::optional(value) : std::nullopt});
    }
  }
  return true;
}

void ApplyHistory(const History& history, const SimulateOptions& options, Duration lookback,
                  autoscale::SimulationSpec& spec) {
  int64_t seen_at_start = 0;
  for (MetricKind kind : {MetricKind::kCpu, MetricKind::kMemory}) {
    // Memory is a footprint per member, not work that spreads over more members.
    const bool shared = options.load != "per-member" && kind == MetricKind::kCpu;
    std::map<std::string, Series> named;
    for (const auto& [key, points] : history.members)
      if (key.first == kind) named.emplace(key.second, Series(points, lookback));
    if (named.empty()) continue;
    // The group-wide series: sum (shared) or mean (per-member fallback) of the members.
    std::vector<Series::Point> combined;
    for (TimePoint t : SampleTimes(history, kind)) {
      double sum = 0;
      int n = 0;
      for (const auto& [name, s] : named) {
        if (auto v = s.At(t)) {
          sum += *v;
          ++n;
        }
      }
      combined.push_back(
          {t, n == 0 ? std::nullopt : std::optional<double>(shared ? sum : sum / n)});
    }
    spec.member_inputs.push_back({kind, "", shared, Series(std::move(combined), lookback)});
    if (!shared) {
      for (auto& [name, s] : named) spec.member_inputs.push_back({kind, name, false, s});
    }
    int64_t count = 0;
    for (const auto& [name, s] : named) count += s.At(spec.start) ? 1 : 0;
    seen_at_start = std::max(seen_at_start, count);
  }
  for (const auto& [name, points] : history.sources) spec.sources[name] = Series(points, lookback);
  spec.initial_running = options.initial_members >= 0 ? options.initial_members
                         : seen_at_start > 0          ? seen_at_start
                                                      : spec.rule.min;
  spec.initial_stopped = options.stopped_members;
}

namespace {

// --failing NAME@FROM..UNTIL: the member's health checks fail in the window
// and pass outside it.
bool AddFailingChecks(const std::vector<std::string>& flags, autoscale::SimulationSpec& spec,
                      std::ostream& err) {
  using Point = autoscale::Series::Point;
  std::map<std::string, std::vector<Point>> points;
  for (const std::string& text : flags) {
    const size_t at = text.find('@');
    std::string error = "expected NAME@FROM..UNTIL (e.g. demo-2@5m..20m)";
    std::optional<autoscale::PauseWindow> window;
    if (at != std::string::npos && at > 0)
      window = ParsePauseWindow(std::string_view(text).substr(at + 1), error);
    if (!spec.rule.health) error = "group " + spec.rule.name + " has no health checks";
    if (!window || !spec.rule.health) {
      err << "simulate: --failing " << text << ": " << error << "\n";
      return false;
    }
    std::vector<Point>& p = points[text.substr(0, at)];
    if (p.empty()) p.push_back({spec.start, 1.0});
    p.push_back({spec.start + window->from, 0.0});
    if (window->until) p.push_back({spec.start + *window->until, 1.0});
  }
  // The latest change holds to the end: the lookback spans the whole run.
  const Duration lookback =
      std::chrono::duration_cast<Duration>(spec.end - spec.start) + std::chrono::hours(1);
  for (auto& [member, p] : points) {
    std::stable_sort(p.begin(), p.end(),
                     [](const Point& a, const Point& b) { return a.time < b.time; });
    spec.health[member] = autoscale::Series(std::move(p), lookback);
  }
  return true;
}

}  // namespace

int SimulateCommand(const SimulateOptions& o, std::ostream& out, std::ostream& err) {
  if (o.rules_file.empty() || o.group.empty()) {
    err << "simulate: --rules and --group are required\n";
    return 2;
  }
  if (o.history_files.empty() == o.prometheus_url.empty()) {
    err << "simulate: give either --history FILE or --prometheus.url\n";
    return 2;
  }
  if (o.load != "shared" && o.load != "per-member") {
    err << "simulate: --load must be shared or per-member\n";
    return 2;
  }
  const auto lookback = ParseDuration(o.lookback);
  if (!lookback || *lookback <= Duration(0)) {
    err << "simulate: bad --lookback " << o.lookback << "\n";
    return 2;
  }
  std::optional<Duration> step;
  if (!o.step.empty()) {
    step = ParseDuration(o.step);
    if (!step || *step <= Duration(0)) {
      err << "simulate: bad --step " << o.step << "\n";
      return 2;
    }
  }

  Diagnostics diags(o.rules_file);
  const std::string dir = std::filesystem::path(o.rules_file).parent_path().string();
  const std::string name = std::filesystem::path(o.rules_file).filename().string();
  autoscale::RuleSet rules = autoscale::LoadRulesForSimulation(
      {name}, dir.empty() ? "." : dir, step.value_or(std::chrono::seconds(10)), diags);
  if (!diags.ok()) {
    err << diags.ToString();
    return 2;
  }
  autoscale::SimulationSpec spec;
  auto it = std::find_if(rules.groups.begin(), rules.groups.end(),
                         [&](const auto& g) { return g.name == o.group; });
  if (it == rules.groups.end()) {
    err << fmt::format("simulate: no group \"{}\" in {}\n", o.group, o.rules_file);
    return 2;
  }
  spec.rule = *it;
  spec.step = step.value_or(spec.rule.interval);
  if (!o.forecast_mode.empty()) {
    if (!spec.rule.forecast) {
      err << fmt::format("simulate: --forecast-mode: group \"{}\" has no forecast:\n", o.group);
      return 2;
    }
    if (o.forecast_mode == "off") {
      spec.rule.forecast.reset();
    } else {
      spec.rule.forecast->mode = o.forecast_mode == "scale_ahead"
                                     ? autoscale::ForecastMode::kScaleAhead
                                     : autoscale::ForecastMode::kForecastOnly;
    }
  }

  std::optional<TimePoint> start;
  std::optional<TimePoint> end;
  for (const auto& [flag, text, target] :
       {std::tuple{"--start", &o.start, &start}, std::tuple{"--end", &o.end, &end}}) {
    if (text->empty()) continue;
    *target = ParseTimestamp(*text);
    if (!*target) {
      err << fmt::format("simulate: bad {} \"{}\" (Unix seconds or RFC 3339)\n", flag, *text);
      return 2;
    }
  }

  History history;
  if (!o.prometheus_url.empty()) {
    if (!start || !end || *end <= *start) {
      err << "simulate: --prometheus.url needs --start and --end (end after start)\n";
      return 2;
    }
    if (o.query_cpu.empty() && o.query_memory.empty() && o.query_sources.empty()) {
      err << "simulate: give --query.cpu, --query.memory or --query.source.NAME\n";
      return 2;
    }
    std::string error;
    if (!FetchPrometheus(o, *start, *end, spec.step, history, error)) {
      err << "simulate: prometheus: " << error << "\n";
      return 1;
    }
  }
  for (const std::string& file : o.history_files) {
    std::string error;
    bool ok = false;
    try {
      const std::string text = ReadFile(file);
      ok = file.ends_with(".json") ? ParseHistoryJson(text, history, error)
                                   : ParseHistoryCsv(text, history, error);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!ok) {
      err << file << ": " << error << "\n";
      return 2;
    }
  }
  // The default range is the history's own.
  std::optional<TimePoint> first;
  std::optional<TimePoint> last;
  auto widen = [&](const std::vector<Series::Point>& points) {
    for (const auto& p : points) {
      if (!first || p.time < *first) first = p.time;
      if (!last || p.time > *last) last = p.time;
    }
  };
  for (const auto& [key, points] : history.members) widen(points);
  for (const auto& [key, points] : history.sources) widen(points);
  if (!first) {
    err << "simulate: the history holds no samples\n";
    return 2;
  }
  spec.start = start.value_or(*first);
  spec.end = end.value_or(*last);
  ApplyHistory(history, o, *lookback, spec);

  for (auto [flag, texts, windows] : {std::tuple{"--pause", &o.pauses, &spec.pauses},
                                      std::tuple{"--follower", &o.follower, &spec.follower}}) {
    for (const std::string& text : *texts) {
      std::string error;
      std::optional<autoscale::PauseWindow> window = ParsePauseWindow(text, error);
      if (!window) {
        err << "simulate: " << flag << " " << text << ": " << error << "\n";
        return 2;
      }
      windows->push_back(*window);
    }
  }
  spec.protected_members.insert(o.protected_members.begin(), o.protected_members.end());
  if (!AddFailingChecks(o.failing, spec, err)) return 2;

  for (const std::string& text : o.hooks) {
    std::string which;
    autoscale::HookModel model;
    std::string error;
    if (ParseHookFlag(text, which, model, error))
      error = autoscale::CheckHookModel(spec.rule, which, model);
    auto& slot = which == "before_scale_down" ? spec.before_scale_down : spec.after_scale_up;
    if (error.empty() && slot) error = "given twice for " + which;
    if (!error.empty()) {
      err << "simulate: --hook " << text << ": " << error << "\n";
      return 2;
    }
    slot = autoscale::SimulatedHook{model, {}};
  }

  const autoscale::SimulationResult result = autoscale::RunSimulation(spec);
  out << fmt::format(
      "virtscale simulate: group {} ({}), {} .. {}, step {}, {} initial running member(s), load "
      "{}\n",
      spec.rule.name, spec.rule.file, autoscale::FormatTime(spec.start),
      autoscale::FormatTime(spec.end), FormatDuration(spec.step), spec.initial_running, o.load);
  out << autoscale::FormatTimeline(result, spec, o.absolute_times);
  if (!o.plot_file.empty()) {
    std::ofstream plot(o.plot_file, std::ios::binary | std::ios::trunc);
    plot << autoscale::RenderPlotSvg(result, spec);
    if (!plot.good()) {
      err << "simulate: cannot write " << o.plot_file << "\n";
      return 2;
    }
    out << "plot: " << o.plot_file << "\n";
  }
  return 0;
}

bool ParseHookFlag(std::string_view text, std::string& which, autoscale::HookModel& model,
                   std::string& error) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    error = "expected WHICH=SPEC (before_scale_down=30s, after_scale_up=10s:fail)";
    return false;
  }
  which = std::string(text.substr(0, eq));
  if (which != "before_scale_down" && which != "after_scale_up") {
    error = "WHICH must be before_scale_down or after_scale_up, not \"" + which + "\"";
    return false;
  }
  std::string_view spec = text.substr(eq + 1);
  model = autoscale::HookModel{};
  if (auto outcome = autoscale::ParseHookOutcome(spec)) {
    model.result = *outcome;
    return true;
  }
  std::string_view duration = spec;
  if (const size_t colon = spec.find(':'); colon != std::string_view::npos) {
    duration = spec.substr(0, colon);
    const std::string_view result = spec.substr(colon + 1);
    auto outcome = autoscale::ParseHookOutcome(result);
    if (!outcome || *outcome == autoscale::HookOutcome::kTimeout) {
      error = outcome ? "timeout takes no duration (a run that times out takes the hook's timeout)"
                      : "RESULT must be ok or fail, not \"" + std::string(result) + "\"";
      return false;
    }
    model.result = *outcome;
  }
  std::string why;
  const std::optional<Duration> takes = ParseDuration(duration, &why);
  if (!takes) {
    error = "DURATION \"" + std::string(duration) + "\": " + why;
    return false;
  }
  model.takes = *takes;
  return true;
}

std::optional<autoscale::PauseWindow> ParsePauseWindow(std::string_view text, std::string& error) {
  const size_t dots = text.find("..");
  if (dots == std::string_view::npos) {
    error = "expected FROM..UNTIL or FROM.. (durations from the start, e.g. 10m..30m)";
    return std::nullopt;
  }
  autoscale::PauseWindow window;
  std::string why;
  std::optional<Duration> from = ParseDuration(text.substr(0, dots), &why);
  if (!from) {
    error = "FROM: " + why;
    return std::nullopt;
  }
  window.from = *from;
  const std::string_view until = text.substr(dots + 2);
  if (!until.empty()) {
    std::optional<Duration> end = ParseDuration(until, &why);
    if (!end) {
      error = "UNTIL: " + why;
      return std::nullopt;
    }
    if (*end <= *from) {
      error = "UNTIL must be after FROM";
      return std::nullopt;
    }
    window.until = *end;
  }
  return window;
}

std::function<std::optional<int>()> AddSimulateCommand(CLI::App& app) {
  auto o = std::make_shared<SimulateOptions>();
  auto* sim = app.add_subcommand(
      "simulate",
      "Replay a metric history through a group's rules on the real engine and print the "
      "decision timeline.");
  sim->add_option("--rules", o->rules_file, "Rule file.")->required();
  sim->add_option("--group", o->group, "Group to simulate.")->required();
  sim->add_option("--history", o->history_files,
                  "History file: CSV (time,member,metric,value or time,source,value) or JSON.");
  sim->add_option("--prometheus.url", o->prometheus_url, "Prometheus to take the history from.");
  sim->add_option("--start", o->start, "Start: Unix seconds or RFC 3339.");
  sim->add_option("--end", o->end, "End: Unix seconds or RFC 3339.");
  sim->add_option("--step", o->step, "Sample interval (default: the group's interval).");
  sim->add_option("--lookback", o->lookback, "How long a sample stays current (default 5m).");
  sim->add_option("--query.cpu", o->query_cpu, "PromQL: per-member CPU utilisation (by domain).");
  sim->add_option("--query.memory", o->query_memory,
                  "PromQL: per-member memory utilisation (by domain).");
  sim->add_option("--load", o->load, "shared (default) or per-member.")
      ->check(CLI::IsMember({"shared", "per-member"}));
  sim->add_option("--stopped-members", o->stopped_members,
                  "Stopped members at the start: a warm pool that scale-up starts first (a "
                  "group without a template scales only through them; default 0).")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  sim->add_option("--initial-members", o->initial_members,
                  "Running members at the start (default: as in the history).");
  sim->add_option("--plot", o->plot_file, "Write an SVG chart of the run.");
  sim->add_option("--forecast-mode", o->forecast_mode,
                  "Run a group with forecast: as forecast_only, scale_ahead or off (default: "
                  "the rule's mode), to compare them.")
      ->check(CLI::IsMember({"forecast_only", "scale_ahead", "off"}));
  sim->add_flag("--absolute-times", o->absolute_times, "Print RFC 3339 times too.");
  sim->add_option("--pause", o->pauses,
                  "Pause the group FROM..UNTIL after the start (e.g. 10m..30m; 10m.. to the end), "
                  "as POST .../pause and .../resume would. Repeatable.");
  sim->add_option("--follower", o->follower,
                  "Model a controller that follows FROM..UNTIL after the start (another one "
                  "leads, leader_election): its decisions there are a dry run, held_by follower. "
                  "Repeatable.");
  sim->add_option("--protect", o->protected_members,
                  "Protect the simulated member NAME ({group}-{n}) from scale-down. Repeatable.");
  sim->add_option("--failing", o->failing,
                  "The simulated member NAME's health checks fail FROM..UNTIL after the start "
                  "(e.g. demo-2@5m..20m) and pass otherwise. Repeatable.");
  sim->add_option("--hook", o->hooks,
                  "Model the group's hook WHICH (before_scale_down, after_scale_up): "
                  "WHICH=DURATION[:ok|fail] or WHICH=timeout, e.g. before_scale_down=30s, "
                  "after_scale_up=10s:fail. Hook commands never run in a simulation; without "
                  "--hook a hook succeeds at once.");
  // One option per source name, so CLI11 cannot declare it; listed here instead.
  sim->footer(
      "Per source:\n  --query.source.NAME QUERY   PromQL giving source NAME's value over time "
      "(also --query.source.NAME=QUERY).");
  sim->allow_extras();
  return [o, sim]() -> std::optional<int> {
    if (!sim->parsed()) return std::nullopt;
    // The engine logs every simulated action and health result; the report says it all.
    SetupLogging("error", "logfmt");
    const std::vector<std::string> extras = sim->remaining();
    constexpr std::string_view kPrefix = "--query.source.";
    for (size_t i = 0; i < extras.size(); ++i) {
      std::string_view arg = extras[i];
      if (!arg.starts_with(kPrefix)) {
        std::cerr << "simulate: unknown argument " << arg << "\n";
        return 2;
      }
      arg.remove_prefix(kPrefix.size());
      std::string name;
      std::string query;
      if (const size_t eq = arg.find('='); eq != std::string_view::npos) {
        name = arg.substr(0, eq);
        query = arg.substr(eq + 1);
      } else if (i + 1 < extras.size()) {
        name = arg;
        query = extras[++i];
      }
      if (name.empty() || query.empty()) {
        std::cerr << "simulate: --query.source.NAME needs a name and a query\n";
        return 2;
      }
      o->query_sources[name] = query;
    }
    return SimulateCommand(*o, std::cout, std::cerr);
  };
}

}  // namespace virtscale
