// Decoding of the group keys `health:` and `hooks:` (rule_loader.cc).
#include <gtest/gtest.h>

#include "autoscale/rule_loader.h"

namespace virtscale::autoscale {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

class HealthConfigTest : public ::testing::Test {
 protected:
  // Decodes one group "web" with `keys` (indented 4 spaces) appended.
  RuleSet Decode(const std::string& keys) {
    const std::string text = "groups:\n  - name: web\n    max: 2\n" + keys;
    RuleSet out;
    auto root = LoadYamlString(text, diags_);
    if (root) DecodeRuleFile(*root, "rules.yml", {}, seconds(5), out, diags_);
    return out;
  }
  std::vector<std::string> Errors() const {
    std::vector<std::string> out;
    for (const auto& d : diags_.list())
      if (!d.warning) out.push_back(d.ToString());
    return out;
  }
  // The one error a bad document must give.
  std::string OnlyError(const std::string& keys) {
    diags_ = Diagnostics("rules.yml");
    Decode(keys);
    auto errors = Errors();
    EXPECT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
    return errors.empty() ? "" : errors[0];
  }

  Diagnostics diags_{"rules.yml"};
};

TEST_F(HealthConfigTest, DecodesEveryKey) {
  RuleSet rs = Decode(R"(    health:
      grace_period: 3m
      interval: 15s
      unhealthy_after: 5
      replace: true
      checks:
        - {type: libvirt}
        - {type: exec, command: ["/usr/local/bin/check-web", "{domain}"], timeout: 7s}
        - {type: http, url: "http://{address}:8080/healthz", timeout: 1s}
        - {type: tcp, port: 22}
    hooks:
      before_scale_down: {command: ["/usr/local/bin/drain", "{domain}"], timeout: 10m, on_failure: continue}
      after_scale_up: {command: ["/usr/local/bin/enlist", "{group}", "{address}"], on_failure: abandon}
)");
  ASSERT_TRUE(diags_.ok()) << diags_.ToString();
  ASSERT_EQ(rs.groups.size(), 1u);
  const GroupRule& g = rs.groups[0];
  ASSERT_TRUE(g.health);
  EXPECT_EQ(g.health->grace_period, minutes(3));
  EXPECT_EQ(g.health->interval, seconds(15));
  EXPECT_EQ(g.health->unhealthy_after, 5);
  EXPECT_TRUE(g.health->replace);
  ASSERT_EQ(g.health->checks.size(), 4u);
  EXPECT_EQ(g.health->checks[0].type, HealthCheckType::kLibvirt);
  EXPECT_EQ(g.health->checks[1].type, HealthCheckType::kExec);
  EXPECT_EQ(g.health->checks[1].command,
            (std::vector<std::string>{"/usr/local/bin/check-web", "{domain}"}));
  EXPECT_EQ(g.health->checks[1].timeout, seconds(7));
  EXPECT_EQ(g.health->checks[1].line, 11);
  EXPECT_EQ(g.health->checks[2].url, "http://{address}:8080/healthz");
  EXPECT_EQ(g.health->checks[2].timeout, seconds(1));
  EXPECT_EQ(g.health->checks[3].port, 22);
  EXPECT_EQ(g.health->checks[3].timeout, seconds(2));
  EXPECT_EQ(g.health->checks[3].Describe(), "tcp 22");
  EXPECT_EQ(g.health->checks[1].Describe(), "exec /usr/local/bin/check-web");
  ASSERT_TRUE(g.hooks);
  ASSERT_TRUE(g.hooks->before_scale_down);
  EXPECT_EQ(g.hooks->before_scale_down->timeout, minutes(10));
  EXPECT_EQ(g.hooks->before_scale_down->on_failure, HookFailure::kContinue);
  ASSERT_TRUE(g.hooks->after_scale_up);
  EXPECT_EQ(g.hooks->after_scale_up->command.size(), 3u);
  EXPECT_EQ(g.hooks->after_scale_up->timeout, minutes(5));
  EXPECT_EQ(g.hooks->after_scale_up->on_failure, HookFailure::kAbandon);
}

TEST_F(HealthConfigTest, Defaults) {
  RuleSet rs = Decode(R"(    health:
      checks: [{type: exec, command: [/bin/true]}, {type: http, url: "https://{domain}.lan/"}]
    hooks:
      before_scale_down: {command: [/bin/drain]}
      after_scale_up: {command: [/bin/enlist]}
)");
  ASSERT_TRUE(diags_.ok()) << diags_.ToString();
  const GroupRule& g = rs.groups.at(0);
  ASSERT_TRUE(g.health);
  EXPECT_EQ(g.health->grace_period, minutes(2));
  EXPECT_EQ(g.health->interval, seconds(10));
  EXPECT_EQ(g.health->unhealthy_after, 3);
  EXPECT_FALSE(g.health->replace);
  EXPECT_EQ(g.health->checks.at(0).timeout, seconds(5));
  EXPECT_EQ(g.health->checks.at(1).timeout, seconds(2));
  EXPECT_EQ(g.hooks->before_scale_down->on_failure, HookFailure::kAbandon);
  EXPECT_EQ(g.hooks->after_scale_up->on_failure, HookFailure::kContinue);
  EXPECT_EQ(g.hooks->after_scale_up->timeout, minutes(5));
}

TEST_F(HealthConfigTest, AbsentKeysLeaveNoPolicy) {
  RuleSet rs = Decode("");
  ASSERT_TRUE(diags_.ok()) << diags_.ToString();
  EXPECT_FALSE(rs.groups.at(0).health);
  EXPECT_FALSE(rs.groups.at(0).hooks);
}

TEST_F(HealthConfigTest, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(OnlyError("    health:\n      checks: [{type: libvirt}]\n      grace_period: 2h\n"),
            "rules.yml:6: groups[0].health.grace_period: must be from 0s to 1h, got 2h");
  EXPECT_EQ(OnlyError("    health:\n      checks: [{type: libvirt}]\n      interval: 500ms\n"),
            "rules.yml:6: groups[0].health.interval: must be from 1s to 1h, got 500ms");
  EXPECT_EQ(OnlyError("    health:\n      checks: [{type: libvirt}]\n      unhealthy_after: 0\n"),
            "rules.yml:6: groups[0].health.unhealthy_after: must be an integer from 1 to 100, "
            "got 0");
  EXPECT_EQ(OnlyError("    health:\n      checks: [{type: libvirt}]\n      replace: maybe\n"),
            "rules.yml:6: groups[0].health.replace: expected true or false, got \"maybe\"");
  EXPECT_EQ(OnlyError("    health:\n      checks: [{type: libvirt}]\n      retries: 2\n"),
            "rules.yml:6: groups[0].health.retries: unknown key");
  EXPECT_EQ(OnlyError("    health:\n      grace_period: 1m\n"),
            "rules.yml:5: groups[0].health.checks: missing required key");
  EXPECT_EQ(OnlyError("    health:\n      checks: []\n"),
            "rules.yml:5: groups[0].health.checks: expected a list of 1 to 16 checks");
}

TEST_F(HealthConfigTest, CheckErrors) {
  const std::string prefix = "    health:\n      checks:\n        - ";
  EXPECT_EQ(OnlyError(prefix + "{type: ping}\n"),
            "rules.yml:6: groups[0].health.checks[0].type: expected libvirt, exec, http or tcp, "
            "got \"ping\"");
  EXPECT_EQ(OnlyError(prefix + "{type: exec}\n"),
            "rules.yml:6: groups[0].health.checks[0].command: missing required key");
  EXPECT_EQ(OnlyError(prefix + "{type: exec, command: []}\n"),
            "rules.yml:6: groups[0].health.checks[0].command: expected an argv of 1 to 64 "
            "strings, the first not empty (no shell: [\"/bin/sh\", \"-c\", \"...\"] for one)");
  EXPECT_EQ(OnlyError(prefix + "{type: exec, command: \"/bin/check {domain}\"}\n"),
            "rules.yml:6: groups[0].health.checks[0].command: expected a list of strings");
  EXPECT_EQ(OnlyError(prefix + "{type: exec, command: [/bin/check, \"{domian}\"]}\n"),
            "rules.yml:6: groups[0].health.checks[0].command: unknown placeholder {domian} "
            "(known: {domain}, {group}, {address})");
  std::string many = "[";
  for (int i = 0; i < 65; ++i) many += "a,";
  many += "a]";
  EXPECT_NE(OnlyError(prefix + "{type: exec, command: " + many + "}\n").find("1 to 64 strings"),
            std::string::npos);
  EXPECT_EQ(OnlyError(prefix + "{type: http, url: \"ftp://{address}/\"}\n"),
            "rules.yml:6: groups[0].health.checks[0].url: expected an http:// or https:// URL, "
            "got \"ftp://{address}/\"");
  EXPECT_EQ(OnlyError(prefix + "{type: http, url: \"http://{addr}/\"}\n"),
            "rules.yml:6: groups[0].health.checks[0].url: unknown placeholder {addr} (known: "
            "{domain}, {group}, {address})");
  EXPECT_EQ(OnlyError(prefix + "{type: tcp, port: 70000}\n"),
            "rules.yml:6: groups[0].health.checks[0].port: must be an integer from 1 to 65535, "
            "got 70000");
  EXPECT_EQ(OnlyError(prefix + "{type: tcp, port: 22, timeout: 10m}\n"),
            "rules.yml:6: groups[0].health.checks[0].timeout: must be from 100ms to 5m, got 10m");
  EXPECT_EQ(OnlyError(prefix + "{type: tcp, port: 22, url: \"http://x/\"}\n"),
            "rules.yml:6: groups[0].health.checks[0].url: applies only to type http");
  EXPECT_EQ(OnlyError(prefix + "{type: libvirt, timeout: 1s}\n"),
            "rules.yml:6: groups[0].health.checks[0].timeout: does not apply to type libvirt "
            "(it reads the state the agent has)");
  EXPECT_EQ(OnlyError(prefix + "{type: tcp, port: 22, expect: SSH}\n"),
            "rules.yml:6: groups[0].health.checks[0].expect: unknown key");
}

TEST_F(HealthConfigTest, HookErrors) {
  EXPECT_EQ(
      OnlyError("    hooks:\n      before_scale_down: {command: [/bin/d], on_failure: retry}\n"),
      "rules.yml:5: groups[0].hooks.before_scale_down.on_failure: expected abandon or "
      "continue, got \"retry\"");
  EXPECT_EQ(OnlyError("    hooks:\n      after_scale_up: {command: [/bin/e], timeout: 2h}\n"),
            "rules.yml:5: groups[0].hooks.after_scale_up.timeout: must be from 1s to 1h, got 2h");
  EXPECT_EQ(OnlyError("    hooks:\n      after_scale_up: {timeout: 1m}\n"),
            "rules.yml:5: groups[0].hooks.after_scale_up.command: missing required key");
  EXPECT_EQ(OnlyError("    hooks:\n      before_scale_up: {command: [/bin/e]}\n"),
            "rules.yml:5: groups[0].hooks.before_scale_up: unknown key (did you mean "
            "\"before_scale_down\"?)");
  EXPECT_EQ(OnlyError("    hooks:\n      after_scale_up: {command: [/bin/e, \"{name}\"]}\n"),
            "rules.yml:5: groups[0].hooks.after_scale_up.command: unknown placeholder {name} "
            "(known: {domain}, {group}, {address})");
}

}  // namespace
}  // namespace virtscale::autoscale
