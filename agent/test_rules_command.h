#pragma once
// `virtscale test rules FILE...`: unit tests for rule files, in the style of
// promtool's `test rules`. Each test drives the real engine (evaluator and
// planner) through a simulated group on a simulated clock (autoscale/
// simulation.h) and checks expectations at given times.
//
//   rule_files: [demo.yml]          # relative to the test file
//   evaluation_interval: 10s        # sample interval; default group interval
//   tests:
//     - name: cpu spike grows the group
//       interval: 10s               # series step (default evaluation_interval)
//       group: demo                 # optional when the rule files hold one group
//       initial_members: 2          # running at t=0; stopped_members: stopped ones
//       duration: 10m               # optional; default the latest `at`
//       start_time: 2026-12-07T06:58:00Z  # wall clock at t=0 (default the epoch), for schedules
//       members_series:             # every running member, unless `member: demo-2`
//         - {metric: cpu, values: '0.9x10 0.1x30'}
//         - {metric: cpu, values: '3x60', shared: true}  # group demand, split over members
//       sources:
//         - {source: jobs, values: '100+50x10 _x5 0x20'}
//       expect:                     # `at` must be a multiple of evaluation_interval
//         - {at: 1m, members: 3}    # running members after the evaluation at that time
//         - {at: 1m, actions: [{direction: up, kind: start, count: 1}]}  # or `actions: []`
//         - {at: 2m, held_by: cooldown, outcome: held, pending: ["up[0]"], firing: []}
//         - {at: 3m, min: 3, max: 6, schedule: "0 8 * * 1-5"}  # bounds in force, open window
//
// Exit code: 0 when every test passes, 1 when any fails (each failure printed
// as expected vs got with the decision's reason), 2 when a test file or its
// rule files cannot be read or are invalid (FILE:LINE: message).
#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace virtscale {

struct TestRulesOptions {
  bool timeline = false;  // print every test's decision timeline
};

int TestRulesCommand(const std::vector<std::string>& files, const TestRulesOptions& options,
                     std::ostream& out);

// Registers `test rules FILE...` on `app`. After parsing, the returned function
// runs the command and gives its exit code, or nullopt when it was not chosen.
std::function<std::optional<int>()> AddTestRulesCommand(CLI::App& app);

}  // namespace virtscale
