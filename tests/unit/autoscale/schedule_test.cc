#include "autoscale/schedule.h"

#include <gtest/gtest.h>

#include "autoscale/decision.h"
#include "common/rfc3339.h"

namespace virtscale::autoscale {
namespace {

WallTime T(const char* rfc3339) {
  std::optional<WallTime> t = ParseRfc3339(rfc3339);
  EXPECT_TRUE(t) << rfc3339;
  return t.value_or(WallTime{});
}

std::string Z(WallTime t) { return FormatTime(t); }

Schedule Make(const char* cron, Duration duration, const char* zone = "UTC",
              std::optional<int64_t> min = 2, std::optional<int64_t> max = std::nullopt,
              int line = 1) {
  Schedule s;
  s.cron_text = cron;
  std::string why;
  std::optional<CronExpr> c = ParseCron(cron, &why);
  EXPECT_TRUE(c) << cron << ": " << why;
  if (c) s.cron = *c;
  s.duration = duration;
  s.timezone = zone;
  s.zone = FindTimeZone(zone, &why);
  EXPECT_NE(s.zone, nullptr) << why;
  s.min = min;
  s.max = max;
  s.line = line;
  return s;
}

std::string CronError(const char* text) {
  std::string why;
  EXPECT_FALSE(ParseCron(text, &why)) << text;
  return why;
}

using std::chrono::hours;
using std::chrono::minutes;

TEST(Cron, FieldsRangesStepsListsAndNames) {
  std::string why;
  std::optional<CronExpr> c = ParseCron("*/15 8-18/2 1,15 jan-MAR mon-fri", &why);
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->minutes.count(), 4u);
  EXPECT_TRUE(c->minutes.test(0) && c->minutes.test(45) && !c->minutes.test(50));
  EXPECT_EQ(c->hours.count(), 6u);  // 8 10 12 14 16 18
  EXPECT_TRUE(c->hours.test(18) && !c->hours.test(9));
  EXPECT_TRUE(c->days_of_month.test(1) && c->days_of_month.test(15));
  EXPECT_EQ(c->days_of_month.count(), 2u);
  EXPECT_EQ(c->months.count(), 3u);
  EXPECT_TRUE(c->months.test(3) && !c->months.test(4));
  EXPECT_EQ(c->days_of_week.count(), 5u);
  EXPECT_FALSE(c->days_of_week.test(0));

  c = ParseCron("5/20 0 * * 7", &why);  // a/n runs to the end; 7 is Sunday
  ASSERT_TRUE(c) << why;
  EXPECT_EQ(c->minutes.count(), 3u);  // 5 25 45
  EXPECT_TRUE(c->days_of_week.test(0));
  EXPECT_TRUE(c->any_day_of_month);
  EXPECT_FALSE(c->any_day_of_week);
}

TEST(Cron, VixieDaySemantics) {
  // Both day fields restricted: either matches.
  CronExpr both = *ParseCron("0 0 13 * 5", nullptr);
  EXPECT_TRUE(both.MatchesDay(13, 6, 2));  // a 13th, a Tuesday
  EXPECT_TRUE(both.MatchesDay(9, 6, 5));   // a Friday
  EXPECT_FALSE(both.MatchesDay(9, 6, 2));
  // One starts with '*': both must match (the star matches every day).
  CronExpr dow_only = *ParseCron("0 0 * * 5", nullptr);
  EXPECT_FALSE(dow_only.MatchesDay(13, 6, 2));
  EXPECT_TRUE(dow_only.MatchesDay(9, 6, 5));
}

TEST(Cron, ErrorsSayWhichField) {
  EXPECT_EQ(CronError("0 8 * *"),
            "expected 5 fields (minute hour day-of-month month day-of-week), got 4");
  EXPECT_EQ(CronError("60 8 * * *"), "minute: 60 is outside 0-59");
  EXPECT_EQ(CronError("0 24 * * *"), "hour: 24 is outside 0-23");
  EXPECT_EQ(CronError("0 8 0 * *"), "day-of-month: 0 is outside 1-31");
  EXPECT_EQ(CronError("0 8 * 13 *"), "month: 13 is outside 1-12");
  EXPECT_EQ(CronError("0 8 * * 8"), "day-of-week: 8 is outside 0-7");
  EXPECT_EQ(CronError("0 18-8 * * *"), "hour: range 18-8 runs backwards");
  EXPECT_EQ(CronError("*/0 8 * * *"), "minute: 0 is outside 1-59 (a step)");
  EXPECT_EQ(CronError("0 8 * * funday"),
            "day-of-week: expected a number from 0 to 7 or a name, got \"funday\"");
  EXPECT_EQ(CronError("0,,1 8 * * *"), "minute: expected a number from 0 to 59, got \"\"");
  EXPECT_EQ(CronError("@daily"),
            "expected 5 fields (minute hour day-of-month month day-of-week), got 1");
  EXPECT_EQ(CronError(std::string(300, '1').c_str()), "is 300 characters long (at most 200)");
}

TEST(Schedule, UnknownTimeZone) {
  std::string why;
  EXPECT_EQ(FindTimeZone("Europe/Atlantis", &why), nullptr);
  EXPECT_EQ(why,
            "unknown time zone \"Europe/Atlantis\" (an IANA name such as Europe/Berlin or UTC)");
  EXPECT_NE(FindTimeZone("UTC", &why), nullptr);
}

TEST(Schedule, NextStartInUtcAndBerlin) {
  const Schedule utc = Make("0 8 * * 1-5", hours(10));
  // 2026-12-04 is a Friday: the next start after Friday 09:00 is Monday.
  EXPECT_EQ(Z(*utc.NextStart(T("2026-12-04T07:59:59Z"))), "2026-12-04T08:00:00.000Z");
  EXPECT_EQ(Z(*utc.NextStart(T("2026-12-04T08:00:00Z"))), "2026-12-07T08:00:00.000Z");
  const Schedule berlin = Make("0 8 * * 1-5", hours(10), "Europe/Berlin");
  EXPECT_EQ(Z(*berlin.NextStart(T("2026-12-04T00:00:00Z"))), "2026-12-04T07:00:00.000Z");  // CET
  EXPECT_EQ(Z(*berlin.NextStart(T("2026-07-01T00:00:00Z"))), "2026-07-01T06:00:00.000Z");  // CEST
  // Feb 29 only: the next leap year.
  EXPECT_EQ(Z(*Make("0 0 29 2 *", hours(1)).NextStart(T("2026-01-01T00:00:00Z"))),
            "2028-02-29T00:00:00.000Z");
  EXPECT_FALSE(Make("0 0 31 2 *", hours(1)).NextStart(T("2026-01-01T00:00:00Z")));
}

// Europe/Berlin 2026: clocks go 02:00 CET -> 03:00 CEST on Sunday 03-29 (01:00Z), and
// 03:00 CEST -> 02:00 CET on Sunday 10-25 (01:00Z).
TEST(Schedule, SpringForwardGapOpensAtTheEndOfTheGap) {
  const Schedule night = Make("30 2 * * *", hours(1), "Europe/Berlin");
  EXPECT_EQ(Z(*night.NextStart(T("2026-03-28T12:00:00Z"))), "2026-03-29T01:00:00.000Z");
  EXPECT_EQ(Z(*night.NextStart(T("2026-03-29T01:00:00Z"))), "2026-03-30T00:30:00.000Z");
  // Every quarter hour of the missing hour opens one window, at 03:00 CEST.
  const Schedule quarters = Make("*/15 2 * * *", minutes(10), "Europe/Berlin");
  EXPECT_EQ(quarters.StartsBetween(T("2026-03-29T00:00:00Z"), T("2026-03-29T03:00:00Z"), 10),
            (std::vector<WallTime>{T("2026-03-29T01:00:00Z")}));
  const Schedule morning = Make("0 8 * * *", hours(10), "Europe/Berlin");
  EXPECT_EQ(Z(*morning.NextStart(T("2026-03-28T12:00:00Z"))), "2026-03-29T06:00:00.000Z");
  EXPECT_EQ(Z(*morning.NextStart(T("2026-03-27T12:00:00Z"))), "2026-03-28T07:00:00.000Z");
}

TEST(Schedule, FallBackRepeatedTimeOpensOnceAtItsFirstOccurrence) {
  const Schedule night = Make("30 2 * * *", hours(1), "Europe/Berlin");
  EXPECT_EQ(night.StartsBetween(T("2026-10-24T12:00:00Z"), T("2026-10-26T12:00:00Z"), 10),
            (std::vector<WallTime>{T("2026-10-25T00:30:00Z"), T("2026-10-26T01:30:00Z")}));
  const Schedule morning = Make("0 8 * * *", hours(10), "Europe/Berlin");
  EXPECT_EQ(Z(*morning.NextStart(T("2026-10-24T12:00:00Z"))), "2026-10-25T07:00:00.000Z");
  EXPECT_EQ(Z(*morning.NextStart(T("2026-10-23T12:00:00Z"))), "2026-10-24T06:00:00.000Z");
  // The window of 02:30 CEST lasts one real hour: it is closed at the second 02:30 (CET).
  EXPECT_TRUE(night.ActiveStart(T("2026-10-25T01:29:59Z")));
  EXPECT_FALSE(night.ActiveStart(T("2026-10-25T01:30:00Z")));
}

TEST(Schedule, ActiveWindowAndEffectiveBounds) {
  const std::vector<Schedule> s = {Make("0 8 * * *", hours(10), "UTC", 4, 12, 3),
                                   Make("0 20 * * *", hours(2), "UTC", std::nullopt, 1, 4)};
  EXPECT_FALSE(ActiveScheduleAt(s, T("2026-12-01T07:59:59Z")));
  std::optional<ActiveSchedule> a = ActiveScheduleAt(s, T("2026-12-01T08:00:00Z"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->schedule->line, 3);
  EXPECT_EQ(Z(a->end), "2026-12-01T18:00:00.000Z");
  EXPECT_FALSE(ActiveScheduleAt(s, T("2026-12-01T18:00:00Z")));
  a = ActiveScheduleAt(s, T("2026-12-01T21:59:00Z"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->schedule->line, 4);
  const Bounds b = EffectiveBounds(0, 6, a->schedule);
  EXPECT_EQ(b.min, 0);
  EXPECT_EQ(b.max, 1);
  EXPECT_EQ(EffectiveBounds(1, 6, &s[0]).min, 4);
  EXPECT_EQ(EffectiveBounds(1, 6, nullptr).max, 6);
  EXPECT_EQ(Z(*NextScheduleStart(s, T("2026-12-01T08:00:00Z"))), "2026-12-01T20:00:00.000Z");
}

TEST(Schedule, OverlapDetection) {
  const WallTime from = T("2026-12-01T00:00:00Z");
  std::optional<size_t> too_many;
  // Weekdays 08:00-18:00 and every day 17:00-19:00 overlap.
  std::vector<Schedule> s = {Make("0 8 * * 1-5", hours(10)), Make("0 17 * * *", hours(2))};
  std::optional<ScheduleOverlap> o =
      FindScheduleOverlap(s, from, hours(24 * 366), 10000, &too_many);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->first, 0u);
  EXPECT_EQ(o->second, 1u);
  EXPECT_EQ(Z(o->first_start), "2026-12-01T08:00:00.000Z");
  EXPECT_EQ(Z(o->second_start), "2026-12-01T17:00:00.000Z");
  // Back to back is not an overlap.
  s[1] = Make("0 18 * * *", hours(2));
  EXPECT_FALSE(FindScheduleOverlap(s, from, hours(24 * 366), 10000, &too_many));
  // A window longer than its period overlaps its own next one.
  s = {Make("0 * * * *", minutes(61))};
  o = FindScheduleOverlap(s, from, hours(24 * 366), 10000, &too_many);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->first, o->second);
  // Different zones: 08:00 Berlin is 07:00Z in winter, inside 06:00-07:30Z.
  s = {Make("0 8 * * *", hours(1), "Europe/Berlin"), Make("0 6 * * *", minutes(90))};
  o = FindScheduleOverlap(s, from, hours(24 * 366), 10000, &too_many);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->first, 1u);
  EXPECT_EQ(o->second, 0u);
  EXPECT_FALSE(too_many);
  // Every minute is more windows than the bound; so are two that fit it alone.
  s = {Make("* * * * *", minutes(1))};
  EXPECT_FALSE(FindScheduleOverlap(s, from, hours(24 * 366), 10000, &too_many));
  EXPECT_EQ(too_many, 0u);
  s = {Make("0 * * * *", minutes(1)), Make("30 */2 * * *", minutes(1))};
  too_many.reset();
  EXPECT_FALSE(FindScheduleOverlap(s, from, hours(24 * 366), 10000, &too_many));
  EXPECT_EQ(too_many, 1u);
}

TEST(Schedule, DecisionJsonNamesTheWindow) {
  const Schedule s = Make("0 8 * * 1-5", hours(10), "Europe/Berlin", 4, std::nullopt, 7);
  const ActiveSchedule a{&s, T("2026-12-01T07:00:00Z"), T("2026-12-01T17:00:00Z")};
  EXPECT_EQ(ScheduleInForce::Of(a).ToJson().dump(),
            R"({"cron":"0 8 * * 1-5","ends_at":"2026-12-01T17:00:00.000Z","line":7,"max":null,)"
            R"("min":4,"started_at":"2026-12-01T07:00:00.000Z","timezone":"Europe/Berlin"})");
}

}  // namespace
}  // namespace virtscale::autoscale
