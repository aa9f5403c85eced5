#pragma once
// Scheduled bounds (DESIGN.md "Behaviour keys", `schedules:`), as AWS
// scheduled actions: a window opens at each start of a 5-field cron
// expression in an IANA time zone and lasts `duration`; while it is open its
// min and/or max replace the group's. Pure: no I/O besides the system tzdata
// that date::locate_zone reads once.
//
//   {cron: "0 8 * * 1-5", duration: 10h, timezone: Europe/Berlin, min: 4}
//   -> opens 08:00 Berlin time on weekdays (06:00Z in summer, 07:00Z in winter)
//
// Cron: minute hour day-of-month month day-of-week; `*`, numbers, ranges
// `a-b`, steps `*/n` `a-b/n` `a/n`, lists `a,b`; month and weekday names
// (JAN, MON) and weekday 7 = Sunday. Vixie semantics: when both day fields
// are restricted (neither starts with `*`), a day matches if EITHER does.
//
// DST (the time zone arithmetic is the date library's, choose::earliest):
// - a start in a spring-forward gap (02:30 Berlin on 2026-03-29) opens at the
//   first instant after the gap (03:00 CEST = 01:00Z), as Vixie cron runs
//   such jobs right after the jump; several starts in one gap open once;
// - a start that occurs twice on fall-back day (02:30 Berlin on 2026-10-25)
//   opens once, at its first occurrence (02:30 CEST = 00:30Z).
#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/duration.h"

namespace date {
class time_zone;
}

namespace virtscale::autoscale {

struct CronExpr {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days_of_month;  // 1..31
  std::bitset<13> months;         // 1..12
  std::bitset<7> days_of_week;    // 0 = Sunday
  bool any_day_of_month = false;  // the field starts with `*`
  bool any_day_of_week = false;

  bool MatchesDay(unsigned day_of_month, unsigned month, unsigned day_of_week) const;
};

// nullopt with `why` ("hour: 24 is outside 0-23") when `text` is not a valid
// 5-field expression.
[[nodiscard]] std::optional<CronExpr> ParseCron(std::string_view text, std::string* why);

// The zone of an IANA name ("Europe/Berlin", "UTC"), or nullptr with `why`.
const date::time_zone* FindTimeZone(std::string_view name, std::string* why);

// One `schedules:` entry. At least one of min and max is set.
struct Schedule {
  std::string cron_text;  // as written
  CronExpr cron;
  Duration duration{0};
  std::string timezone = "UTC";
  const date::time_zone* zone = nullptr;  // of `timezone`; never null once loaded
  std::optional<int64_t> min;
  std::optional<int64_t> max;
  int line = 0;  // in the rule file

  // The first window start strictly after `after`, looking at most
  // kScheduleSearchYears ahead; nullopt when none.
  std::optional<WallTime> NextStart(WallTime after) const;
  // Window starts in [from, to), in order, at most `limit` of them.
  std::vector<WallTime> StartsBetween(WallTime from, WallTime to, size_t limit) const;
  // The start of the window open at `t` (start <= t < start + duration).
  std::optional<WallTime> ActiveStart(WallTime t) const;
};

// A schedule that has not fired for this long never will (Feb 29 on a
// Monday recurs within 28 years, but "31 2" never).
inline constexpr int kScheduleSearchYears = 29;

struct ActiveSchedule {
  const Schedule* schedule = nullptr;
  WallTime start{};
  WallTime end{};
};

// The window open at `t`, if any (windows of one group never overlap: load
// refuses that; should they, the earliest listed wins).
std::optional<ActiveSchedule> ActiveScheduleAt(const std::vector<Schedule>& schedules, WallTime t);

// The earliest window start of any schedule strictly after `t`.
std::optional<WallTime> NextScheduleStart(const std::vector<Schedule>& schedules, WallTime t);

struct Bounds {
  int64_t min = 0;
  int64_t max = 0;
};

// The group's bounds with an active window's min/max in their place.
Bounds EffectiveBounds(int64_t min, int64_t max, const Schedule* active);

// Two windows that are open at the same time: schedules[first]'s window
// opening at first_start is still open at second_start, when
// schedules[second]'s opens (first == second: a window overlaps its own next one).
struct ScheduleOverlap {
  size_t first = 0;
  size_t second = 0;
  WallTime first_start{};
  WallTime second_start{};
};

// Compares every window opening in [from, from + horizon), at most `limit`
// of them in all (else `too_many` is set to the index of the schedule that
// went past it, and nothing is compared).
std::optional<ScheduleOverlap> FindScheduleOverlap(const std::vector<Schedule>& schedules,
                                                   WallTime from, Duration horizon, size_t limit,
                                                   std::optional<size_t>* too_many);

}  // namespace virtscale::autoscale
