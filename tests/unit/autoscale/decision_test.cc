#include "autoscale/decision.h"

#include <gtest/gtest.h>

namespace virtscale::autoscale {
namespace {

using std::chrono::seconds;

TimePoint Second(int64_t s) { return TimePoint(seconds(1'800'000'000 + s)); }

Decision Noop(std::string group, int64_t at, Outcome outcome = Outcome::kNone) {
  Decision d;
  d.group = std::move(group);
  d.time = Second(at);
  d.outcome = outcome;
  if (outcome == Outcome::kHeld) d.held_by = HeldBy::kCooldown;
  return d;
}

Decision Change(std::string group, int64_t at, Outcome outcome = Outcome::kScaleUp,
                ActionResult result = ActionResult::kOk) {
  Decision d = Noop(std::move(group), at, outcome);
  ActionRecord a;
  a.operation.kind =
      outcome == Outcome::kScaleDown ? Operation::Kind::kStop : Operation::Kind::kStart;
  a.operation.domain = d.group + "-1";
  a.result = result;
  d.actions.push_back(a);
  d.result = result == ActionResult::kDryRun ? DecisionResult::kDryRun : DecisionResult::kOk;
  return d;
}

std::vector<uint64_t> Ids(const nlohmann::json& records) {
  std::vector<uint64_t> ids;
  for (const auto& r : records) ids.push_back(r["id"].get<uint64_t>());
  return ids;
}

DecisionFilter All(size_t limit = 10000) {
  DecisionFilter f;
  f.limit = limit;
  return f;
}

TEST(Decision, ChangesAreRecordsWithActions) {
  EXPECT_FALSE(Noop("web", 0).IsChange());
  EXPECT_FALSE(Noop("web", 0, Outcome::kHeld).IsChange());
  EXPECT_TRUE(Change("web", 0).IsChange());
  EXPECT_TRUE(Change("web", 0, Outcome::kScaleUp, ActionResult::kError).IsChange());
  EXPECT_TRUE(Change("web", 0, Outcome::kHeld, ActionResult::kDryRun).IsChange());
}

TEST(Decision, JsonAndMetricUseTheSameWordForDryRun) {
  const auto j = Change("web", 0, Outcome::kHeld, ActionResult::kDryRun).ToJson();
  EXPECT_EQ(j["result"], "dry_run");
  EXPECT_EQ(j["actions"][0]["result"], "dry_run");
  EXPECT_STREQ(ActionResultName(ActionResult::kCancelled), "cancelled");
}

TEST(Decision, OutcomeNamesRoundTrip) {
  for (Outcome o : {Outcome::kNone, Outcome::kScaleUp, Outcome::kScaleDown, Outcome::kHeld})
    EXPECT_EQ(OutcomeFromName(OutcomeName(o)), o);
  EXPECT_EQ(OutcomeFromName("scale-up"), std::nullopt);
  EXPECT_EQ(OutcomeFromName("dry_run"), std::nullopt);  // a held_by and a result, not an outcome
  EXPECT_EQ(OutcomeFromName(""), std::nullopt);
}

TEST(DecisionLog, ChangesSurviveAnyNumberOfNoOps) {
  DecisionLog log(3, 5);
  const uint64_t first = log.Add(Change("web", 0));
  for (int i = 1; i <= 10'000; ++i) log.Add(Noop("web", i));
  EXPECT_EQ(log.changes(), 1u);
  EXPECT_EQ(log.evaluations(), 5u);
  ASSERT_NE(log.Find(first), nullptr);
  EXPECT_EQ(log.Find(first)->group, "web");
  EXPECT_EQ(log.Find(2), nullptr);  // an evicted no-op

  const auto all = log.Json(All());
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(Ids(all), (std::vector<uint64_t>{10'001, 10'000, 9'999, 9'998, 9'997, first}));
  EXPECT_EQ(all[5]["outcome"], "scale_up");
}

TEST(DecisionLog, EachRingIsBoundedAndReadersGetBothMergedNewestFirst) {
  DecisionLog log(2, 3);
  // ids: 1 change, 2 noop, 3 change, 4 noop, 5 change, 6 noop, 7 noop, 8 noop
  log.Add(Change("web", 1));
  log.Add(Noop("web", 2));
  log.Add(Change("web", 3));
  log.Add(Noop("web", 4));
  log.Add(Change("web", 5));
  for (int s = 6; s <= 8; ++s) log.Add(Noop("web", s));
  EXPECT_EQ(Ids(log.Json(All())), (std::vector<uint64_t>{8, 7, 6, 5, 3}));
  EXPECT_EQ(Ids(log.Json(All(2))), (std::vector<uint64_t>{8, 7}));
  DecisionFilter changes = All();
  changes.changes_only = true;
  EXPECT_EQ(Ids(log.Json(changes)), (std::vector<uint64_t>{5, 3}));
  EXPECT_EQ(log.Find(1), nullptr);
  EXPECT_NE(log.Find(3), nullptr);
  EXPECT_NE(log.Find(7), nullptr);
}

TEST(DecisionLog, FiltersByGroupOutcomeAndSinceBeforeTheLimit) {
  DecisionLog log(100, 100);
  log.Add(Change("web", 10));                       // 1
  log.Add(Noop("api", 11, Outcome::kHeld));         // 2
  log.Add(Change("api", 12, Outcome::kScaleDown));  // 3
  log.Add(Noop("web", 13));                         // 4
  log.Add(Change("web", 14, Outcome::kScaleUp,      // 5
                 ActionResult::kError));
  log.Add(Noop("web", 15, Outcome::kHeld));  // 6

  DecisionFilter web = All();
  web.groups = {"web"};
  EXPECT_EQ(Ids(log.Json(web)), (std::vector<uint64_t>{6, 5, 4, 1}));
  web.limit = 2;  // the limit counts matches, not records looked at
  EXPECT_EQ(Ids(log.Json(web)), (std::vector<uint64_t>{6, 5}));

  DecisionFilter up_or_down = All();
  up_or_down.outcomes = {Outcome::kScaleUp, Outcome::kScaleDown};
  EXPECT_EQ(Ids(log.Json(up_or_down)), (std::vector<uint64_t>{5, 3, 1}));

  DecisionFilter since = All();
  since.since = Second(13);  // at or after
  EXPECT_EQ(Ids(log.Json(since)), (std::vector<uint64_t>{6, 5, 4}));

  DecisionFilter both = All();
  both.groups = {"web", "api"};
  both.outcomes = {Outcome::kHeld};
  both.since = Second(11);
  EXPECT_EQ(Ids(log.Json(both)), (std::vector<uint64_t>{6, 2}));

  DecisionFilter nobody = All();
  nobody.groups = {"db"};
  EXPECT_TRUE(log.Json(nobody).empty());
}

TEST(DecisionLog, OrderFollowsIdsWhenTheWallClockStepsBack) {
  DecisionLog log(10, 10);
  log.Add(Noop("web", 100));
  log.Add(Change("web", 50));  // the clock stepped back: still the newer record
  EXPECT_EQ(Ids(log.Json(All())), (std::vector<uint64_t>{2, 1}));
}

}  // namespace
}  // namespace virtscale::autoscale
