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
  EXPECT_FALSE(m[0].members[0].owned);
  EXPECT_EQ(m[0].members[1].name, "web-p");
  EXPECT_EQ(m[0].running, 1);
  EXPECT_EQ(m[0].stopped, 0);
  EXPECT_EQ(m[0].count[static_cast<int>(MemberState::kPaused)], 1);
  EXPECT_EQ(m[0].active(), 2);  // paused counts towards max
  ASSERT_EQ(m[1].members.size(), 2u);
  EXPECT_EQ(m[1].members[0].name, "web-api-1");
  EXPECT_EQ(m[1].members[1].name, "zzz");
  EXPECT_TRUE(m[1].members[1].owned);
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
  // A crashed member is not warm pool: it is active ("other") and stays for whoever handles it.
  EXPECT_EQ(Domains(p),
            (std::vector<std::string>{"start:web-2", "start:web-x", "create:", "create:"}));
  EXPECT_EQ(p.operations[3].template_path, "/t/web.xml");
  EXPECT_EQ(p.operations[3].group, "web");
  EXPECT_TRUE(p.shortfall.empty());

  r.template_path.clear();
  p = PlanScaleUp(r, m, 4);
  EXPECT_EQ(p.operations.size(), 2u);
  EXPECT_EQ(p.shortfall, "2 of 4 planned: no stopped member left and the group has no template");
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
  EXPECT_NE(p.shortfall.find("adopted domains and copies are never deleted"), std::string::npos);

  auto only_adopted = MembersOf(r, {Dom("web-a", DomainState::kRunning, 0.5)});
  EXPECT_TRUE(PlanScaleDown(r, only_adopted, 1).operations.empty());
}

// Owned running members with created_at and cpu; adopted, stopped and paused ones
// that no order may choose ahead of (or, for delete, at all).
std::vector<DomainStats> OrderFixture() {
  return {Dom("web-1", DomainState::kRunning, 0.40, 100),
          Dom("web-2", DomainState::kRunning, 0.10, 300),
          Dom("web-3", DomainState::kRunning, {}, 500),  // no cpu reading
          Dom("web-4", DomainState::kRunning, 0.10, 200),
          Dom("web-5", DomainState::kRunning, 0.90, 400),
          Dom("web-a", DomainState::kRunning, 0.01),  // adopted, idlest of all
          Dom("web-p", DomainState::kPaused, {}, 50),
          Dom("web-s", DomainState::kShutoff, {}, 10)};
}

TEST(Planner, ScaleDownOrderNewestIsTheDefault) {
  GroupRule r = CpuRule();
  EXPECT_EQ(r.down_order, DownOrder::kNewest);
  EXPECT_EQ(Domains(PlanScaleDown(r, MembersOf(r, OrderFixture()), 6)),
            (std::vector<std::string>{"stop:web-3", "stop:web-5", "stop:web-2", "stop:web-4",
                                      "stop:web-1", "stop:web-a"}));
}

TEST(Planner, ScaleDownOrderOldestTakesTheFirstCreatedFirst) {
  GroupRule r = CpuRule();
  r.down_order = DownOrder::kOldest;
  EXPECT_EQ(Domains(PlanScaleDown(r, MembersOf(r, OrderFixture()), 6)),
            (std::vector<std::string>{"stop:web-1", "stop:web-4", "stop:web-2", "stop:web-5",
                                      "stop:web-3", "stop:web-a"}));
  // Equal created_at: name ascending (the mirror of newest's name descending).
  auto tied = MembersOf(r, {Dom("web-x", DomainState::kRunning, 0.5, 100),
                            Dom("web-y", DomainState::kRunning, 0.5, 100)});
  EXPECT_EQ(Domains(PlanScaleDown(r, tied, 1)), (std::vector<std::string>{"stop:web-x"}));
}

TEST(Planner, ScaleDownOrderLeastLoadedTiesByNewestAndMissingCpuLast) {
  GroupRule r = CpuRule();
  r.down_order = DownOrder::kLeastLoaded;
  // web-2 and web-4 tie at 0.10: web-2 is newer. web-3 has no reading: after
  // every member with one. The adopted web-a, idlest of all, still comes last.
  EXPECT_EQ(Domains(PlanScaleDown(r, MembersOf(r, OrderFixture()), 6)),
            (std::vector<std::string>{"stop:web-2", "stop:web-4", "stop:web-1", "stop:web-5",
                                      "stop:web-3", "stop:web-a"}));
  // An absurd reading is no reading, as for the evaluator.
  auto absurd = MembersOf(r, {Dom("web-1", DomainState::kRunning, 0.8, 100),
                              Dom("web-2", DomainState::kRunning, 7.0, 200),
                              Dom("web-3", DomainState::kRunning, {}, 50)});
  EXPECT_EQ(Domains(PlanScaleDown(r, absurd, 3)),
            (std::vector<std::string>{"stop:web-1", "stop:web-2", "stop:web-3"}));
  // Without any reading every member ties: newest first.
  auto none = MembersOf(r, {Dom("web-1", DomainState::kRunning, {}, 100),
                            Dom("web-2", DomainState::kRunning, {}, 200)});
  EXPECT_EQ(Domains(PlanScaleDown(r, none, 2)),
            (std::vector<std::string>{"stop:web-2", "stop:web-1"}));
}

TEST(Planner, EveryScaleDownOrderDeletesOnlyOwnedRunningMembers) {
  GroupRule r = CpuRule();
  r.down_action = DownAction::kDelete;
  for (DownOrder order : {DownOrder::kNewest, DownOrder::kOldest, DownOrder::kLeastLoaded}) {
    r.down_order = order;
    Plan p = PlanScaleDown(r, MembersOf(r, OrderFixture()), 8);
    ASSERT_EQ(p.operations.size(), 5u) << DownOrderName(order);
    for (const Operation& op : p.operations) {
      EXPECT_EQ(op.kind, Operation::Kind::kDelete);
      EXPECT_TRUE(op.domain >= "web-1" && op.domain <= "web-5") << op.domain;
    }
    EXPECT_NE(p.shortfall.find("5 of 8 planned"), std::string::npos) << p.shortfall;
  }
}

TEST(Membership, EveryStateIsCountedAndOnlyStoppedIsInactive) {
  GroupRule r = CpuRule();
  auto m = MembersOf(
      r, {Dom("web-1", DomainState::kRunning, 0.5, 1), Dom("web-2", DomainState::kPaused, {}, 2),
          Dom("web-3", DomainState::kShutdown, {}, 3), Dom("web-4", DomainState::kCrashed, {}, 4),
          Dom("web-5", DomainState::kPmSuspended, {}, 5),
          Dom("web-6", DomainState::kBlocked, {}, 6), Dom("web-7", DomainState::kShutoff, {}, 7)});
  EXPECT_EQ(m.count[static_cast<int>(MemberState::kRunning)], 1);
  EXPECT_EQ(m.count[static_cast<int>(MemberState::kPaused)], 1);
  EXPECT_EQ(m.count[static_cast<int>(MemberState::kOther)], 4);
  EXPECT_EQ(m.count[static_cast<int>(MemberState::kStopped)], 1);
  EXPECT_EQ(m.active(), 6);
  // Only running members are stopped or deleted; the others are someone else's business.
  EXPECT_EQ(Domains(PlanScaleDown(r, m, 6)), (std::vector<std::string>{"stop:web-1"}));
}

// DESIGN.md "Ownership": a copy carries the metadata but not its own UUID.
TEST(Membership, CopyWithTheOriginalsMetadataIsAdoptedNotOwned) {
  GroupRule r = CpuRule();
  r.down_action = DownAction::kDelete;
  DomainStats original = Dom("web-3", DomainState::kRunning, 0.5, 300);
  DomainStats copy = original;
  copy.name = "web-3-copy";
  copy.uuid = "5f1e0c9a-0000-4000-8000-000000000001";  // libvirt gave the copy its own
  DomainStats legacy = Dom("web-old", DomainState::kRunning, 0.5, 100);
  legacy.metadata->uuid.clear();  // created by 0.1.0: no recorded UUID
  DomainStats upper = Dom("web-up", DomainState::kRunning, 0.5, 200);
  upper.metadata->uuid = "UUID-WEB-UP";  // recorded in another case: still the same UUID
  auto m = MembersOf(r, {original, copy, legacy, upper});
  ASSERT_EQ(m.members.size(), 4u);
  for (const Member& member : m.members) {
    EXPECT_EQ(member.owned, member.name == "web-3" || member.name == "web-up") << member.name;
  }
  EXPECT_EQ(Domains(PlanScaleDown(r, m, 4)),
            (std::vector<std::string>{"delete:web-3", "delete:web-up"}));
  r.down_action = DownAction::kStop;  // copies may be started and stopped like adopted members
  EXPECT_EQ(
      Domains(PlanScaleDown(r, m, 4)),
      (std::vector<std::string>{"stop:web-3", "stop:web-up", "stop:web-old", "stop:web-3-copy"}));
}

}  // namespace
}  // namespace virtscale::autoscale
