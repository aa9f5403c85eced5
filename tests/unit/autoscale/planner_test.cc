#include "autoscale/planner.h"

#include <gtest/gtest.h>

#include "engine_test_util.h"

namespace virtscale::autoscale {
namespace {

using namespace testing;  // NOLINT: test builders

Membership MembersOf(const GroupRule& rule, std::vector<DomainStats> doms) {
  RuleSet rules;
  rules.groups.push_back(rule);
  auto snap = Snap(At(0), std::move(doms));
  return IndexMembers(rules, snap.get())[0];
}

std::vector<std::string> Domains(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& op : plan.operations)
    out.push_back(std::string(OperationKindName(op.kind)) + ":" + op.domain);
  return out;
}

TEST(Membership, MetadataWinsThenLongestPrefix) {
  RuleSet rules;
  GroupRule web = CpuRule();
  GroupRule api = CpuRule();
  api.name = "api";
  api.name_prefix = "web-api-";
  rules.groups = {web, api};
  auto snap = Snap(
      At(0), {Dom("web-1", DomainState::kRunning, 0.5), Dom("web-api-1", DomainState::kShutoff),
              Dom("zzz", DomainState::kRunning, 0.5, 100, "api"),
              Dom("web-9", DomainState::kRunning, 0.5, 100, "gone"),
              Dom("web-p", DomainState::kPaused), Dom("other", DomainState::kRunning)});
  auto m = IndexMembers(rules, snap.get());
  ASSERT_EQ(m.size(), 2u);
  ASSERT_EQ(m[0].members.size(), 2u);
  EXPECT_EQ(m[0].members[0].name, "web-1");
  EXPECT_FALSE(m[0].members[0].created);
  EXPECT_EQ(m[0].members[1].name, "web-p");
  EXPECT_EQ(m[0].running, 1);
  EXPECT_EQ(m[0].stopped, 0);  // paused is neither
  ASSERT_EQ(m[1].members.size(), 2u);
  EXPECT_EQ(m[1].members[0].name, "web-api-1");
  EXPECT_EQ(m[1].members[1].name, "zzz");
  EXPECT_TRUE(m[1].members[1].created);
  EXPECT_EQ(m[1].running, 1);
  EXPECT_EQ(m[1].stopped, 1);
  EXPECT_TRUE(IndexMembers(rules, nullptr)[0].members.empty());
}

TEST(Planner, ScaleUpStartsWarmPoolFirstThenCreates) {
  GroupRule r = CpuRule();
  auto m = MembersOf(
      r, {Dom("web-1", DomainState::kRunning, 0.5, 10), Dom("web-2", DomainState::kShutoff, {}, 20),
          Dom("web-3", DomainState::kCrashed, {}, 30), Dom("web-x", DomainState::kShutoff)});
  Plan p = PlanScaleUp(r, m, 4);
  EXPECT_EQ(Domains(p),
            (std::vector<std::string>{"start:web-3", "start:web-2", "start:web-x", "create:"}));
  EXPECT_EQ(p.operations[3].template_path, "/t/web.xml");
  EXPECT_EQ(p.operations[3].group, "web");
  EXPECT_TRUE(p.shortfall.empty());

  r.template_path.clear();
  p = PlanScaleUp(r, m, 4);
  EXPECT_EQ(p.operations.size(), 3u);
  EXPECT_EQ(p.shortfall, "3 of 4 planned: no stopped member left and the group has no template");
}

TEST(Planner, ScaleDownPicksNewestCreatedAndStopsAdoptedLast) {
  GroupRule r = CpuRule();
  r.shutdown_timeout = seconds(5);
  auto m = MembersOf(
      r,
      {Dom("web-a", DomainState::kRunning, 0.5), Dom("web-b", DomainState::kRunning, 0.5),
       Dom("web-1", DomainState::kRunning, 0.5, 300), Dom("web-2", DomainState::kRunning, 0.5, 100),
       Dom("web-3", DomainState::kShutoff, {}, 900)});
  Plan p = PlanScaleDown(r, m, 3);
  EXPECT_EQ(Domains(p), (std::vector<std::string>{"stop:web-1", "stop:web-2", "stop:web-b"}));
  EXPECT_EQ(p.operations[0].shutdown_timeout, seconds(5));
}

TEST(Planner, DeleteNeverTouchesAdoptedDomains) {
  GroupRule r = CpuRule();
  r.down_action = DownAction::kDelete;
  auto m = MembersOf(
      r, {Dom("web-a", DomainState::kRunning, 0.5), Dom("web-1", DomainState::kRunning, 0.5, 300)});
  Plan p = PlanScaleDown(r, m, 2);
  EXPECT_EQ(Domains(p), (std::vector<std::string>{"delete:web-1"}));
  EXPECT_NE(p.shortfall.find("adopted domains are never deleted"), std::string::npos);

  auto only_adopted = MembersOf(r, {Dom("web-a", DomainState::kRunning, 0.5)});
  EXPECT_TRUE(PlanScaleDown(r, only_adopted, 1).operations.empty());
}

}  // namespace
}  // namespace virtscale::autoscale
