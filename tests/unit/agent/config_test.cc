#include "agent/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/check_config.h"

namespace virtscale {
namespace {

std::vector<std::string> Problems(const std::string& yaml) {
  Diagnostics diags;
  auto cfg = ParseAgentConfig(yaml, "/etc/virtscale/virtscale.yml", diags);
  EXPECT_EQ(cfg.has_value(), diags.ok());
  std::vector<std::string> out;
  for (const auto& d : diags.list()) out.push_back(d.ToString());
  return out;
}

TEST(AgentConfig, DefaultsMatchTheContract) {
  AgentConfig cfg = DefaultAgentConfig();
  EXPECT_EQ(cfg.libvirt.uri, "qemu:///system");
  EXPECT_EQ(cfg.web.listen_address, ":9177");
  EXPECT_EQ(cfg.libvirt.sample_interval, std::chrono::seconds(5));
  EXPECT_EQ(cfg.libvirt.call_timeout, std::chrono::seconds(10));
  EXPECT_EQ(cfg.web.limits.request_deadline, std::chrono::seconds(5));
  EXPECT_EQ(cfg.web.limits.idle_timeout, std::chrono::seconds(30));
  EXPECT_EQ(cfg.web.limits.max_connections, 512u);
  EXPECT_TRUE(cfg.rules.groups.empty());
}

TEST(AgentConfig, EmptyFileGivesDefaults) {
  Diagnostics diags;
  auto cfg = ParseAgentConfig("", "/x/virtscale.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  EXPECT_EQ(cfg->libvirt.uri, "qemu:///system");
}

TEST(AgentConfig, DecodesTopLevelNotifications) {
  Diagnostics diags;
  auto cfg = ParseAgentConfig(
      "notifications:\n  - {url: \"http://127.0.0.1:9000/hook\", events: [failed]}\n",
      "/etc/virtscale/virtscale.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  ASSERT_EQ(cfg->notifications.size(), 1u);
  EXPECT_EQ(cfg->notifications[0].Label(), "http://127.0.0.1:9000/hook");
  EXPECT_EQ(Problems("notifications:\n  - url: http://h/\n    events: [scale_sideways]\n"),
            std::vector<std::string>{
                "/etc/virtscale/virtscale.yml:3: notifications[0].events: unknown event "
                "\"scale_sideways\" (expected scale_up, scale_down, replace, failed, paused, "
                "resumed)"});
}

TEST(AgentConfig, ASourceNamedTwiceIsAnError) {
  // yaml-cpp keeps both entries; without the check the second would be ignored.
  EXPECT_EQ(Problems("sources:\n  q: {type: file, path: /x}\n  q: {type: file, path: /y}\n"),
            std::vector<std::string>{
                "/etc/virtscale/virtscale.yml:3: sources.q: duplicate key (first at line 2)"});
}

TEST(AgentConfig, DecodesFleetHosts) {
  Diagnostics diags;
  auto cfg = ParseAgentConfig(
      "hosts:\n  hv1: qemu+tcp://10.77.0.2/system\n  hv-2.b: qemu+tls://hv2.example.org/system\n",
      "/etc/virtscale/virtscale.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  EXPECT_EQ(cfg->hosts,
            (std::map<std::string, std::string>{{"hv1", "qemu+tcp://10.77.0.2/system"},
                                                {"hv-2.b", "qemu+tls://hv2.example.org/system"}}));
  EXPECT_TRUE(DefaultAgentConfig().hosts.empty());
}

TEST(AgentConfig, DecodesLeaderElection) {
  Diagnostics diags;
  auto cfg = ParseAgentConfig(
      "leader_election:\n"
      "  etcd: {endpoints: [\"http://127.0.0.1:2379\", \"https://etcd2:2379\"], key: /vs/lead, "
      "lease_ttl: 6s}\n",
      "/etc/virtscale/virtscale.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  ASSERT_TRUE(cfg->leader_election);
  EXPECT_EQ(cfg->leader_election->endpoints,
            (std::vector<std::string>{"http://127.0.0.1:2379", "https://etcd2:2379"}));
  EXPECT_EQ(cfg->leader_election->key, "/vs/lead");
  EXPECT_EQ(cfg->leader_election->lease_ttl, std::chrono::seconds(6));
  // The defaults of the contract: key /virtscale/leader, lease_ttl 10s.
  cfg = ParseAgentConfig("leader_election:\n  etcd:\n    endpoints: [\"http://e:2379\"]\n",
                         "/etc/virtscale/virtscale.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  EXPECT_EQ(cfg->leader_election->key, "/virtscale/leader");
  EXPECT_EQ(cfg->leader_election->lease_ttl, std::chrono::seconds(10));
  EXPECT_FALSE(DefaultAgentConfig().leader_election);
}

TEST(AgentConfig, RejectsBadLeaderElectionNamingTheLine) {
  const std::string file = "/etc/virtscale/virtscale.yml:";
  EXPECT_EQ(Problems("leader_election:\n  etcd:\n    endpoints: []\n    lease_ttl: 1s\n"),
            std::vector<std::string>{
                file + "3: leader_election.etcd.endpoints is empty: give at least one etcd "
                       "client URL, e.g. http://127.0.0.1:2379"});
  EXPECT_EQ(
      Problems("leader_election:\n  etcd:\n    endpoints: [\"http://e:2379\"]\n"
               "    lease_ttl: 1500ms\n"),
      std::vector<std::string>{file + "4: leader_election.etcd.lease_ttl 1s500ms: must be whole "
                                      "seconds (etcd's unit), from 2s to 1h"});
  EXPECT_EQ(
      Problems("leader_election:\n  etcd:\n    endpoints: [\"127.0.0.1:2379\"]\n"),
      std::vector<std::string>{file + "3: leader_election.etcd.endpoints[0] \"127.0.0.1:2379\": "
                                      "want http://HOST[:PORT][/PATH] or https://..."});
  EXPECT_EQ(Problems("leader_election:\n  etcd:\n    endpoints: [\"http://e:2379\"]\n"
                     "    key: \"\"\n"),
            std::vector<std::string>{file + "4: leader_election.etcd.key is empty"});
  EXPECT_EQ(Problems("leader_election:\n  zookeeper: {}\n"),
            (std::vector<std::string>{file + "2: leader_election.etcd: missing required key",
                                      file + "2: leader_election.zookeeper: unknown key"}));
  EXPECT_EQ(Problems("leader_election:\n  etcd: {endpoints: x, ttl: 3s}\n"),
            (std::vector<std::string>{
                file + "2: leader_election.etcd.endpoints: expected a list of strings",
                file + "2: leader_election.etcd.ttl: unknown key"}));
}

TEST(AgentConfig, RejectsBadFleetHostsNamingTheLine) {
  EXPECT_EQ(Problems("hosts: [qemu:///system]\n"),
            std::vector<std::string>{"/etc/virtscale/virtscale.yml:1: hosts: expected a map of "
                                     "host name to libvirt URI"});
  const auto problems = Problems(
      "hosts:\n"
      "  -bad: qemu:///system\n"
      "  ok1: \"not a uri\"\n"
      "  ok2: {uri: x}\n"
      "  ok3: qemu+tcp://h1/system\n"
      "  ok4: qemu+tcp://h1/system\n"
      "  ok5: \"\"\n");
  ASSERT_EQ(problems.size(), 5u) << ::testing::PrintToString(problems);
  EXPECT_EQ(problems[0],
            "/etc/virtscale/virtscale.yml:2: hosts.-bad: a host name is 1 to 63 letters, digits, "
            "'_', '.' or '-', not starting with '.' or '-'");
  EXPECT_EQ(problems[1],
            "/etc/virtscale/virtscale.yml:3: hosts.ok1: \"not a uri\" is not a libvirt URI (want "
            "DRIVER[+TRANSPORT]://[HOST]/PATH)");
  EXPECT_EQ(problems[2],
            "/etc/virtscale/virtscale.yml:4: hosts.ok2: expected a libvirt URI such as "
            "qemu+tcp://HOST/system");
  EXPECT_EQ(problems[3],
            "/etc/virtscale/virtscale.yml:6: hosts.ok4: same URI as hosts.ok3 (one hypervisor "
            "under two names would count its members twice)");
  EXPECT_EQ(problems[4],
            "/etc/virtscale/virtscale.yml:7: hosts.ok5: expected a libvirt URI such as "
            "qemu+tcp://HOST/system");
  EXPECT_EQ(Problems("hosts:\n  hv1: qemu:///system\n  hv1: test:///default\n"),
            std::vector<std::string>{
                "/etc/virtscale/virtscale.yml:3: hosts.hv1: duplicate key (first at line 2)"});
  // Absurd input is bounded in the message, never a crash.
  const auto huge = Problems("hosts:\n  hv1: \"q:" + std::string(5000, 'x') + "\"\n");
  ASSERT_EQ(huge.size(), 1u);
  EXPECT_LT(huge[0].size(), 300u);
  const auto bad_utf8 = Problems("hosts:\n  \"h\xff\": qemu:///system\n");
  ASSERT_EQ(bad_utf8.size(), 1u) << ::testing::PrintToString(bad_utf8);
}

TEST(AgentConfig, DecodesEveryAgentKey) {
  Diagnostics diags;
  auto cfg = ParseAgentConfig(
      "libvirt:\n  uri: test:///default\n  sample_interval: 1m30s\n  call_timeout: 2s\n"
      "  workers: 4\nweb:\n  listen_address: 127.0.0.1:9999\n  config_file: web.yml\n",
      "/etc/virtscale/virtscale.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  EXPECT_EQ(cfg->libvirt.uri, "test:///default");
  EXPECT_EQ(cfg->libvirt.sample_interval, std::chrono::seconds(90));
  EXPECT_EQ(cfg->libvirt.call_timeout, std::chrono::seconds(2));
  EXPECT_EQ(cfg->libvirt.workers, 4);
  EXPECT_EQ(cfg->web.listen_address, "127.0.0.1:9999");
  EXPECT_EQ(cfg->web.config_file, "/etc/virtscale/web.yml");  // relative to the config file
}

TEST(AgentConfig, ReportsEachProblemWithFileLineAndKey) {
  EXPECT_EQ(Problems("libvirt:\n  sample_interval: 5x\n"),
            std::vector<std::string>{"/etc/virtscale/virtscale.yml:2: libvirt.sample_interval: "
                                     "invalid duration \"5x\" (want e.g. 500ms, 5s, 1m, 1h30m)"});
  EXPECT_EQ(
      Problems("libvirt:\n  urii: x\n"),
      std::vector<std::string>{
          "/etc/virtscale/virtscale.yml:2: libvirt.urii: unknown key (did you mean \"uri\"?)"});
  EXPECT_EQ(Problems("bogus: 1\n"),
            std::vector<std::string>{"/etc/virtscale/virtscale.yml:1: bogus: unknown key"});
  EXPECT_EQ(Problems("libvirt:\n  workers: many\n"),
            std::vector<std::string>{"/etc/virtscale/virtscale.yml:2: libvirt.workers: expected "
                                     "an integer, got \"many\""});
  EXPECT_EQ(Problems("libvirt:\n  workers: 100\n"),
            std::vector<std::string>{"/etc/virtscale/virtscale.yml:2: libvirt.workers: must be "
                                     "between 0 (auto) and 64"});
  EXPECT_EQ(Problems("libvirt:\n  sample_interval: 10ms\n"),
            std::vector<std::string>{"/etc/virtscale/virtscale.yml:2: libvirt.sample_interval: "
                                     "must be at least 100ms"});
  EXPECT_EQ(Problems("web: [1]\n"),
            std::vector<std::string>{"/etc/virtscale/virtscale.yml:1: web: expected a mapping"});
  EXPECT_EQ(Problems("rule_files: rules.yml\n"),
            std::vector<std::string>{
                "/etc/virtscale/virtscale.yml:1: rule_files: expected a list of strings"});
  auto syntax = Problems("libvirt:\n  uri: [\n");
  ASSERT_EQ(syntax.size(), 1u);
  EXPECT_NE(syntax[0].find("YAML syntax error"), std::string::npos);
}

TEST(AgentConfig, DecodesAndBoundsTheServerLimits) {
  Diagnostics diags;
  auto cfg = ParseAgentConfig(
      "web:\n  read_timeout: 2s\n  idle_timeout: 1m\n  write_timeout: 3s\n"
      "  max_connections: 64\n  max_header_bytes: 8192\n  max_body_bytes: 2048\n",
      "/etc/virtscale/virtscale.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  const HttpServerLimits& limits = cfg->web.limits;
  EXPECT_EQ(limits.request_deadline, std::chrono::seconds(2));
  EXPECT_EQ(limits.idle_timeout, std::chrono::minutes(1));
  EXPECT_EQ(limits.write_timeout, std::chrono::seconds(3));
  EXPECT_EQ(limits.max_connections, 64u);
  EXPECT_EQ(limits.header_limit, 8192u);
  EXPECT_EQ(limits.body_limit, 2048u);

  const std::string file = "/etc/virtscale/virtscale.yml:2: web.";
  EXPECT_EQ(Problems("web:\n  read_timeout: 0s\n"),
            std::vector<std::string>{file + "read_timeout: must be between 100ms and 10m"});
  EXPECT_EQ(Problems("web:\n  idle_timeout: 2h\n"),
            std::vector<std::string>{file + "idle_timeout: must be between 100ms and 1h"});
  EXPECT_EQ(Problems("web:\n  max_connections: 0\n"),
            std::vector<std::string>{file + "max_connections: must be between 1 and 65536"});
  EXPECT_EQ(Problems("web:\n  max_header_bytes: -1\n"),
            std::vector<std::string>{file + "max_header_bytes: must be between 1024 and 1048576"});
  EXPECT_EQ(Problems("web:\n  max_body_bytes: 1e9\n"),
            std::vector<std::string>{file + "max_body_bytes: expected an integer, got \"1e9\""});
}

TEST(AgentConfig, ReportsSeveralProblemsAtOnce) {
  auto problems = Problems("libvirt:\n  call_timeout: soon\n  nope: 1\nweb:\n  port: 1\n");
  EXPECT_EQ(problems.size(), 3u);
}

TEST(AgentConfig, UnreadableFileIsAnError) {
  Diagnostics diags;
  EXPECT_FALSE(LoadAgentConfig("/nonexistent/virtscale.yml", diags));
  EXPECT_EQ(diags.list().at(0).ToString(),
            "/nonexistent/virtscale.yml: cannot read: No such file or directory");
}

TEST(ResolveRelative, FollowsPrometheus) {
  EXPECT_EQ(ResolveRelative("/etc/v/virtscale.yml", "rules/a.yml"), "/etc/v/rules/a.yml");
  EXPECT_EQ(ResolveRelative("/etc/v/virtscale.yml", "/abs/a.yml"), "/abs/a.yml");
  EXPECT_EQ(ResolveRelative("/etc/v/rules/r.yml", "../templates/t.xml"), "/etc/v/templates/t.xml");
}

}  // namespace
}  // namespace virtscale

namespace virtscale {
namespace {

TEST(AgentConfig, StatGroupsSelectTheBulkCallsGroups) {
  Diagnostics diags;
  auto cfg = ParseAgentConfig("libvirt:\n  stats: [cpu, block]\n", "/v.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  EXPECT_EQ(cfg->libvirt.stat_groups,
            VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL | VIR_DOMAIN_STATS_BLOCK);
  cfg = ParseAgentConfig("libvirt:\n  stats: []\n", "/v.yml", diags);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->libvirt.stat_groups, VIR_DOMAIN_STATS_STATE);  // state is always collected
  EXPECT_EQ(DefaultAgentConfig().libvirt.stat_groups, kCoreStatGroups);

  cfg = ParseAgentConfig("libvirt:\n  stats: [perf, iothread, dirtyrate]\n", "/v.yml", diags);
  ASSERT_TRUE(cfg) << diags.ToString();
  EXPECT_EQ(cfg->libvirt.stat_groups, VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_PERF |
                                          VIR_DOMAIN_STATS_IOTHREAD | VIR_DOMAIN_STATS_DIRTYRATE);

  const std::string known =
      "(known: state, cpu, balloon, vcpu, interface, block, perf, iothread, dirtyrate)";
  EXPECT_EQ(
      Problems("libvirt:\n  stats:\n    - cpu\n    - perf\n    - cpuu\n    - cpu\n    - "
               "[x]\n"),
      (std::vector<std::string>{
          "/etc/virtscale/virtscale.yml:5: libvirt.stats: unknown stat group \"cpuu\" " + known,
          "/etc/virtscale/virtscale.yml:6: libvirt.stats: \"cpu\" is listed twice",
          "/etc/virtscale/virtscale.yml:7: libvirt.stats: unknown stat group \"\" " + known,
      }));
  EXPECT_EQ(Problems("libvirt:\n  stats: cpu\n"),
            std::vector<std::string>{"/etc/virtscale/virtscale.yml:2: libvirt.stats: expected a "
                                     "list of stat groups"});
}

// A rule that reads cpu or memory cannot run on groups that leave them out.
TEST(AgentConfig, RulesNeedTheStatGroupsTheyRead) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("virtscale-stats-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "rules.yml")
      << "groups:\n  - name: web\n    max: 2\n    scale_up:\n      when:\n"
         "        - {metric: cpu, above: 0.8}\n    scale_down:\n      order: least_loaded\n"
         "      when:\n        - {metric: memory, below: 0.1}\n";
  const std::string file = (dir / "virtscale.yml").string();
  const std::string rules = (dir / "rules.yml").string();
  Diagnostics diags;
  EXPECT_FALSE(
      ParseAgentConfig("libvirt:\n  stats: [vcpu]\nrule_files: [rules.yml]\n", file, diags));
  std::vector<std::string> errors;
  for (const auto& d : diags.list())
    if (!d.warning) errors.push_back(d.ToString());
  const std::string tail = " stat group, which libvirt.stats (" + file + ":2) leaves out";
  EXPECT_EQ(errors, (std::vector<std::string>{
                        rules + ":6: condition cpu:avg > 0.8 needs the \"cpu\"" + tail,
                        rules + ":10: condition memory:avg < 0.1 needs the \"balloon\"" + tail,
                        rules + ":2: scale_down.order least_loaded needs the \"cpu\"" + tail,
                    }));
  Diagnostics ok;
  EXPECT_TRUE(
      ParseAgentConfig("libvirt:\n  stats: [cpu, balloon]\nrule_files: [rules.yml]\n", file, ok))
      << ok.ToString();
  std::filesystem::remove_all(dir);
}

// A forecast reads a range of history: only a Prometheus source has one.
TEST(AgentConfig, ForecastNeedsAPrometheusSource) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("virtscale-forecast-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "rules.yml") << "groups:\n  - name: workers\n    max: 6\n"
                                      "    target: {metric: source:spool, per_member_target: 50}\n"
                                      "    forecast: {source: spool}\n"
                                      "  - name: batch\n    max: 6\n"
                                      "    target: {metric: source:jobs, per_member_target: 50}\n"
                                      "    forecast: {source: jobs, mode: scale_ahead}\n";
  const std::string file = (dir / "virtscale.yml").string();
  const std::string rules = (dir / "rules.yml").string();
  const std::string sources =
      "sources:\n  spool: {type: file, path: /run/spool}\n"
      "  jobs: {type: prometheus, url: 'http://127.0.0.1:9090', query: 'sum(jobs)'}\n";
  Diagnostics diags;
  EXPECT_FALSE(ParseAgentConfig(sources + "rule_files: [rules.yml]\n", file, diags));
  std::vector<std::string> errors;
  for (const auto& d : diags.list())
    if (!d.warning) errors.push_back(d.ToString());
  EXPECT_EQ(errors, (std::vector<std::string>{
                        rules + ":5: groups[0].forecast.source: source \"spool\" is of type file; "
                                "a forecast reads its history as a range query and needs type "
                                "prometheus"}));
  std::ofstream(dir / "rules.yml", std::ios::trunc)
      << "groups:\n  - name: batch\n    max: 6\n"
         "    target: {metric: source:jobs, per_member_target: 50}\n"
         "    forecast: {source: jobs, mode: scale_ahead}\n";
  Diagnostics ok;
  auto cfg = ParseAgentConfig(sources + "rule_files: [rules.yml]\n", file, ok);
  ASSERT_TRUE(cfg) << ok.ToString();
  EXPECT_EQ(autoscale::ForecastSources(cfg->rules), (std::set<std::string>{"jobs"}));
  std::filesystem::remove_all(dir);
}

TEST(CheckConfigCommand, WarningsPassUnlessStrict) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("virtscale-check-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "virtscale.yml") << "libvirt: {uri: 'test:///default'}\n"
                                          "rule_files: [rules.yml]\n";
  std::ofstream(dir / "rules.yml") << "groups:\n  - {name: idle, max: 2}\n";
  const std::string file = (dir / "virtscale.yml").string();

  std::ostringstream lenient, strict;
  EXPECT_EQ(CheckConfigCommand(file, false, lenient), 0);
  EXPECT_EQ(CheckConfigCommand(file, true, strict), 1);
  std::filesystem::remove_all(dir);
  const std::string warning = (dir / "rules.yml").string() + ":2: warning: groups[0]: no template";
  EXPECT_NE(lenient.str().find(warning), std::string::npos) << lenient.str();
  EXPECT_NE(lenient.str().find("SUCCESS: 1 scaling group(s), 0 source(s), 1 rule file "
                               "pattern(s), 2 warning(s)"),
            std::string::npos)
      << lenient.str();
  EXPECT_NE(strict.str().find("FAILED: 0 problem(s), 2 warning(s) (--strict)"), std::string::npos)
      << strict.str();
}

}  // namespace
}  // namespace virtscale
