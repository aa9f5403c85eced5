#pragma once
// `virtscale simulate`: replays a history of metrics through one group's rules
// on the real engine (autoscale/simulation.h) and prints the decision
// timeline: when each condition went pending and firing, each action, and each
// hold with its reason; `--plot out.svg` draws it (autoscale/svg_plot.h).
//
//   virtscale simulate --rules config/rules/web.yml --group web --history day.csv --plot day.svg
//   virtscale simulate --rules web.yml --group web --prometheus.url http://127.0.0.1:9090
//       --start 2024-05-01T00:00:00Z --end 2024-05-02T00:00:00Z --step 1m
//       --query.cpu 'virtscale_domain_cpu_utilization_ratio{domain=~"web-.*"}'
//       --query.source.jobs 'sum(rabbitmq_queue_messages_ready{queue="jobs"})'
//
// History files (`--history`, repeatable; the format follows the extension):
//   CSV, header `time,member,metric,value`: per-member samples, metric cpu or
//     memory (utilisation ratios 0..1);
//   CSV, header `time,source,value`: source samples (queue depth, ...);
//   JSON: {"members": [{"time": T, "member": "web-1", "metric": "cpu", "value": 0.42}],
//          "sources": [{"time": T, "source": "jobs", "value": 120}]}
//   T is Unix seconds (fractions allowed) or RFC 3339 UTC ("2024-05-01T00:00:00Z").
//   An empty CSV value or JSON null is a missing sample. A sample stays current
//   for --lookback (5m, as Prometheus) unless a newer one replaces it.
// From Prometheus, every series of --query.cpu / --query.memory is a member
// (named by its `domain` label) and --query.source.NAME gives source NAME.
// Each query is one GET through common/http_client.h, complete within 60 s
// and at most kMaxHttpBodyBytes (16 MiB).
//
// A group with `forecast:` forecasts from its source's replayed samples before
// the simulated now, refetched every 5 minutes of simulated time as the agent
// does; `--forecast-mode` runs it as forecast_only, scale_ahead or without a
// forecast, and the summary reports the time the group was under-provisioned.
//
// Load model (--load): the history was recorded with the group's real
// membership, but the simulated group grows and shrinks. `shared` (default):
// the members' summed utilisation is the group's demand, spread evenly over
// the simulated running members (at most 1 each), so scaling up lowers each
// member's load. `per-member`: a simulated member with a recorded name reads
// its own history, any other reads the recorded members' mean. Memory is
// always per-member (a footprint does not spread over more members).
#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "autoscale/simulation.h"

namespace virtscale {

struct SimulateOptions {
  std::string rules_file;
  std::string group;
  std::vector<std::string> history_files;
  std::string prometheus_url;
  std::string start;  // Unix seconds or RFC 3339; default: the history's first sample
  std::string end;    // default: the history's last sample
  std::string step;   // sample interval; default: the group's interval
  std::string lookback = "5m";
  std::string query_cpu;
  std::string query_memory;
  std::map<std::string, std::string> query_sources;  // --query.source.NAME
  std::string load = "shared";                       // shared | per-member
  int64_t initial_members = -1;  // default: members with a sample at start, else the group's min
  int64_t stopped_members = 0;   // --stopped-members: the warm pool at the start
  std::string plot_file;
  std::string forecast_mode;  // forecast_only | scale_ahead | off; empty: the rule's
  bool absolute_times = false;
  std::vector<std::string> pauses;  // --pause FROM..UNTIL (offsets from the start; UNTIL optional)
  std::vector<std::string> follower;  // --follower FROM..UNTIL: another controller leads then
  std::vector<std::string> protected_members;  // --protect NAME
  std::vector<std::string> failing;            // --failing NAME@FROM..UNTIL
  std::vector<std::string> hooks;              // --hook WHICH=SPEC
};

// --hook: "before_scale_down=30s", "after_scale_up=10s:fail", "before_scale_down=timeout",
// "after_scale_up=fail" (at once). WHICH is before_scale_down or after_scale_up;
// SPEC is DURATION[:ok|fail], ok, fail or timeout. False with `error` on bad input.
[[nodiscard]] bool ParseHookFlag(std::string_view text, std::string& which,
                                 autoscale::HookModel& model, std::string& error);

// "10m..30m" -> paused from 10m to 30m after the start; "10m.." -> to the end.
// nullopt with `error` on bad input.
[[nodiscard]] std::optional<autoscale::PauseWindow> ParsePauseWindow(std::string_view text,
                                                                     std::string& error);

// Samples by (metric kind, member) and by source name.
struct History {
  std::map<std::pair<autoscale::MetricKind, std::string>, std::vector<autoscale::Series::Point>>
      members;
  std::map<std::string, std::vector<autoscale::Series::Point>> sources;
};

// "1714521600", "1714521600.5" or "2024-05-01T00:00:00Z" / "...00.250+02:00".
[[nodiscard]] std::optional<autoscale::TimePoint> ParseTimestamp(std::string_view text);

// Each returns false with `error` ("line 3: ...") on bad input; appends to `out`.
[[nodiscard]] bool ParseHistoryCsv(std::string_view text, History& out, std::string& error);
[[nodiscard]] bool ParseHistoryJson(std::string_view text, History& out, std::string& error);
// A /api/v1/query_range answer (decoded by ParsePrometheusRangeResponse,
// collectors/sources/prometheus_query.h): `source` empty -> each series is a
// member of `kind`; else the single series is that source. NaN and infinite
// samples are gaps.
[[nodiscard]] bool ParsePrometheusRange(std::string_view body, autoscale::MetricKind kind,
                                        const std::string& source, History& out,
                                        std::string& error);

// Fills spec.member_inputs, spec.sources and the initial members from `history`.
void ApplyHistory(const History& history, const SimulateOptions& options, Duration lookback,
                  autoscale::SimulationSpec& spec);

// Returns the exit code: 0 after a run, 2 on bad flags, files or rules, 1 when
// Prometheus cannot be queried.
int SimulateCommand(const SimulateOptions& options, std::ostream& out, std::ostream& err);

// Registers `simulate` on `app`. After parsing, the returned function runs the
// command and gives its exit code, or nullopt when it was not chosen.
// --query.source.NAME (any NAME) is read from the arguments CLI11 leaves over.
std::function<std::optional<int>()> AddSimulateCommand(CLI::App& app);

}  // namespace virtscale
