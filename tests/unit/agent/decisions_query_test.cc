#include "agent/decisions_query.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/utf8.h"

namespace virtscale {
namespace {

using autoscale::DecisionFilter;
using autoscale::Outcome;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using Params = std::multimap<std::string, std::string>;

DecisionFilter Parse(const Params& params) {
  DecisionFilter f;
  std::string error;
  EXPECT_TRUE(ParseDecisionQuery(params, f, error)) << error;
  EXPECT_EQ(error, "");
  return f;
}

std::string Error(const Params& params) {
  DecisionFilter f;
  f.limit = 7;
  std::string error;
  EXPECT_FALSE(ParseDecisionQuery(params, f, error));
  EXPECT_EQ(f.limit, 7u) << "a rejected query leaves the filter alone";
  return error;
}

TEST(ParseDecisionQuery, DefaultsToTheNewest100OfEverything) {
  const DecisionFilter f = Parse({});
  EXPECT_EQ(f.limit, 100u);
  EXPECT_TRUE(f.groups.empty());
  EXPECT_TRUE(f.outcomes.empty());
  EXPECT_FALSE(f.since);
  EXPECT_FALSE(f.changes_only);
}

TEST(ParseDecisionQuery, ReadsEveryParameter) {
  const DecisionFilter f = Parse({{"group", "web"},
                                  {"group", "api"},
                                  {"outcome", "scale_up"},
                                  {"outcome", "held"},
                                  {"since", "2026-12-01T11:00:00.5+01:00"},
                                  {"changes", "true"},
                                  {"limit", "10000"},
                                  {"unknown", "ignored"}});
  EXPECT_EQ(f.groups, (std::set<std::string>{"api", "web"}));
  EXPECT_EQ(f.outcomes, (std::set<Outcome>{Outcome::kScaleUp, Outcome::kHeld}));
  ASSERT_TRUE(f.since);
  EXPECT_EQ(*f.since, autoscale::TimePoint(std::chrono::seconds(1796119200)) +
                          std::chrono::milliseconds(500));
  EXPECT_TRUE(f.changes_only);
  EXPECT_EQ(f.limit, 10000u);
  EXPECT_EQ(Parse({{"limit", "1"}}).limit, 1u);
  EXPECT_EQ(Parse({{"outcome", "none"}, {"outcome", "scale_down"}}).outcomes,
            (std::set<Outcome>{Outcome::kNone, Outcome::kScaleDown}));
  EXPECT_FALSE(Parse({{"changes", "false"}}).changes_only);
}

TEST(ParseDecisionQuery, BadLimitsNameTheParameter) {
  for (const char* bad :
       {"0", "-1", "2.5", "abc", "", "10001", "+5", " 5", "1e3", "99999999999999"}) {
    EXPECT_THAT(Error({{"limit", bad}}),
                StartsWith("limit: must be an integer from 1 to 10000, got \""))
        << bad;
  }
  EXPECT_THAT(Error({{"limit", "2.5"}}), HasSubstr("got \"2.5\""));
  EXPECT_THAT(Error({{"limit", "5"}, {"limit", "6"}}), StartsWith("limit: given 2 times"));
}

TEST(ParseDecisionQuery, BadOutcomeSinceGroupAndChanges) {
  EXPECT_EQ(Error({{"outcome", "dry_run"}}),
            "outcome: unknown outcome \"dry_run\"; one of none, scale_up, scale_down, held");
  EXPECT_THAT(Error({{"outcome", "scale_up"}, {"outcome", "up"}}), HasSubstr("\"up\""));
  for (const char* bad :
       {"yesterday", "2026-12-01", "2026-12-01T10:00:00", "1796119200", "2026-02-30T10:00:00Z"}) {
    EXPECT_THAT(Error({{"since", bad}}),
                StartsWith("since: \"" + std::string(bad) + "\" is not an RFC 3339 time"))
        << bad;
  }
  EXPECT_THAT(Error({{"since", "2026-12-01T10:00:00Z"}, {"since", "2026-12-02T10:00:00Z"}}),
              StartsWith("since: given 2 times"));
  EXPECT_EQ(Error({{"group", ""}}), "group: empty; give a group name");
  EXPECT_EQ(Error({{"changes", "yes"}}), "changes: must be true or false, got \"yes\"");
}

TEST(ParseDecisionQuery, QuotesHostileValuesBoundedAndValid) {
  const std::string error = Error({{"outcome", "\xff" + std::string(5000, 'x')}});
  EXPECT_LT(error.size(), 200u);
  EXPECT_TRUE(IsValidUtf8(error));
  EXPECT_THAT(error, HasSubstr("\"\xef\xbf\xbdxxx"));  // U+FFFD
  EXPECT_THAT(error, HasSubstr("...\""));
}

}  // namespace
}  // namespace virtscale
