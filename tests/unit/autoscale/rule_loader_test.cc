#include "autoscale/rule_loader.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "autoscale/domain_template.h"

namespace virtscale::autoscale {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTemplate =
    "<domain type='test'>\n  <name>tmpl</name>\n  <memory unit='MiB'>32</memory>\n"
    "  <vcpu>1</vcpu>\n  <os><type>hvm</type></os>\n</domain>\n";

class RuleLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("virtscale-rules-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "rules");
    fs::create_directories(dir_ / "templates");
    Write("templates/web.xml", kTemplate);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& rel, const std::string& text) {
    std::ofstream(dir_ / rel) << text;
    return (dir_ / rel).string();
  }
  RuleSet Load(const std::string& rel_file, const std::string& text) {
    Write(rel_file, text);
    return LoadRuleFiles({rel_file}, dir_.string(), {"jobs", "spool"}, std::chrono::seconds(5),
                         diags_);
  }
  // Errors (or warnings) with the temp directory replaced by "DIR".
  std::vector<std::string> Messages(bool warnings = false) const {
    std::vector<std::string> out;
    for (const auto& d : diags_.list()) {
      if (d.warning != warnings) continue;
      std::string s = d.ToString();
      for (size_t pos; (pos = s.find(dir_.string())) != std::string::npos;)
        s.replace(pos, dir_.string().size(), "DIR");
      out.push_back(s);
    }
    return out;
  }

  fs::path dir_;
  Diagnostics diags_{"virtscale.yml"};
};

TEST_F(RuleLoaderTest, DecodesEveryKey) {
  RuleSet rs = Load("rules/web.yml", R"(groups:
  - name: web
    template: ../templates/web.xml
    members: {name_prefix: "web-"}
    min: 1
    max: 6
    interval: 10s
    on_missing_data: scale_up
    dry_run: true
    scale_up:
      step: 1
      cooldown: 1m
      when:
        - {metric: cpu, aggregate: avg, above: 0.80, for: 30s}
        - {metric: source:jobs, per_member_above: 100}
    scale_down:
      step: "50%"
      cooldown: 5m
      action: delete
      shutdown_timeout: 20s
      order: least_loaded
      when:
        - {metric: memory, aggregate: max, below: 0.20, for: 2m}
        - {metric: source:jobs, per_member_below: 20}
  - name: queue
    max: 3
    target: {metric: source:spool, per_member_target: 50, tolerance: 0.2}
)");
  ASSERT_TRUE(diags_.ok()) << diags_.ToString();
  ASSERT_EQ(rs.groups.size(), 2u);
  const GroupRule& g = rs.groups[0];
  EXPECT_EQ(g.name, "web");
  EXPECT_EQ(g.file, (dir_ / "rules/web.yml").string());
  EXPECT_EQ(g.line, 2);
  EXPECT_EQ(g.template_path, (dir_ / "templates/web.xml").string());
  EXPECT_EQ(g.name_prefix, "web-");
  EXPECT_EQ(g.min, 1);
  EXPECT_EQ(g.max, 6);
  EXPECT_EQ(g.interval, std::chrono::seconds(10));
  EXPECT_EQ(g.on_missing_data, MissingDataPolicy::kScaleUp);
  EXPECT_TRUE(g.dry_run);
  EXPECT_EQ(g.scale_up.step.ToString(), "1");
  EXPECT_EQ(g.scale_up.cooldown, std::chrono::minutes(1));
  ASSERT_EQ(g.scale_up.when.size(), 2u);
  EXPECT_EQ(g.scale_up.when[0].Describe(), "cpu:avg > 0.8 for 30s");
  EXPECT_EQ(g.scale_up.when[1].Describe(), "source:jobs:per_member > 100");
  EXPECT_EQ(g.scale_down.step.ToString(), "50%");
  EXPECT_TRUE(g.scale_down.step.percent);
  EXPECT_EQ(g.scale_down.cooldown, std::chrono::minutes(5));
  EXPECT_EQ(g.down_action, DownAction::kDelete);
  EXPECT_EQ(g.shutdown_timeout, std::chrono::seconds(20));
  EXPECT_EQ(g.down_order, DownOrder::kLeastLoaded);
  EXPECT_EQ(g.scale_down.when[0].Describe(), "memory:max < 0.2 for 2m");
  EXPECT_EQ(g.scale_down.when[1].Describe(), "source:jobs:per_member < 20");
  const GroupRule& q = rs.groups[1];
  EXPECT_EQ(q.min, 0);
  EXPECT_EQ(q.interval, std::chrono::seconds(5));  // the default interval
  EXPECT_EQ(q.on_missing_data, MissingDataPolicy::kHold);
  EXPECT_EQ(q.down_action, DownAction::kStop);
  EXPECT_EQ(q.down_order, DownOrder::kNewest);
  ASSERT_TRUE(q.target);
  EXPECT_EQ(q.target->Describe(), "source:spool / 50 per member");
  EXPECT_DOUBLE_EQ(q.target->tolerance, 0.2);
}

TEST_F(RuleLoaderTest, GroupNotifications) {
  RuleSet rs = Load("rules/web.yml", R"(groups:
  - name: web
    members: {name_prefix: "web-"}
    max: 2
    scale_up: {when: [{metric: cpu, above: 0.8}]}
    notifications:
      - {url: "https://hooks.example.org/x?key=k", events: [failed], timeout: 3s}
  - name: bad
    members: {name_prefix: "bad-"}
    max: 2
    scale_up: {when: [{metric: cpu, above: 0.8}]}
    notifications:
      - {events: [failed]}
)");
  ASSERT_EQ(rs.groups.size(), 1u);  // "bad" is rejected
  ASSERT_EQ(rs.groups[0].notifications.size(), 1u);
  EXPECT_EQ(rs.groups[0].notifications[0].Label(), "https://hooks.example.org:443/x");
  EXPECT_EQ(rs.groups[0].notifications[0].timeout, std::chrono::seconds(3));
  const auto errors = Messages();
  ASSERT_EQ(errors.size(), 1u) << diags_.ToString();
  EXPECT_NE(errors[0].find("DIR/rules/web.yml:13: groups[1].notifications[0]"), std::string::npos)
      << errors[0];
  EXPECT_NE(errors[0].find("url"), std::string::npos) << errors[0];
}

TEST_F(RuleLoaderTest, UnknownKeysWrongTypesAndBadDurations) {
  Load("rules/a.yml", R"(groups:
  - name: web
    max: six
    interval: 10x
    colour: blue
    scale_up:
      cooldown: soon
      when:
        - {metric: cpu, above: high, for: 30s, typo: 1}
)");
  EXPECT_EQ(Messages(), (std::vector<std::string>{
                            "DIR/rules/a.yml:3: groups[0].max: expected an integer, got \"six\"",
                            "DIR/rules/a.yml:4: groups[0].interval: invalid duration \"10x\" "
                            "(want e.g. 500ms, 5s, 1m, 1h30m)",
                            "DIR/rules/a.yml:7: groups[0].scale_up.cooldown: invalid duration "
                            "\"soon\" (want e.g. 500ms, 5s, 1m, 1h30m)",
                            "DIR/rules/a.yml:9: groups[0].scale_up.when[0].above: expected a "
                            "number, got \"high\"",
                            "DIR/rules/a.yml:9: groups[0].scale_up.when[0].typo: unknown key",
                            "DIR/rules/a.yml:5: groups[0].colour: unknown key",
                        }));
}

TEST_F(RuleLoaderTest, HostileValuesAreErrorsNotCrashes) {
  // A 30,000-character name once overflowed std::regex's recursion; 400
  // digits once made std::stod throw.
  const std::string long_name(30000, 'a');
  Load("rules/h.yml", "groups:\n  - name: " + long_name + "\n    max: 2\n    scale_up:\n" +
                          "      step: \"" + std::string(400, '9') + "\"\n" +
                          "      cooldown: 1099511627776y\n");
  const std::vector<std::string> messages = Messages();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_TRUE(messages[0].starts_with("DIR/rules/h.yml:2: groups[0].name: must match"));
  EXPECT_LT(messages[0].size(), 1100u);  // quoted values are cut, not echoed whole
  EXPECT_TRUE(messages[1].starts_with("DIR/rules/h.yml:5: groups[0].scale_up.step: expected"));
  EXPECT_EQ(messages[2],
            "DIR/rules/h.yml:6: groups[0].scale_up.cooldown: duration \"1099511627776y\" is "
            "longer than the maximum 100d");
}

TEST_F(RuleLoaderTest, StabilizationWindowsPerDirection) {
  RuleSet rs = Load("rules/s.yml", R"(groups:
  - name: web
    max: 4
    scale_up: {stabilization_window: 30s}
    scale_down: {stabilization_window: 5m}
  - name: db
    max: 4
    scale_down: {stabilization_window: 61m}
  - name: queue
    max: 4
    scale_up: {stabilization_window: -1s}
)");
  EXPECT_EQ(Messages(),
            (std::vector<std::string>{
                "DIR/rules/s.yml:8: groups[1].scale_down.stabilization_window: must be at most 1h "
                "(HPA's limit)",
                "DIR/rules/s.yml:11: groups[2].scale_up.stabilization_window: invalid duration "
                "\"-1s\" (want e.g. 500ms, 5s, 1m, 1h30m)",
            }));
  diags_ = Diagnostics{"virtscale.yml"};
  rs = Load("rules/ok.yml", R"(groups:
  - name: web
    max: 4
    scale_up: {stabilization_window: 30s}
    scale_down: {stabilization_window: 1h}
)");
  ASSERT_TRUE(diags_.ok()) << diags_.ToString();
  ASSERT_EQ(rs.groups.size(), 1u);
  EXPECT_EQ(rs.groups[0].scale_up.stabilization_window, std::chrono::seconds(30));
  EXPECT_EQ(rs.groups[0].scale_down.stabilization_window, std::chrono::hours(1));
}

TEST_F(RuleLoaderTest, GroupsThatCanNeverActAreWarnings) {
  RuleSet rules = Load("rules/w.yml", R"(groups:
  - name: orphan
    max: 2
    scale_down:
      action: delete
      when: [{metric: cpu, below: 0.1}]
  - name: still
    template: ../templates/web.xml
    max: 2
)");
  EXPECT_EQ(rules.groups.size(), 2u);  // warnings do not stop the load
  EXPECT_TRUE(diags_.ok());
  EXPECT_EQ(Messages(/*warnings=*/true),
            (std::vector<std::string>{
                "DIR/rules/w.yml:2: warning: groups[0]: no template and no members.name_prefix: "
                "the group can create no member and adopts domains only by an ownership element "
                "naming it",
                "DIR/rules/w.yml:5: warning: groups[0].scale_down.action: delete removes only "
                "members created from a template, and this group has none",
                "DIR/rules/w.yml:7: warning: groups[1]: no scale_up.when, scale_down.when or "
                "target: the group only restores min and max"}));
}

TEST_F(RuleLoaderTest, AReplacingGroupWithoutTemplateIsWarnedAbout) {
  RuleSet rules = Load("rules/r.yml", R"(groups:
  - name: pool
    members: {name_prefix: "pool-"}
    max: 2
    health:
      replace: true
      checks: [{type: libvirt}]
)");
  EXPECT_EQ(rules.groups.size(), 1u);
  EXPECT_EQ(Messages(/*warnings=*/true),
            (std::vector<std::string>{
                "DIR/rules/r.yml:2: warning: groups[0]: no scale_up.when, scale_down.when or "
                "target: the group only restores min and max and replaces unhealthy members",
                "DIR/rules/r.yml:6: warning: groups[0].health.replace: the group has no "
                "template, so a replacement can only be a stopped member it starts"}));
}

TEST_F(RuleLoaderTest, AtMostAThousandGroupsInAll) {
  std::string a = "groups:\n", b = "groups:\n";
  for (int i = 0; i < 600; ++i) {
    a += fmt::format("  - {{name: a{0}, max: 1, members: {{name_prefix: a{0}-}}}}\n", i);
    b += fmt::format("  - {{name: b{0}, max: 1, members: {{name_prefix: b{0}-}}}}\n", i);
  }
  Write("rules/a.yml", a);
  Write("rules/b.yml", b);
  RuleSet rules =
      LoadRuleFiles({"rules/*.yml"}, dir_.string(), {}, std::chrono::seconds(5), diags_);
  EXPECT_EQ(rules.groups.size(), 600u);
  EXPECT_EQ(Messages(), (std::vector<std::string>{
                            "DIR/rules/b.yml:2: groups: 600 groups here and 600 in earlier rule "
                            "files: at most 1000 groups in all are supported"}));
}

TEST_F(RuleLoaderTest, SemanticChecks) {
  Load("rules/b.yml", R"(groups:
  - name: web
    min: 5
    max: 3
    on_missing_data: panic
    scale_up:
      step: 0
      when:
        - {metric: source:nope, above: 1}
        - {metric: disk, above: 1}
        - {metric: source:jobs, aggregate: avg, above: 1}
        - {metric: cpu, per_member_above: 1}
        - {metric: cpu, above: 1, below: 0.5}
        - {metric: cpu}
    scale_down:
      step: "x%"
      action: destroy
  - name: "bad name"
    max: 1
)");
  EXPECT_EQ(Messages(),
            (std::vector<std::string>{
                "DIR/rules/b.yml:3: groups[0].min: min (5) is greater than max (3)",
                "DIR/rules/b.yml:5: groups[0].on_missing_data: expected hold, scale_up or "
                "scale_down, got \"panic\"",
                "DIR/rules/b.yml:7: groups[0].scale_up.step: expected a positive count or a "
                "percentage like \"50%\" (at most 1000000), got \"0\"",
                "DIR/rules/b.yml:9: groups[0].scale_up.when[0].metric: unknown source \"nope\" "
                "(configured: jobs, spool)",
                "DIR/rules/b.yml:10: groups[0].scale_up.when[1].metric: expected cpu, memory or "
                "source:NAME, got \"disk\"",
                "DIR/rules/b.yml:11: groups[0].scale_up.when[2].aggregate: applies only to cpu "
                "and memory (a source is one value)",
                "DIR/rules/b.yml:12: groups[0].scale_up.when[3].per_member_above: needs a "
                "source:NAME metric (cpu and memory are already per member)",
                "DIR/rules/b.yml:13: groups[0].scale_up.when[4].below: only one of above, below, "
                "per_member_above, per_member_below per condition",
                "DIR/rules/b.yml:14: groups[0].scale_up.when[5]: needs one of above, below, "
                "per_member_above, per_member_below",
                "DIR/rules/b.yml:16: groups[0].scale_down.step: expected a positive count or a "
                "percentage like \"50%\" (at most 1000000), got \"x%\"",
                "DIR/rules/b.yml:17: groups[0].scale_down.action: expected stop or delete, got "
                "\"destroy\"",
                "DIR/rules/b.yml:18: groups[1].name: must match [A-Za-z0-9_.-]+ and be at most 64 "
                "characters (it names the group's domains), got \"bad name\"",
            }));
}

TEST_F(RuleLoaderTest, SchedulesDecodeWithTheirLines) {
  RuleSet rs = Load("rules/s.yml", R"(groups:
  - name: web
    min: 1
    max: 6
    schedules:
      - {cron: "0 8 * * 1-5", duration: 10h, timezone: Europe/Berlin, min: 4, max: 12}
      - {cron: "0 22 * * *", duration: 8h, max: 2}
)");
  ASSERT_TRUE(diags_.ok()) << diags_.ToString();
  ASSERT_EQ(rs.groups.size(), 1u);
  const std::vector<Schedule>& s = rs.groups[0].schedules;
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].line, 6);
  EXPECT_EQ(s[0].cron_text, "0 8 * * 1-5");
  EXPECT_EQ(s[0].duration, std::chrono::hours(10));
  EXPECT_EQ(s[0].timezone, "Europe/Berlin");
  EXPECT_EQ(s[0].min, 4);
  EXPECT_EQ(s[0].max, 12);
  EXPECT_EQ(s[1].timezone, "UTC");
  EXPECT_FALSE(s[1].min);
  EXPECT_EQ(s[1].max, 2);
}

TEST_F(RuleLoaderTest, ScheduleErrorsNameFileLineAndKey) {
  Load("rules/s.yml", R"(groups:
  - name: web
    max: 6
    schedules:
      - {cron: "0 24 * * *", duration: 1h, min: 2}
      - {cron: "0 8 * * *", duration: 0s, min: 2}
      - {cron: "0 8 * * *", duration: 8d, min: 2}
      - {cron: "0 8 * * *", duration: 1h, timezone: Mars/Olympus, min: 2}
      - {cron: "0 8 * * *", duration: 1h}
      - {cron: "0 8 * * *", duration: 1h, min: 8}
      - {cron: "0 8 * * *", duration: 1h, min: -1, max: 0}
      - {cron: "0 0 31 2 *", duration: 1h, min: 1}
      - {cron: "0 8 * * *", duration: 1h, min: 1, colour: blue}
  - name: few
    max: 6
    schedules: {cron: "0 8 * * *"}
  - name: often
    max: 6
    schedules:
      - {cron: "0 * * * *", duration: 1m, min: 1}
      - {cron: "30 */2 * * *", duration: 1m, min: 1}
)");
  EXPECT_EQ(
      Messages(),
      (std::vector<std::string>{
          "DIR/rules/s.yml:5: groups[0].schedules[0].cron: hour: 24 is outside 0-23",
          "DIR/rules/s.yml:6: groups[0].schedules[1].duration: must be more than 0s and at most "
          "7d, got 0s",
          "DIR/rules/s.yml:7: groups[0].schedules[2].duration: must be more than 0s and at most "
          "7d, got 8d",
          "DIR/rules/s.yml:8: groups[0].schedules[3].timezone: unknown time zone \"Mars/Olympus\" "
          "(an IANA name such as Europe/Berlin or UTC)",
          "DIR/rules/s.yml:9: groups[0].schedules[4]: needs min, max or both (the bounds the "
          "window sets)",
          "DIR/rules/s.yml:10: groups[0].schedules[5].min: while the window is open min would be "
          "8 and max 6 (the group's max is 6): give both, or values within the group's bounds",
          "DIR/rules/s.yml:11: groups[0].schedules[6].min: must be an integer from 0 to 1000000, "
          "got -1",
          "DIR/rules/s.yml:11: groups[0].schedules[6].max: must be an integer from 1 to 1000000, "
          "got 0",
          "DIR/rules/s.yml:12: groups[0].schedules[7].cron: \"0 0 31 2 *\" matches no date in the "
          "next 29 years",
          "DIR/rules/s.yml:13: groups[0].schedules[8].colour: unknown key",
          "DIR/rules/s.yml:16: groups[1].schedules: expected a list of 1 to 32 schedules",
          "DIR/rules/s.yml:21: groups[2].schedules[1].cron: the group's schedules open more than "
          "10000 windows a year in all (hourly is 8784)",
      }));
}

TEST_F(RuleLoaderTest, OverlappingSchedulesNameBothLines) {
  Load("rules/s.yml", R"(groups:
  - name: web
    max: 6
    schedules:
      - {cron: "0 8 * * 1-5", duration: 10h, min: 4}
      - {cron: "0 17 * * *", duration: 2h, max: 2}
  - name: self
    max: 6
    schedules:
      - {cron: "0 */2 * * *", duration: 3h, min: 4}
)");
  const std::vector<std::string> m = Messages();
  ASSERT_EQ(m.size(), 2u) << diags_.ToString();
  EXPECT_EQ(m[0].rfind("DIR/rules/s.yml:6: groups[0].schedules[1]: overlapping schedules: the "
                       "window of DIR/rules/s.yml:5 (\"0 8 * * 1-5\", 10h) opening at ",
                       0),
            0u)
      << m[0];
  EXPECT_NE(m[0].find("T08:00:00.000Z is still open when the window of DIR/rules/s.yml:6 "
                      "(\"0 17 * * *\") opens at "),
            std::string::npos)
      << m[0];
  EXPECT_NE(m[0].find("T17:00:00.000Z"), std::string::npos) << m[0];
  EXPECT_EQ(m[1].rfind("DIR/rules/s.yml:10: groups[1].schedules[0]: overlapping schedules: the "
                       "window of DIR/rules/s.yml:10 (\"0 */2 * * *\", 3h) opening at ",
                       0),
            0u)
      << m[1];
  EXPECT_NE(m[1].find("is still open when its next one opens at"), std::string::npos) << m[1];
}

TEST_F(RuleLoaderTest, ScaleDownOrderValues) {
  RuleSet rs = Load("rules/o.yml", R"(groups:
  - name: a
    max: 2
    scale_down: {order: oldest}
  - name: b
    max: 2
    scale_down:
      order: random
  - name: c
    max: 2
    scale_down: {order: [newest]}
  - name: d
    max: 2
    scale_up: {order: newest}
)");
  ASSERT_FALSE(rs.groups.empty());
  EXPECT_EQ(rs.groups[0].name, "a");
  EXPECT_EQ(rs.groups[0].down_order, DownOrder::kOldest);
  EXPECT_EQ(DownOrderName(DownOrder::kLeastLoaded), std::string("least_loaded"));
  const std::vector<std::string> messages = Messages();
  ASSERT_EQ(messages.size(), 3u) << ::testing::PrintToString(messages);
  EXPECT_EQ(messages[0],
            "DIR/rules/o.yml:8: groups[1].scale_down.order: expected newest, oldest or "
            "least_loaded, got \"random\"");
  EXPECT_NE(messages[1].find("DIR/rules/o.yml:11: groups[2].scale_down.order: "), std::string::npos)
      << messages[1];
  // Only scale-down has an order.
  EXPECT_NE(messages[2].find("DIR/rules/o.yml:14: groups[3].scale_up.order: unknown key"),
            std::string::npos)
      << messages[2];
}

TEST_F(RuleLoaderTest, MissingKeysAndTargetConflicts) {
  Load("rules/c.yml", R"(groups:
  - template: ../templates/web.xml
  - name: q
    max: 2
    target: {metric: source:jobs, per_member_target: 0}
    scale_up:
      when: [{metric: cpu, above: 0.5}]
)");
  EXPECT_EQ(
      Messages(),
      (std::vector<std::string>{
          "DIR/rules/c.yml:2: groups[0].name: missing required key",
          "DIR/rules/c.yml:2: groups[0].max: missing required key",
          "DIR/rules/c.yml:5: groups[1].target.per_member_target: must be a number in [1e-6, 2^53]",
          "DIR/rules/c.yml:5: groups[1].target: cannot be combined with scale_up.when / "
          "scale_down.when conditions",
      }));
}

TEST_F(RuleLoaderTest, TemplateMustExistAndBeADomain) {
  Write("templates/broken.xml", "<domain type='kvm'><name>x</name>");
  Write("templates/notdomain.xml", "<network><name>x</name></network>");
  Load("rules/t.yml", R"(groups:
  - name: a
    max: 1
    template: ../templates/missing.xml
  - name: b
    max: 1
    template: ../templates/broken.xml
  - name: c
    max: 1
    template: /abs/../templates/notdomain.xml
)");
  auto m = Messages();
  ASSERT_EQ(m.size(), 3u) << diags_.ToString();
  EXPECT_EQ(m[0].rfind("DIR/rules/t.yml:4: groups[0].template: ", 0), 0u) << m[0];
  EXPECT_NE(m[0].find("DIR/templates/missing.xml"), std::string::npos) << m[0];
  EXPECT_EQ(m[1].rfind("DIR/rules/t.yml:7: groups[1].template: ", 0), 0u) << m[1];
  EXPECT_NE(m[1].find("broken.xml"), std::string::npos) << m[1];
  EXPECT_EQ(m[2].rfind("DIR/rules/t.yml:10: groups[2].template: ", 0), 0u) << m[2];
}

TEST_F(RuleLoaderTest, DuplicateNamesAcrossFilesAndEmptyGlobs) {
  Write("rules/1.yml", "groups:\n  - {name: web, max: 1}\n");
  Write("rules/2.yml", "groups:\n  - name: api\n    max: 1\n  - name: web\n    max: 2\n");
  // The config's lines of the two globs.
  RuleSet rs = LoadRuleFiles({"rules/*.yml", "more/*.yml"}, dir_.string(), {},
                             std::chrono::seconds(5), diags_, {3, 4});
  EXPECT_EQ(rs.groups.size(), 2u);
  EXPECT_EQ(rs.files.size(), 2u);
  EXPECT_EQ(Messages(),
            (std::vector<std::string>{
                "DIR/rules/2.yml:4: groups[1].name: duplicate group name \"web\" (first defined "
                "at DIR/rules/1.yml:2)",
                "virtscale.yml:4: rule_files: \"more/*.yml\" matches no files (looked for "
                "DIR/more/*.yml)",
            }));
}

TEST_F(RuleLoaderTest, TwoGroupsCannotShareANamePrefix) {
  Write("rules/p.yml",
        "groups:\n  - name: web\n    max: 1\n    members: {name_prefix: \"web-\"}\n"
        "  - name: web2\n    max: 1\n    members: {name_prefix: \"web-\"}\n"
        "  - name: api\n    max: 1\n    members: {name_prefix: \"web-api-\"}\n");
  RuleSet rs = LoadRuleFiles({"rules/p.yml"}, dir_.string(), {}, std::chrono::seconds(5), diags_);
  EXPECT_EQ(rs.groups.size(), 2u);  // nested prefixes are fine: the longest wins
  EXPECT_EQ(Messages(), (std::vector<std::string>{
                            "DIR/rules/p.yml:7: groups[1].members.name_prefix: \"web-\" is already "
                            "the prefix of group \"web\" (DIR/rules/p.yml:2); a domain can be in "
                            "one group only"}));
}

TEST_F(RuleLoaderTest, SyntaxErrorsAndBadShapes) {
  Load("rules/s.yml", "groups:\n  - name: [x\n");
  Load("rules/n.yml", "groups: {name: web}\n");
  Load("rules/e.yml", "");
  auto m = Messages();
  ASSERT_EQ(m.size(), 3u) << diags_.ToString();
  EXPECT_EQ(m[0].rfind("DIR/rules/s.yml:", 0), 0u);
  EXPECT_NE(m[0].find("YAML syntax error"), std::string::npos);
  EXPECT_EQ(m[1], "DIR/rules/n.yml:1: groups: expected a list of groups");
  EXPECT_EQ(m[2], "DIR/rules/e.yml: groups: missing required key");
}

TEST_F(RuleLoaderTest, ShippedExampleRulesAreValid) {
  const std::string config_dir = std::string(VIRTSCALE_SOURCE_DIR) + "/config";
  Diagnostics diags(config_dir + "/virtscale.yml");
  RuleSet rs = LoadRuleFiles({"rules/*.yml"}, config_dir, {"demo_queue", "jobs"},
                             std::chrono::seconds(5), diags);
  EXPECT_TRUE(diags.ok()) << diags.ToString();
  EXPECT_GE(rs.groups.size(), 3u);
}

TEST_F(RuleLoaderTest, RefreshIsOffUnlessWrittenAndNeedsATemplate) {
  RuleSet rs = Load("rules/r.yml", R"(groups:
  - {name: web, template: ../templates/web.xml, max: 4, refresh: {max_unavailable: 2}}
  - {name: api, template: ../templates/web.xml, max: 4, refresh: {}}
  - {name: db, template: ../templates/web.xml, max: 4}
)");
  ASSERT_TRUE(diags_.ok()) << diags_.ToString();
  ASSERT_EQ(rs.groups.size(), 3u);
  ASSERT_TRUE(rs.groups[0].refresh);
  EXPECT_EQ(rs.groups[0].refresh->max_unavailable, 2);
  EXPECT_EQ(rs.groups[1].refresh->max_unavailable, 1);
  EXPECT_FALSE(rs.groups[2].refresh);
  EXPECT_EQ(rs.groups[0].template_doc->content_hash().size(), 64u);

  diags_ = Diagnostics("virtscale.yml");
  Load("rules/bad.yml", R"(groups:
  - name: web
    template: ../templates/web.xml
    max: 2
    refresh: {max_unavailable: 3}
  - name: api
    template: ../templates/web.xml
    max: 2
    refresh: {surge: 1}
  - name: db
    members: {name_prefix: "db-"}
    max: 2
    refresh: {max_unavailable: 1}
)");
  EXPECT_EQ(Messages(), (std::vector<std::string>{
                            "DIR/rules/bad.yml:5: groups[0].refresh.max_unavailable: must be an "
                            "integer from 0 to 2, got 3",
                            "DIR/rules/bad.yml:9: groups[1].refresh.surge: unknown key",
                            "DIR/rules/bad.yml:13: groups[2].refresh: needs a template (members "
                            "are refreshed to the group's template), and this group has none"}));
}

TEST_F(RuleLoaderTest, ForecastKeysDefaultsAndErrors) {
  RuleSet rs = Load("rules/r.yml", R"(groups:
  - name: workers
    max: 6
    target: {metric: source:jobs, per_member_target: 50}
    forecast: {source: jobs}
  - name: batch
    max: 6
    target: {metric: source:jobs, per_member_target: 50}
    forecast: {source: spool, horizon: 2h, mode: scale_ahead}
)");
  ASSERT_TRUE(diags_.ok()) << diags_.ToString();
  ASSERT_EQ(rs.groups.size(), 2u);
  ASSERT_TRUE(rs.groups[0].forecast);
  EXPECT_EQ(rs.groups[0].forecast->source, "jobs");
  EXPECT_EQ(rs.groups[0].forecast->horizon, std::chrono::minutes(15));
  EXPECT_EQ(rs.groups[0].forecast->mode, ForecastMode::kForecastOnly);
  EXPECT_EQ(rs.groups[0].forecast->line, 5);
  EXPECT_EQ(rs.groups[1].forecast->horizon, std::chrono::hours(2));
  EXPECT_EQ(rs.groups[1].forecast->mode, ForecastMode::kScaleAhead);
  EXPECT_EQ(ForecastSources(rs), (std::set<std::string>{"jobs", "spool"}));

  diags_ = Diagnostics("virtscale.yml");
  Load("rules/bad.yml", R"(groups:
  - name: a
    max: 6
    target: {metric: source:jobs, per_member_target: 50}
    forecast: {source: nope, horizon: 25h, mode: soon}
  - name: b
    max: 6
    scale_up: {when: [{metric: cpu, above: 0.8}]}
    forecast: {source: jobs}
  - name: c
    max: 6
    target: {metric: source:jobs, per_member_target: 50}
    forecast: jobs
  - name: d
    max: 6
    target: {metric: source:jobs, per_member_target: 50}
    forecast: {horizon: 0s}
)");
  EXPECT_EQ(Messages(), (std::vector<std::string>{
                            "DIR/rules/bad.yml:5: groups[0].forecast.source: unknown source "
                            "\"nope\" (configured: jobs, spool)",
                            "DIR/rules/bad.yml:5: groups[0].forecast.horizon: must be from 1s to "
                            "1d, got 1d1h",
                            "DIR/rules/bad.yml:5: groups[0].forecast.mode: expected forecast_only "
                            "or scale_ahead, got \"soon\"",
                            "DIR/rules/bad.yml:9: groups[1].forecast: needs target: (the forecast "
                            "is a load, turned into members by target.per_member_target), and "
                            "this group has none",
                            "DIR/rules/bad.yml:13: groups[2].forecast: expected a mapping",
                            "DIR/rules/bad.yml:17: groups[3].forecast.source: missing required key",
                            "DIR/rules/bad.yml:17: groups[3].forecast.horizon: must be from 1s "
                            "to 1d, got 0s"}));
}

}  // namespace
}  // namespace virtscale::autoscale
