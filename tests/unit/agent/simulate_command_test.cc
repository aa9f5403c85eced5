#include "agent/simulate_command.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <pugixml.hpp>
#include <sstream>

#include "agent/test_rules_command.h"
#include "common/http_client.h"
#include "tests/unit/support/test_server.h"

namespace virtscale {
namespace {

using autoscale::MetricKind;
using autoscale::TimePoint;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

TimePoint Unix(int64_t s) { return TimePoint(seconds(s)); }

TEST(ParseTimestamp, UnixAndRfc3339) {
  EXPECT_EQ(ParseTimestamp("1714521600"), Unix(1714521600));
  EXPECT_EQ(ParseTimestamp("2024-05-01T00:00:00Z"), Unix(1714521600));
  EXPECT_EQ(ParseTimestamp("2024-05-01T02:00:00+02:00"), Unix(1714521600));
  EXPECT_EQ(ParseTimestamp("2024-05-01T00:00:00.5Z"),
            Unix(1714521600) + std::chrono::milliseconds(500));
  EXPECT_EQ(ParseTimestamp("yesterday"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("2024-05-01T00:00:00"), std::nullopt);  // no zone
}

TEST(ParseHistoryCsv, MembersAndSources) {
  History h;
  std::string error;
  ASSERT_TRUE(
      ParseHistoryCsv("time,member,metric,value\n"
                      "1714521600,web-1,cpu,0.5\n"
                      "2024-05-01T00:01:00Z,web-1,cpu,\n"
                      "1714521600,web-2,memory,0.25\n",
                      h, error))
      << error;
  ASSERT_TRUE(ParseHistoryCsv("time,source,value\n# comment\n1714521600,jobs,120\n", h, error));
  const auto& cpu = h.members.at({MetricKind::kCpu, "web-1"});
  ASSERT_EQ(cpu.size(), 2u);
  EXPECT_THAT(cpu[0].value, Optional(0.5));
  EXPECT_EQ(cpu[1].value, std::nullopt);
  EXPECT_EQ(cpu[1].time, Unix(1714521660));
  EXPECT_THAT(h.members.at({MetricKind::kMemory, "web-2"})[0].value, Optional(0.25));
  EXPECT_THAT(h.sources.at("jobs")[0].value, Optional(120.0));
}

TEST(ParseHistoryCsv, ReportsTheLine) {
  History h;
  std::string error;
  EXPECT_FALSE(ParseHistoryCsv("time,member,metric,value\n1,web-1,disk,1\n", h, error));
  EXPECT_THAT(error, HasSubstr("line 2"));
  EXPECT_FALSE(ParseHistoryCsv("time,member,metric,value\n1,web-1,cpu,abc\n", h, error));
  EXPECT_THAT(error, HasSubstr("bad value"));
  EXPECT_FALSE(ParseHistoryCsv("when,what\n", h, error));
  EXPECT_THAT(error, HasSubstr("header"));
}

TEST(ParseHistoryJson, MembersAndSources) {
  History h;
  std::string error;
  ASSERT_TRUE(ParseHistoryJson(
      R"({"members": [{"time": 1714521600, "member": "web-1", "metric": "cpu", "value": 0.7},
                      {"time": "2024-05-01T00:01:00Z", "member": "web-1", "metric": "cpu",
                       "value": null}],
          "sources": [{"time": 1714521600, "source": "jobs", "value": 3}]})",
      h, error))
      << error;
  EXPECT_EQ(h.members.at({MetricKind::kCpu, "web-1"}).size(), 2u);
  EXPECT_THAT(h.sources.at("jobs")[0].value, Optional(3.0));
  EXPECT_FALSE(ParseHistoryJson(R"({"members": [{"time": 1, "member": "a", "metric": "cpu",
                                     "value": "x"}]})",
                                h, error));
  EXPECT_THAT(error, HasSubstr("members[0]"));
}

TEST(ParsePrometheusRange, SeriesByDomainAndSources) {
  History h;
  std::string error;
  ASSERT_TRUE(ParsePrometheusRange(
      R"({"status":"success","data":{"resultType":"matrix","result":[
           {"metric":{"domain":"web-1"},"values":[[1714521600,"0.5"],[1714521660,"NaN"]]},
           {"metric":{"domain":"web-2"},"values":[[1714521600,"0.25"]]}]}})",
      MetricKind::kCpu, "", h, error))
      << error;
  ASSERT_EQ(h.members.at({MetricKind::kCpu, "web-1"}).size(), 2u);
  EXPECT_EQ(h.members.at({MetricKind::kCpu, "web-1"})[1].value, std::nullopt);
  EXPECT_THAT(h.members.at({MetricKind::kCpu, "web-2"})[0].value, Optional(0.25));
  EXPECT_FALSE(
      ParsePrometheusRange(R"({"status":"error","errorType":"bad_data","error":"parse error"})",
                           MetricKind::kCpu, "", h, error));
  EXPECT_THAT(error, HasSubstr("bad_data: parse error"));
  EXPECT_FALSE(
      ParsePrometheusRange(R"({"status":"success","data":{"resultType":"matrix","result":[]}})",
                           MetricKind::kSource, "jobs", h, error));
  EXPECT_THAT(error, HasSubstr("one series"));
}

TEST(ApplyHistory, SharedSumsMembersPerMemberKeepsNames) {
  History h;
  h.members[{MetricKind::kCpu, "web-1"}] = {{Unix(0), 0.6}, {Unix(60), 0.8}};
  h.members[{MetricKind::kCpu, "web-2"}] = {{Unix(0), 0.4}, {Unix(60), 0.2}};
  SimulateOptions o;
  autoscale::SimulationSpec spec;
  spec.start = Unix(0);
  ApplyHistory(h, o, std::chrono::minutes(5), spec);
  EXPECT_EQ(spec.initial_running, 2);
  ASSERT_EQ(spec.member_inputs.size(), 1u);
  EXPECT_TRUE(spec.member_inputs[0].shared);
  EXPECT_THAT(spec.member_inputs[0].series.At(Unix(30)), Optional(1.0));

  o.load = "per-member";
  autoscale::SimulationSpec per;
  per.start = Unix(0);
  ApplyHistory(h, o, std::chrono::minutes(5), per);
  ASSERT_EQ(per.member_inputs.size(), 3u);  // the mean, then web-1 and web-2
  EXPECT_FALSE(per.member_inputs[0].shared);
  EXPECT_THAT(per.member_inputs[0].series.At(Unix(60)), Optional(0.5));
  EXPECT_EQ(per.member_inputs[1].member, "web-1");
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / "virtscale-simulate-test";
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

TEST(SimulateCommand, ReplaysACsvHistoryAndPlots) {
  std::string csv = "time,member,metric,value\n";
  for (int i = 0; i <= 30; ++i) {
    const double v = i < 15 ? 0.95 : 0.05;
    csv += fmt::format("{},demo-1,cpu,{}\n", 1714521600 + 2 * i, v);
  }
  SimulateOptions o;
  o.rules_file = std::string(VIRTSCALE_SOURCE_DIR) + "/config/rules/demo.yml";
  o.group = "demo";
  o.history_files = {WriteTemp("cpu.csv", csv)};
  o.plot_file = WriteTemp("plot.svg", "");
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(SimulateCommand(o, out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("group demo"));
  EXPECT_THAT(out.str(), HasSubstr("+4s  scale_up 1 -> 2: create demo-2 ok"));
  EXPECT_THAT(out.str(), HasSubstr("held (cooldown)"));
  pugi::xml_document doc;
  ASSERT_TRUE(doc.load_file(o.plot_file.c_str()));
  EXPECT_EQ(doc.select_nodes("//polyline[@class='metric']").size(), 1u);

  o.group = "nope";
  EXPECT_EQ(SimulateCommand(o, out, err), 2);
  EXPECT_THAT(err.str(), HasSubstr("no group \"nope\""));
}

TEST(SimulateCommand, ForecastModesAndTheWarmPoolOfTheShippedWorkers) {
  // Two days of a queue at 50 that jumps to 250 at 01:00 for an hour, daily.
  std::string csv = "time,source,value\n";
  for (int minute = 0; minute <= 2 * 1440; ++minute)
    csv += fmt::format("{},jobs,{}\n", 1714521600 + 60 * minute,
                       minute % 1440 >= 60 && minute % 1440 < 120 ? 250 : 50);
  SimulateOptions o;
  o.rules_file = std::string(VIRTSCALE_SOURCE_DIR) + "/config/rules/web.yml";
  o.group = "workers";
  o.history_files = {WriteTemp("jobs.csv", csv)};
  o.start = "2024-05-02T00:00:00Z";
  o.end = "2024-05-02T03:00:00Z";
  o.step = "1m";
  o.initial_members = 1;
  o.stopped_members = 5;
  o.forecast_mode = "scale_ahead";
  std::ostringstream ahead, err;
  ASSERT_EQ(SimulateCommand(o, ahead, err), 0) << err.str();
  EXPECT_THAT(ahead.str(), HasSubstr("+45m  forecast (scale_ahead): 5 members for the next 15m"));
  EXPECT_THAT(ahead.str(), HasSubstr("+45m  scale_up 1 -> 5: start workers-"));
  EXPECT_THAT(ahead.str(), HasSubstr("under-provisioned: 0s (0 minutes)"));

  o.forecast_mode = "off";
  std::ostringstream off;
  ASSERT_EQ(SimulateCommand(o, off, err), 0) << err.str();
  EXPECT_THAT(off.str(), Not(HasSubstr("forecast (")));
  EXPECT_THAT(off.str(), HasSubstr("+1h  scale_up 1 -> 5"));
  EXPECT_THAT(off.str(), HasSubstr("under-provisioned: 1m (1 minutes)"));

  o.group = "web";  // no forecast: to compare modes there is nothing to switch
  std::ostringstream none, none_err;
  EXPECT_EQ(SimulateCommand(o, none, none_err), 2);
  EXPECT_THAT(none_err.str(), HasSubstr("--forecast-mode: group \"web\" has no forecast:"));
}

TEST(SimulateCommand, PausesAndProtectionAreModelled) {
  std::string csv = "time,member,metric,value\n";
  for (int i = 0; i <= 30; ++i) csv += fmt::format("{},demo-1,cpu,0.95\n", 1714521600 + 2 * i);
  SimulateOptions o;
  o.rules_file = std::string(VIRTSCALE_SOURCE_DIR) + "/config/rules/demo.yml";
  o.group = "demo";
  o.history_files = {WriteTemp("busy.csv", csv)};
  o.pauses = {"0s..10s"};
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(SimulateCommand(o, out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("+0s  paused: paused through the lifecycle API"));
  EXPECT_THAT(out.str(), HasSubstr("held (paused)"));
  EXPECT_THAT(out.str(), HasSubstr("+10s  resumed: resumed through the lifecycle API"));
  // Nothing is created while paused: the first scale-up comes after the resume.
  const std::string timeline = out.str();
  const size_t resumed = timeline.find("resumed:");
  const size_t created = timeline.find("create demo-2");
  ASSERT_NE(created, std::string::npos) << timeline;
  EXPECT_GT(created, resumed);

  for (const char* bad : {"10m", "x..1m", "5m..1m", "1m..y"}) {
    o.pauses = {bad};
    std::ostringstream bad_err;
    EXPECT_EQ(SimulateCommand(o, out, bad_err), 2) << bad;
    EXPECT_THAT(bad_err.str(), HasSubstr(std::string("--pause ") + bad)) << bad;
  }
  std::string error;
  auto open = ParsePauseWindow("1h..", error);
  ASSERT_TRUE(open) << error;
  EXPECT_EQ(open->from, std::chrono::hours(1));
  EXPECT_FALSE(open->until);
}

TEST(SimulateCommand, AFollowerWindowIsADryRunUntilItEnds) {
  std::string csv = "time,member,metric,value\n";
  for (int i = 0; i <= 30; ++i) csv += fmt::format("{},demo-1,cpu,0.95\n", 1714521600 + 2 * i);
  SimulateOptions o;
  o.rules_file = std::string(VIRTSCALE_SOURCE_DIR) + "/config/rules/demo.yml";
  o.group = "demo";
  o.history_files = {WriteTemp("busy-follower.csv", csv)};
  o.follower = {"0s..10s"};
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(SimulateCommand(o, out, err), 0) << err.str();
  const std::string timeline = out.str();
  EXPECT_THAT(timeline, HasSubstr("held (follower)"));
  EXPECT_THAT(timeline, HasSubstr("follower: another controller leads"));
  // The first create comes after the window, and after every follower hold.
  const size_t created = timeline.find("create demo-2");
  ASSERT_NE(created, std::string::npos) << timeline;
  EXPECT_GT(created, timeline.rfind("held (follower)"));

  o.follower = {"5m..1m"};
  std::ostringstream bad_err;
  EXPECT_EQ(SimulateCommand(o, out, bad_err), 2);
  EXPECT_THAT(bad_err.str(), HasSubstr("--follower 5m..1m"));
}

TEST(SimulateCommand, FailingChecksAreReplaced) {
  std::string csv = "time,member,metric,value\n";
  for (int i = 0; i <= 20; ++i) csv += fmt::format("{},repl-1,cpu,0.5\n", 1714521600 + 30 * i);
  SimulateOptions o;
  o.rules_file = std::string(VIRTSCALE_SOURCE_DIR) + "/tests/testdata/health/rules.yml";
  o.group = "repl";
  o.step = "30s";
  o.initial_members = 2;
  o.history_files = {WriteTemp("repl.csv", csv)};
  o.failing = {"repl-2@2m..5m"};
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(SimulateCommand(o, out, err), 0) << err.str();
  const std::string timeline = out.str();
  // The replacement runs before the unhealthy member goes; max 2 + 1 during the swap.
  EXPECT_THAT(timeline, HasSubstr("+2m30s  repl-2 unhealthy: libvirt: simulated failure"));
  EXPECT_THAT(timeline, HasSubstr("+2m30s  scale_up 2 -> 3: create repl-3 ok"));
  EXPECT_THAT(timeline, HasSubstr("+3m  scale_down 3 -> 2: delete repl-2 ok"));
  EXPECT_THAT(timeline, HasSubstr("running 2..3, final 2"));
  EXPECT_THAT(timeline, Not(HasSubstr("passes its checks again")));  // repl-2 is gone

  for (const char* bad : {"repl-2", "@1m..", "repl-2@x..", "repl-2@5m..1m"}) {
    o.failing = {bad};
    std::ostringstream bad_err;
    EXPECT_EQ(SimulateCommand(o, out, bad_err), 2) << bad;
    EXPECT_THAT(bad_err.str(), HasSubstr(std::string("--failing ") + bad)) << bad;
  }
  o.rules_file = std::string(VIRTSCALE_SOURCE_DIR) + "/config/rules/demo.yml";
  o.group = "demo";
  o.failing = {"demo-1@1m.."};
  std::ostringstream no_health;
  EXPECT_EQ(SimulateCommand(o, out, no_health), 2);
  EXPECT_THAT(no_health.str(), HasSubstr("group demo has no health checks"));
}

// --hook models a group's hook (tests/testdata/hooks: enlist has after_scale_up,
// timeout 30s, on_failure abandon; drain has before_scale_down, timeout 1m).
TEST(SimulateCommand, HooksAreModelledInSimulatedTime) {
  std::string csv = "time,member,metric,value\n";
  for (int i = 0; i <= 6; ++i) csv += fmt::format("{},enlist-1,cpu,0.95\n", 1714521600 + 10 * i);
  SimulateOptions o;
  o.rules_file = std::string(VIRTSCALE_TESTDATA) + "/hooks/rules.yml";
  o.group = "enlist";
  o.history_files = {WriteTemp("enlist.csv", csv)};
  o.load = "per-member";
  o.hooks = {"after_scale_up=20s:fail"};
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(SimulateCommand(o, out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("+0s  scale_up 1 -> 2: create (new) pending"));
  EXPECT_THAT(out.str(), HasSubstr("+10s  held (action_in_flight)"));
  EXPECT_THAT(out.str(), HasSubstr("+20s  hook after_scale_up enlist-2 failed after 20s (exit "
                                   "status 1): member removed again (on_failure: abandon)"));
  EXPECT_THAT(out.str(), HasSubstr("+20s  scale_up of +0s finished: create enlist-2 error"));

  o.hooks = {"after_scale_up=timeout"};
  out.str("");
  ASSERT_EQ(SimulateCommand(o, out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("+30s  hook after_scale_up enlist-2 failed after 30s (timed out "
                                   "after 30s)"));

  for (const auto& [bad, why] : std::vector<std::pair<std::string, std::string>>{
           {"after_scale_up", "expected WHICH=SPEC"},
           {"during=10s", "WHICH must be before_scale_down or after_scale_up"},
           {"after_scale_up=-5s", "DURATION \"-5s\""},
           {"after_scale_up=10s:maybe", "RESULT must be ok or fail"},
           {"after_scale_up=10s:timeout", "timeout takes no duration"},
           {"after_scale_up=30s", "not less than the hook's timeout 30s"},
           {"after_scale_up=99999999h", "DURATION"},
           {"before_scale_down=10s", "group enlist has no hooks.before_scale_down"}}) {
    o.hooks = {bad};
    std::ostringstream bad_err;
    EXPECT_EQ(SimulateCommand(o, out, bad_err), 2) << bad;
    EXPECT_THAT(bad_err.str(), HasSubstr("--hook " + bad + ": ")) << bad;
    EXPECT_THAT(bad_err.str(), HasSubstr(why)) << bad;
  }
  o.hooks = {"after_scale_up=1s", "after_scale_up=2s"};
  std::ostringstream twice;
  EXPECT_EQ(SimulateCommand(o, out, twice), 2);
  EXPECT_THAT(twice.str(), HasSubstr("given twice"));
}

TEST(SimulateCommand, PrometheusFailuresNameTheQuery) {
  testing::TestServer server;
  server.server().Get("/down/api/v1/query_range",
                      [](const httplib::Request&, httplib::Response& res) {
                        res.status = 503;
                        res.set_content("<html>Service Unavailable</html>", "text/html");
                      });
  server.server().Get(
      "/bad/api/v1/query_range", [](const httplib::Request&, httplib::Response& res) {
        res.status = 400;
        res.set_content(R"({"status":"error","errorType":"bad_data","error":"parse error"})",
                        "application/json");
      });
  server.server().Get("/big/api/v1/query_range",
                      [](const httplib::Request&, httplib::Response& res) {
                        res.set_content(std::string(kMaxHttpBodyBytes + 1, ' '), "text/plain");
                      });
  SimulateOptions o;
  o.rules_file = std::string(VIRTSCALE_SOURCE_DIR) + "/config/rules/demo.yml";
  o.group = "demo";
  o.start = "1714521600";
  o.end = "1714521660";
  o.query_cpu = "up";
  const std::pair<std::string, std::string> cases[] = {
      {"/down", "query up: HTTP 503 from " + server.Url("/down/api/v1/query_range")},
      {"/bad/", "query up: HTTP 400: query_error: bad_data: parse error"},
      {"/big", "query up: too_large: response from " + server.Url("/big/api/v1/query_range") +
                   " is larger than 16777216 bytes"},
  };
  for (const auto& [prefix, error] : cases) {
    o.prometheus_url = server.Url(prefix);
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(SimulateCommand(o, out, err), 1) << prefix;
    EXPECT_THAT(err.str(), HasSubstr(error)) << err.str();
  }
  o.prometheus_url = "127.0.0.1:9090";
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(SimulateCommand(o, out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("invalid --prometheus.url 127.0.0.1:9090: want http://"));
}

TEST(TestRulesCommand, PassFailAndInvalidExitCodes) {
  const std::string rules = std::string(VIRTSCALE_SOURCE_DIR) + "/config/rules/demo.yml";
  const std::string head = "rule_files: [" + rules + "]\nevaluation_interval: 2s\ntests:\n";
  const std::string test =
      "  - name: spike\n    group: demo\n    initial_members: 1\n    members_series:\n"
      "      - {metric: cpu, values: '0.5x10'}\n    expect:\n";
  std::ostringstream out;
  EXPECT_EQ(TestRulesCommand(
                {WriteTemp("pass.yml", head + test + "      - {at: 4s, members: 2}\n")}, {}, out),
            0)
      << out.str();
  EXPECT_THAT(out.str(), HasSubstr("SUCCESS: 1 test(s)"));

  out.str("");
  const std::string failing =
      WriteTemp("fail.yml", head + test + "      - {at: 4s, members: 3, held_by: cooldown}\n");
  EXPECT_EQ(TestRulesCommand({failing}, {}, out), 1);
  EXPECT_THAT(out.str(), HasSubstr("members: expected 3, got 2"));
  EXPECT_THAT(out.str(), HasSubstr("held_by: expected cooldown, got none"));
  EXPECT_THAT(out.str(), HasSubstr("decision: scale_up (running 1 -> 2): firing: cpu:avg > 0.3"));
  EXPECT_THAT(out.str(), HasSubstr(failing + ":10)"));  // the expectation's line

  out.str("");
  const std::string invalid =
      WriteTemp("invalid.yml", head + test + "      - {at: 4s, memebrs: 2}\n");
  EXPECT_EQ(TestRulesCommand({invalid}, {}, out), 2);
  EXPECT_THAT(out.str(), HasSubstr(invalid + ":10: tests[0].expect[0].memebrs: unknown key"));

  out.str("");
  EXPECT_EQ(
      TestRulesCommand({WriteTemp("nogroup.yml", head + "  - name: x\n    group: web\n"
                                                        "    expect: [{at: 0s, members: 1}]\n")},
                       {}, out),
      2);
  EXPECT_THAT(out.str(), HasSubstr("no group \"web\""));
}

// tests/testdata/scale_down_order: each scale_down.order picks its member, and
// an expected action's `domain` names the member acted on.
TEST(TestRulesCommand, ScaleDownOrderChoosesTheExpectedMember) {
  const std::string dir = std::string(VIRTSCALE_TESTDATA) + "/scale_down_order/";
  std::ostringstream out;
  EXPECT_EQ(TestRulesCommand({dir + "order.test.yml"}, {}, out), 0) << out.str();
  EXPECT_THAT(out.str(), HasSubstr("SUCCESS: 3 test(s)"));

  out.str("");
  const std::string wrong = WriteTemp(
      "order-wrong.yml", "rule_files: [" + dir +
                             "rules.yml]\ntests:\n  - group: oldest\n    initial_members: 3\n"
                             "    members_series: [{metric: cpu, values: '0.1x5'}]\n"
                             "    expect: [{at: 0s, actions: [{domain: oldest-3}]}]\n");
  EXPECT_EQ(TestRulesCommand({wrong}, {}, out), 1);
  EXPECT_THAT(out.str(), HasSubstr("actions: expected [oldest-3 x1], got [down stop oldest-1]"));
  EXPECT_THAT(out.str(), HasSubstr("scale_down.order: oldest"));
}

// tests/testdata/schedules: start_time sets the wall clock, so windows open
// (also across the DST changes of Europe/Berlin) and expectations see them.
TEST(TestRulesCommand, StartTimeOpensScheduleWindows) {
  const std::string dir = std::string(VIRTSCALE_TESTDATA) + "/schedules/";
  std::ostringstream out;
  EXPECT_EQ(TestRulesCommand({dir + "schedules.test.yml"}, {}, out), 0) << out.str();
  EXPECT_THAT(out.str(), HasSubstr("SUCCESS: 3 test(s)"));

  // Without start_time the run starts at the epoch (a Thursday, 01:00 in Berlin): no window.
  out.str("");
  const std::string epoch = WriteTemp(
      "epoch.yml", "rule_files: [" + dir +
                       "rules.yml]\nevaluation_interval: 1m\ntests:\n  - initial_members: 1\n"
                       "    members_series: [{metric: cpu, values: '0.5x3'}]\n"
                       "    expect: [{at: 1m, min: 3, schedule: \"0 8 * * 1-5\"}]\n");
  EXPECT_EQ(TestRulesCommand({epoch}, {}, out), 1);
  EXPECT_THAT(out.str(), HasSubstr("min: expected 3, got 1"));
  EXPECT_THAT(out.str(), HasSubstr("schedule: expected 0 8 * * 1-5, got none"));

  out.str("");
  const std::string bad =
      WriteTemp("badstart.yml", "rule_files: [" + dir +
                                    "rules.yml]\ntests:\n  - start_time: 2026-12-07\n"
                                    "    expect: [{at: 0s, members: 0}]\n");
  EXPECT_EQ(TestRulesCommand({bad}, {}, out), 2);
  EXPECT_THAT(out.str(), HasSubstr(bad + ":3: tests[0].start_time: expected an RFC 3339 time such "
                                         "as 2026-03-29T00:00:00Z, got \"2026-12-07\""));
}

// tests/testdata/lifecycle: test files model pauses and protected members.
TEST(TestRulesCommand, PausesAndProtectedMembersAreModelled) {
  const std::string dir = std::string(VIRTSCALE_TESTDATA) + "/lifecycle/";
  std::ostringstream out;
  EXPECT_EQ(TestRulesCommand({dir + "lifecycle.test.yml"}, {}, out), 0) << out.str();
  EXPECT_THAT(out.str(), HasSubstr("SUCCESS: 5 test(s)"));

  // A test that forgets the pause fails where the pause would have held.
  out.str("");
  const std::string unpaused =
      WriteTemp("unpaused.yml", "rule_files: [" + dir +
                                    "rules.yml]\ntests:\n  - initial_members: 2\n"
                                    "    members_series: [{metric: cpu, values: '0.9x3'}]\n"
                                    "    expect: [{at: 0s, held_by: paused}]\n");
  EXPECT_EQ(TestRulesCommand({unpaused}, {}, out), 1);
  EXPECT_THAT(out.str(), HasSubstr("held_by"));

  out.str("");
  const std::string bad = WriteTemp(
      "badpause.yml", "rule_files: [" + dir +
                          "rules.yml]\ntests:\n  - pauses: [{from: 20s, until: 10s}, {until: 5s}]\n"
                          "    expect: [{at: 0s, members: 0}]\n");
  EXPECT_EQ(TestRulesCommand({bad}, {}, out), 2);
  EXPECT_THAT(out.str(), HasSubstr("until: must be after `from`"));
  EXPECT_THAT(out.str(), HasSubstr("from"));

  out.str("");
  const std::string bad_follower =
      WriteTemp("badfollower.yml", "rule_files: [" + dir +
                                       "rules.yml]\ntests:\n  - follower: {from: 0s}\n"
                                       "    expect: [{at: 0s, members: 0}]\n");
  EXPECT_EQ(TestRulesCommand({bad_follower}, {}, out), 2);
  EXPECT_THAT(out.str(), HasSubstr(":3: tests[0].follower: expected a list of {from, until}"));
}

// tests/testdata/health: test files model health-check results.
TEST(TestRulesCommand, HealthSeriesMakeMembersUnhealthy) {
  const std::string dir = std::string(VIRTSCALE_TESTDATA) + "/health/";
  std::ostringstream out;
  EXPECT_EQ(TestRulesCommand({dir + "health.test.yml"}, {}, out), 0) << out.str();
  EXPECT_THAT(out.str(), HasSubstr("SUCCESS: 3 test(s)"));
  out.str("");
  const std::string wrong = WriteTemp(
      "health-wrong.yml", "rule_files: [" + dir +
                              "rules.yml]\ntests:\n  - group: web\n    initial_members: 2\n"
                              "    health_series: [{member: web-1, values: '0x9'}]\n"
                              "    expect: [{at: 40s, unhealthy: [web-2]}]\n");
  EXPECT_EQ(TestRulesCommand({wrong}, {}, out), 1);
  EXPECT_THAT(out.str(), HasSubstr("unhealthy: expected [web-2], got [web-1]"));
}

// tests/testdata/hooks: test files model hooks that take time or fail.
TEST(TestRulesCommand, HooksTakeSimulatedTimeOrFail) {
  const std::string dir = std::string(VIRTSCALE_TESTDATA) + "/hooks/";
  std::ostringstream out;
  EXPECT_EQ(TestRulesCommand({dir + "hooks.test.yml"}, {.timeline = true}, out), 0) << out.str();
  EXPECT_THAT(out.str(), HasSubstr("SUCCESS: 7 test(s)"));
  EXPECT_THAT(out.str(), HasSubstr("+30s  hook before_scale_down drain-3 ok after 30s"));
  EXPECT_THAT(out.str(), HasSubstr("+30s  scale_down of +0s finished: stop drain-3 ok"));

  // A drain that is expected to be over too early fails where the member still runs.
  const std::string head = "rule_files: [" + dir + "rules.yml]\ntests:\n  - group: drain\n" +
                           "    initial_members: 3\n" +
                           "    members_series: [{metric: cpu, values: '0.1x9'}]\n";
  out.str("");
  const std::string early =
      WriteTemp("hooks-early.yml", head + "    hooks: {before_scale_down: {takes: 30s}}\n" +
                                       "    expect: [{at: 20s, members: 2, draining: []}]\n");
  EXPECT_EQ(TestRulesCommand({early}, {}, out), 1);
  EXPECT_THAT(out.str(), HasSubstr("members: expected 2, got 3"));
  EXPECT_THAT(out.str(), HasSubstr("draining: expected [], got [drain-3]"));
  out.str("");
  const std::string result = WriteTemp(
      "hooks-result.yml", head + "    hooks: {before_scale_down: {takes: 10s, result: fail}}\n" +
                              "    expect: [{at: 10s, finished: [{kind: stop, result: ok}]}]\n");
  EXPECT_EQ(TestRulesCommand({result}, {}, out), 1);
  EXPECT_THAT(out.str(),
              HasSubstr("finished: expected [stop ok x1], got [down stop drain-3 error]"));

  // Absurd models are rejected with the file, the line and the key.
  for (const auto& [hooks, why] : std::vector<std::pair<std::string, std::string>>{
           {"{before_scale_down: {takes: -30s}}", "takes: "},
           {"{before_scale_down: {takes: 1m}}", "takes 1m is not less than the hook's timeout 1m"},
           {"{before_scale_down: {takes: 9999999999h}}", "takes: "},
           {"{before_scale_down: {takes: soon}}", "takes: "},
           {"{before_scale_down: {result: maybe}}", "result: expected ok, fail or timeout"},
           {"{before_scale_down: {result: timeout, takes: 5s}}", "not with result: timeout"},
           {"{before_scale_down: {tkaes: 5s}}", "tkaes: unknown key"},
           {"{during: {takes: 5s}}", "during: unknown key"},
           {"{after_scale_up: {takes: 5s}}", "group drain has no hooks.after_scale_up"},
           {"{before_scale_down: {members: {drain-3: {takes: 2h}}}}",
            "hooks.before_scale_down.members.drain-3: takes 2h is not less"},
           {"{before_scale_down: {members: [drain-3]}}", "members: expected a mapping"},
           {"[before_scale_down]", "hooks: expected a mapping"}}) {
    out.str("");
    const std::string bad = WriteTemp(
        "hooks-bad.yml", head + "    hooks: " + hooks + "\n    expect: [{at: 0s, members: 3}]\n");
    EXPECT_EQ(TestRulesCommand({bad}, {}, out), 2) << hooks;
    EXPECT_THAT(out.str(), HasSubstr(bad + ":6: ")) << hooks << "\n" << out.str();
    EXPECT_THAT(out.str(), HasSubstr(why)) << hooks << "\n" << out.str();
  }
  out.str("");
  const std::string bad_expect =
      WriteTemp("hooks-bad-expect.yml",
                head + "    expect: [{at: 0s, draining: drain-3, finished: [{result: done}]}]\n");
  EXPECT_EQ(TestRulesCommand({bad_expect}, {}, out), 2);
  EXPECT_THAT(out.str(), HasSubstr("draining: expected a list of strings"));
  EXPECT_THAT(out.str(), HasSubstr("result: expected ok, error, pending, dry_run or cancelled"));
}

}  // namespace
}  // namespace virtscale
