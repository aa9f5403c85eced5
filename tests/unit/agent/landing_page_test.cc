#include "agent/landing_page.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "autoscale/engine.h"
#include "common/utf8.h"
#include "tests/unit/autoscale/engine_test_util.h"

namespace virtscale {
namespace {

using autoscale::testing::At;
using autoscale::testing::Dom;
using autoscale::testing::Snap;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

size_t Count(const std::string& html, const std::string& what) {
  size_t n = 0;
  for (size_t at = html.find(what); at != std::string::npos; at = html.find(what, at + 1)) ++n;
  return n;
}

// The row of `html` that contains `needle`.
std::string RowWith(const std::string& html, const std::string& needle) {
  const size_t at = html.find(needle);
  if (at == std::string::npos) return "";
  const size_t start = html.rfind("<tr", at);
  const size_t end = html.find("</tr>", at);
  return html.substr(start, end - start);
}

LandingPageData Page() {
  LandingPageData p;
  p.version = "1.2.3";
  p.uri = "test:///default";
  p.now = At(100).wall;
  p.reload.config_file = "/etc/virtscale/virtscale.yml";
  p.reload.loaded_at = At(40).wall;
  return p;
}

// A group evaluated by the real engine: the page reads what GroupsJson and
// DecisionsJson really say.
struct LandingPageWithEngine : ::testing::Test {
  autoscale::testing::FakeActuator actuator;
  FakeClock clock{At(0)};
  std::unique_ptr<autoscale::Engine> engine;

  void SetUp() override {
    autoscale::EngineOptions o;
    o.clock = &clock;
    engine = std::make_unique<autoscale::Engine>(actuator, o);
    autoscale::GroupRule r = autoscale::testing::CpuRule(1, 5);
    r.scale_up.when = {
        autoscale::testing::Cond(autoscale::MetricKind::kCpu, autoscale::Comparison::kAbove, 0.8)};
    r.scale_up.cooldown = seconds(0);
    r.scale_down.stabilization_window = std::chrono::minutes(5);
    autoscale::RuleSet rules;
    rules.groups = {r};
    engine->SetRules(rules);
    // web-1 and web-3 running hot, web-2 stopped (warm pool), web-4 paused.
    engine->Tick(Snap(At(0), {Dom("web-1", DomainState::kRunning, 0.9, 1),
                              Dom("web-2", DomainState::kShutoff, {}, 2),
                              Dom("web-3", DomainState::kRunning, 0.9),
                              Dom("web-4", DomainState::kPaused, {}, 4)}),
                 {}, At(0));
    engine->WaitIdle();
  }

  LandingPageData EnginePage() {
    LandingPageData p = Page();
    p.groups = engine->GroupsJson();
    autoscale::DecisionFilter changes;
    changes.changes_only = true;
    p.changes = engine->DecisionsJson(changes);
    return p;
  }
};

TEST(LandingPage, RefreshesWithoutScriptsAndLinksEveryEndpoint) {
  const std::string html = RenderLandingPage(Page());
  EXPECT_THAT(html, HasSubstr("<meta http-equiv=\"refresh\" content=\"5\">"));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  for (const char* link : {"metrics", "api/v1/groups", "api/v1/decisions",
                           "api/v1/decisions?changes=true", "-/healthy", "-/ready"})
    EXPECT_THAT(html, HasSubstr("href=\"" + std::string(link) + "\"")) << link;
  EXPECT_THAT(html, HasSubstr("no sample yet"));
  EXPECT_THAT(html, HasSubstr("No scaling groups configured."));
  EXPECT_THAT(html, HasSubstr("No sources configured."));
  EXPECT_THAT(html, HasSubstr("No changes yet."));
}

TEST(LandingPage, SaysWhetherLibvirtIsUpAndHowOldTheSampleIs) {
  LandingPageData p = Page();
  p.snapshot = Snap(At(97), {Dom("a", DomainState::kRunning), Dom("b", DomainState::kShutoff)});
  std::string html = RenderLandingPage(p);
  EXPECT_THAT(html,
              HasSubstr("<span class=\"ok\">up</span> &middot; 2 domains &middot; sampled 3s ago"));
  p.snapshot = Snap(At(97), {}, /*libvirt_up=*/false);
  html = RenderLandingPage(p);
  EXPECT_THAT(html, HasSubstr("<span class=\"bad\">down</span>"));
}

TEST(LandingPage, ShowsTheBoundsInForceAndTheOpenWindow) {
  LandingPageData p = Page();
  p.groups = nlohmann::json::array({{{"name", "web"},
                                     {"min", 1},
                                     {"max", 6},
                                     {"effective_min", 4},
                                     {"effective_max", 6},
                                     {"schedule",
                                      {{"cron", "0 8 * * 1-5"},
                                       {"timezone", "Europe/Berlin"},
                                       {"ends_at", "2026-12-07T17:00:00.000Z"}}},
                                     {"next_schedule", "2026-12-08T07:00:00.000Z"}}});
  const std::string html = RenderLandingPage(p);
  EXPECT_THAT(html, HasSubstr("<td class=\"num\">4</td><td class=\"num\">6</td>"));
  EXPECT_THAT(html, HasSubstr("schedule \"0 8 * * 1-5\" (Europe/Berlin) until "
                              "2026-12-07T17:00:00.000Z"));
  EXPECT_THAT(html, HasSubstr("next window 2026-12-08T07:00:00.000Z"));
}

TEST(LandingPage, DryRunBannerOnlyInDryRun) {
  LandingPageData p = Page();
  p.groups = nlohmann::json::array({{{"name", "web"}, {"dry_run", false}}});
  EXPECT_THAT(RenderLandingPage(p), Not(HasSubstr("dry-run-banner")));

  p.dry_run = true;
  EXPECT_THAT(RenderLandingPage(p),
              HasSubstr("id=\"dry-run-banner\">Dry run: decisions are computed, logged and "
                        "exported; no VM is changed (<code>--dry-run</code>: every group)"));

  p.dry_run = false;
  p.groups = nlohmann::json::array({{{"name", "web"}, {"dry_run", true}},
                                    {{"name", "api"}, {"dry_run", false}},
                                    {{"name", "db"}, {"dry_run", true}}});
  EXPECT_THAT(RenderLandingPage(p), HasSubstr("(<code>dry_run</code>: web, db)"));
}

TEST(LandingPage, ShowsTheRoleInTheLeaderElection) {
  LandingPageData p = Page();
  EXPECT_THAT(RenderLandingPage(p), Not(HasSubstr("id=\"leader\"")));  // no leader_election
  p.leader = {{"enabled", true},          {"role", "follower"},
              {"identity", "hv1:9177-7"}, {"key", "/virtscale/leader"},
              {"lease_ttl", "10s"},       {"why_not_leader", "the leader is hv2:9177-9"}};
  std::string html = RenderLandingPage(p);
  EXPECT_THAT(html, HasSubstr("class=\"banner\" id=\"leader\" data-role=\"follower\""));
  EXPECT_THAT(html, HasSubstr("<code>hv1:9177-7</code>) is <span class=\"warn\">follower</span>: "
                              "the leader is hv2:9177-9; its decisions are a dry run"));
  p.leader["role"] = "leader";
  html = RenderLandingPage(p);
  EXPECT_THAT(html, HasSubstr("<p id=\"leader\" data-role=\"leader\">"));
  EXPECT_THAT(html, HasSubstr("<span class=\"ok\">the leader</span> and acts."));
  EXPECT_THAT(html, HasSubstr("href=\"api/v1/leader\""));
}

TEST(LandingPage, ShowsTheLastReload) {
  LandingPageData p = Page();
  std::string html = RenderLandingPage(p);
  EXPECT_THAT(html, HasSubstr("id=\"reload-status\" data-result=\"start\""));
  EXPECT_THAT(html, HasSubstr("Running <code>/etc/virtscale/virtscale.yml</code>, loaded when the "
                              "agent started, at 2023-11-14T22:14:00.000Z (1m 0s ago); no reload "
                              "since."));

  p.reload.attempted = true;
  p.reload.ok = false;
  p.reload.attempted_at = At(90).wall;
  p.reload.error = "rules/web.yml:3: groups[0].max: expected an integer, got \"<six>\"";
  html = RenderLandingPage(p);
  EXPECT_THAT(html, HasSubstr("id=\"reload-status\" data-result=\"failure\""));
  EXPECT_THAT(html,
              HasSubstr("Last reload failed</span> at 2023-11-14T22:14:50.000Z (10s ago); "
                        "still running <code>/etc/virtscale/virtscale.yml</code> as loaded at "
                        "2023-11-14T22:14:00.000Z (1m 0s ago)."));
  EXPECT_THAT(html, HasSubstr("got &quot;&lt;six&gt;&quot;"));

  p.reload.ok = true;
  p.reload.error.clear();
  p.reload.loaded_at = p.reload.attempted_at;
  html = RenderLandingPage(p);
  EXPECT_THAT(html, HasSubstr("id=\"reload-status\" data-result=\"success\""));
  EXPECT_THAT(html, HasSubstr("Last reload succeeded</span> at 2023-11-14T22:14:50.000Z (10s ago): "
                              "running <code>/etc/virtscale/virtscale.yml</code>."));
}

TEST(LandingPage, SourcesWithValueAgeAndHealth) {
  LandingPageData p = Page();
  p.sources["jobs"] = {120.5, "", At(97).wall, SourceHealth::kOk, nullptr, ""};
  p.sources["mail"] = {7,           "read: cannot read /run/mail: No such file",
                       At(95).wall, SourceHealth::kFailing,
                       nullptr,     ""};
  p.sources["old"] = {std::nullopt,  "stale: last success 300s ago",
                      At(-200).wall, SourceHealth::kStale,
                      nullptr,       ""};
  p.sources["prom"] = {
      std::nullopt, "connection: refused <tcp>", {}, SourceHealth::kError, nullptr, ""};
  p.sources["new"] = {
      std::nullopt, "pending: not polled yet", {}, SourceHealth::kPending, nullptr, ""};
  const std::string html = RenderLandingPage(p);
  EXPECT_EQ(Count(html, "<tr class=\"source\""), 5u);
  EXPECT_THAT(RowWith(html, ">jobs<"), HasSubstr("data-health=\"ok\""));
  EXPECT_THAT(RowWith(html, ">jobs<"), HasSubstr(">120.5<"));
  EXPECT_THAT(RowWith(html, ">jobs<"), HasSubstr(">3s ago<"));
  EXPECT_THAT(RowWith(html, ">mail<"), HasSubstr("data-health=\"failing\""));
  EXPECT_THAT(RowWith(html, ">mail<"), HasSubstr("cannot read /run/mail"));
  EXPECT_THAT(RowWith(html, ">old<"), HasSubstr("data-health=\"stale\""));
  EXPECT_THAT(RowWith(html, ">old<"), HasSubstr(">5m 0s ago<"));
  EXPECT_THAT(RowWith(html, ">prom<"), HasSubstr("data-health=\"error\""));
  EXPECT_THAT(RowWith(html, ">prom<"), HasSubstr(">never<"));
  EXPECT_THAT(RowWith(html, ">prom<"), HasSubstr("refused &lt;tcp&gt;"));
  EXPECT_THAT(RowWith(html, ">new<"), HasSubstr("data-health=\"pending\""));
}

TEST_F(LandingPageWithEngine, MembersWithTheirStates) {
  const std::string html = RenderLandingPage(EnginePage());
  EXPECT_EQ(Count(html, "<tr class=\"member\""), 4u);
  EXPECT_THAT(RowWith(html, ">web-1<"), HasSubstr("data-state=\"running\""));
  EXPECT_THAT(RowWith(html, ">web-1<"), HasSubstr(">owned<"));
  EXPECT_THAT(RowWith(html, ">web-2<"), HasSubstr("<td class=\"state state-stopped\">stopped<"));
  EXPECT_THAT(RowWith(html, ">web-3<"), HasSubstr(">adopted<"));
  EXPECT_THAT(RowWith(html, ">web-4<"), HasSubstr("data-state=\"paused\""));
}

TEST_F(LandingPageWithEngine, AMemberWhoseEnlistHookRunsIsMarkedNotInService) {
  LandingPageData p = EnginePage();
  p.groups[0]["members"][0]["in_service"] = false;
  const std::string html = RenderLandingPage(p);
  EXPECT_THAT(RowWith(html, ">web-1<"), HasSubstr("not in service: after_scale_up hook running"));
  EXPECT_THAT(RowWith(html, ">web-3<"), Not(HasSubstr("not in service")));
}

TEST_F(LandingPageWithEngine, AMemberMadeFromAnOlderTemplateIsMarked) {
  LandingPageData p = EnginePage();
  p.groups[0]["members"][0]["template_current"] = false;
  p.groups[0]["members"][1]["template_current"] = true;
  const std::string html = RenderLandingPage(p);
  EXPECT_THAT(RowWith(html, ">web-1<"), HasSubstr("older template: to be refreshed"));
  EXPECT_THAT(RowWith(html, ">web-2<"), Not(HasSubstr("older template")));
  EXPECT_THAT(RowWith(html, ">web-3<"), Not(HasSubstr("older template")));  // null: unknown
}

TEST_F(LandingPageWithEngine, PausedGroupsAndProtectedMembersAreMarked) {
  std::string html = RenderLandingPage(EnginePage());
  EXPECT_THAT(RowWith(html, "data-group=\"web\""), HasSubstr("data-paused=\"false\""));
  EXPECT_THAT(RowWith(html, ">web-1<"), HasSubstr("data-protected=\"false\""));

  ASSERT_EQ(engine->SetPaused("web", true).status, autoscale::LifecycleChange::Status::kOk);
  ASSERT_EQ(engine->SetProtected("web", "web-1", true).status,
            autoscale::LifecycleChange::Status::kOk);
  html = RenderLandingPage(EnginePage());
  EXPECT_THAT(RowWith(html, "data-group=\"web\""), HasSubstr("data-paused=\"true\""));
  EXPECT_THAT(RowWith(html, "data-group=\"web\""), HasSubstr("paused since "));
  EXPECT_THAT(RowWith(html, ">web-1<"), HasSubstr("data-protected=\"true\""));
  EXPECT_THAT(RowWith(html, ">web-1<"), HasSubstr(">protected<"));
  EXPECT_THAT(RowWith(html, ">web-3<"), HasSubstr("data-protected=\"false\""));
  // The pause is among the recent changes.
  EXPECT_THAT(html, HasSubstr("paused through the lifecycle API"));
}

TEST_F(LandingPageWithEngine, RecentChangesAndEachGroupsLatestEvaluation) {
  std::string html = RenderLandingPage(EnginePage());
  // The scale-up started the warm-pool member.
  ASSERT_EQ(Count(html, "<tr class=\"change\""), 1u);
  EXPECT_THAT(RowWith(html, "class=\"change\""), HasSubstr(">scale_up<"));
  EXPECT_THAT(RowWith(html, "class=\"change\""), HasSubstr("start web-2: ok"));
  EXPECT_THAT(RowWith(html, "data-group=\"web\""), HasSubstr("<b>scale_up: ok</b>"));
  EXPECT_THAT(RowWith(html, "data-group=\"web\""),
              HasSubstr("<span class=\"muted order\">scale-down order: newest</span>"));
  EXPECT_THAT(RowWith(html, "data-group=\"web\""),
              HasSubstr("<span class=\"muted stabilization\">stabilization: down 5m</span>"));

  // Idle evaluations replace the latest evaluation, not the recent changes.
  for (int s = 10; s <= 100; s += 10) {
    clock.Set(At(s));
    engine->Tick(Snap(At(s), {Dom("web-1", DomainState::kRunning, 0.5, 1),
                              Dom("web-2", DomainState::kRunning, 0.5, 2)}),
                 {}, At(s));
  }
  html = RenderLandingPage(EnginePage());
  EXPECT_EQ(Count(html, "<tr class=\"change\""), 1u);
  EXPECT_THAT(RowWith(html, "data-group=\"web\""), HasSubstr("<b>none</b>"));
  EXPECT_THAT(RowWith(html, "data-group=\"web\""), HasSubstr("2023-11-14T22:15:00.000Z"));
}

TEST(LandingPage, ShowsTheStatGroupsInForce) {
  LandingPageData p = Page();
  EXPECT_THAT(RenderLandingPage(p), Not(HasSubstr("id=\"stat-groups\"")));
  p.stat_groups = {"state", "cpu"};
  EXPECT_THAT(RenderLandingPage(p), HasSubstr("stats <code id=\"stat-groups\">state, cpu</code>"));
}

TEST(LandingPage, ShowsTheForecastOrWhyThereIsNone) {
  LandingPageData p = Page();
  p.groups = nlohmann::json::parse(R"([
    {"name": "workers", "forecast": {"source": "jobs", "horizon": "15m", "mode": "scale_ahead"},
     "last_decision": {"forecast": {"members": 5, "mode": "scale_ahead"}}},
    {"name": "batch", "forecast": {"source": "q", "horizon": "1h", "mode": "forecast_only"},
     "last_decision": {"forecast": {"members": null, "unavailable": "no history <yet>"}}},
    {"name": "web"}])");
  const std::string html = RenderLandingPage(p);
  EXPECT_THAT(RowWith(html, "data-group=\"workers\""),
              HasSubstr("<span class=\"muted forecast\">forecast (scale_ahead, 15m from jobs): 5 "
                        "members</span>"));
  EXPECT_THAT(RowWith(html, "data-group=\"batch\""),
              HasSubstr("forecast (forecast_only, 1h from q): none, no history &lt;yet&gt;"));
  EXPECT_THAT(RowWith(html, "data-group=\"web\""), Not(HasSubstr("forecast")));
}

TEST(LandingPage, EscapesEverythingFromOutside) {
  LandingPageData p = Page();
  p.uri = "test:///<uri>";
  p.groups = nlohmann::json::array(
      {{{"name", "<script>"},
        {"members", {{{"name", "<b>x\xff"}, {"state", "run\"ning"}, {"owned", false}}}},
        {"last_decision", {{"outcome", "none"}, {"reason", "a < b & c"}}}}});
  p.changes = nlohmann::json::array(
      {{{"group", "<g>"},
        {"outcome", "scale_up"},
        {"actions",
         {{{"kind", "create"}, {"domain", "<d>"}, {"result", "error"}, {"error", "<e>"}}}}}});
  p.sources["<s>"] = {std::nullopt, "<err>", {}, SourceHealth::kError, nullptr, ""};
  const std::string html = RenderLandingPage(p);
  for (const char* raw :
       {"<script>", "<uri>", "<b>x", "run\"ning", "a < b", "<g>", "<d>", "<e>", "<s>", "<err>"})
    EXPECT_THAT(html, Not(HasSubstr(raw))) << raw;
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;"));
  EXPECT_THAT(html, HasSubstr("&lt;b&gt;x\xef\xbf\xbd"));  // U+FFFD for the invalid byte
  EXPECT_THAT(html, HasSubstr("data-state=\"run&quot;ning\""));
  EXPECT_THAT(html, HasSubstr("a &lt; b &amp; c"));
  EXPECT_TRUE(IsValidUtf8(html));
}

}  // namespace
}  // namespace virtscale
