#include "autoscale/schedule.h"

#include <date/tz.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <tuple>

namespace virtscale::autoscale {
namespace {

using std::chrono::floor;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

struct FieldSpec {
  const char* name;
  int lo;
  int hi;
  const std::array<std::string_view, 12>* names;  // case-insensitive, names[i] = name_base + i
  int name_base;
};

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 12> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri",
                                                        "sat", "",    "",    "",    "",    ""};

constexpr FieldSpec kMinute{"minute", 0, 59, nullptr, 0};
constexpr FieldSpec kHour{"hour", 0, 23, nullptr, 0};
constexpr FieldSpec kDayOfMonth{"day-of-month", 1, 31, nullptr, 0};
constexpr FieldSpec kMonth{"month", 1, 12, &kMonthNames, 1};
constexpr FieldSpec kDayOfWeek{"day-of-week", 0, 7, &kDayNames, 0};  // 7 is Sunday too

std::optional<int> ParseValue(std::string_view token, const FieldSpec& spec, std::string* why) {
  if (!token.empty() && token.size() <= 2 &&
      std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int v = 0;
    for (char c : token) v = v * 10 + (c - '0');
    if (v < spec.lo || v > spec.hi) {
      *why = fmt::format("{}: {} is outside {}-{}", spec.name, v, spec.lo, spec.hi);
      return std::nullopt;
    }
    return v;
  }
  if (spec.names != nullptr && token.size() == 3) {
    std::string lower(token);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (size_t i = 0; i < spec.names->size(); ++i)
      if ((*spec.names)[i] == lower) return spec.name_base + static_cast<int>(i);
  }
  *why = fmt::format("{}: expected a number from {} to {}{}, got \"{}\"", spec.name, spec.lo,
                     spec.hi, spec.names != nullptr ? " or a name" : "",
                     token.substr(0, std::min<size_t>(token.size(), 20)));
  return std::nullopt;
}

// One field as a bit mask (bit v = value v matches).
std::optional<uint64_t> ParseField(std::string_view field, const FieldSpec& spec,
                                   std::string* why) {
  uint64_t mask = 0;
  while (true) {
    const size_t comma = field.find(',');
    std::string_view item = field.substr(0, comma);
    int step = 1;
    if (const size_t slash = item.find('/'); slash != std::string_view::npos) {
      const std::string_view step_text = item.substr(slash + 1);
      item = item.substr(0, slash);
      const FieldSpec step_spec{spec.name, 1, spec.hi, nullptr, 0};
      std::optional<int> s = ParseValue(step_text, step_spec, why);
      if (!s) {
        *why += " (a step)";
        return std::nullopt;
      }
      step = *s;
    }
    int lo = spec.lo;
    int hi = spec.hi;
    if (item != "*") {
      const size_t dash = item.find('-');
      std::optional<int> a = ParseValue(item.substr(0, dash), spec, why);
      if (!a) return std::nullopt;
      lo = *a;
      if (dash != std::string_view::npos) {
        std::optional<int> b = ParseValue(item.substr(dash + 1), spec, why);
        if (!b) return std::nullopt;
        hi = *b;
        if (hi < lo) {
          *why = fmt::format("{}: range {}-{} runs backwards", spec.name, lo, hi);
          return std::nullopt;
        }
      } else if (step == 1) {
        hi = lo;  // "a/n" means a to the end, as in Vixie cron; "a" alone is a
      }
    }
    for (int v = lo; v <= hi; v += step) mask |= uint64_t{1} << v;
    if (comma == std::string_view::npos) break;
    field = field.substr(comma + 1);
  }
  return mask;
}

// Calls `f(start)` for each window start of `s` on the local days [first,
// first + count), in increasing order, until it returns false.
template <typename F>
void ScanStarts(const Schedule& s, date::local_days first, int count, F&& f) {
  std::optional<date::sys_seconds> last;
  for (int i = 0; i < count; ++i) {
    const date::local_days day = first + date::days(i);
    const date::year_month_day ymd(day);
    const date::weekday wd(day);
    if (!s.cron.MatchesDay(static_cast<unsigned>(ymd.day()), static_cast<unsigned>(ymd.month()),
                           wd.c_encoding()))
      continue;
    for (int h = 0; h < 24; ++h) {
      if (!s.cron.hours.test(static_cast<size_t>(h))) continue;
      for (int m = 0; m < 60; ++m) {
        if (!s.cron.minutes.test(static_cast<size_t>(m))) continue;
        // earliest: a time in a gap maps to the end of the gap, a repeated
        // time to its first occurrence.
        const date::zoned_seconds zt(s.zone, date::local_seconds(day + hours(h) + minutes(m)),
                                     date::choose::earliest);
        const date::sys_seconds start = zt.get_sys_time();
        if (last && start <= *last) continue;  // several gap times open once
        last = start;
        if (!f(WallTime(start))) return;
      }
    }
  }
}

date::local_days LocalDay(const Schedule& s, WallTime t) {
  const date::zoned_seconds zt(s.zone, floor<seconds>(t));
  return floor<date::days>(zt.get_local_time());
}

}  // namespace

bool CronExpr::MatchesDay(unsigned day_of_month, unsigned month, unsigned day_of_week) const {
  if (!months.test(month)) return false;
  const bool dom = days_of_month.test(day_of_month);
  const bool dow = days_of_week.test(day_of_week);
  if (any_day_of_month || any_day_of_week) return dom && dow;
  return dom || dow;
}

std::optional<CronExpr> ParseCron(std::string_view text, std::string* why) {
  std::string ignored;
  if (why == nullptr) why = &ignored;
  if (text.size() > 200) {
    *why = fmt::format("is {} characters long (at most 200)", text.size());
    return std::nullopt;
  }
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  if (fields.size() != 5) {
    *why = fmt::format("expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                       fields.size());
    return std::nullopt;
  }
  CronExpr c;
  std::optional<uint64_t> masks[5];
  const FieldSpec* specs[5] = {&kMinute, &kHour, &kDayOfMonth, &kMonth, &kDayOfWeek};
  for (size_t f = 0; f < 5; ++f) {
    masks[f] = ParseField(fields[f], *specs[f], why);
    if (!masks[f]) return std::nullopt;
  }
  c.minutes = std::bitset<60>(*masks[0]);
  c.hours = std::bitset<24>(*masks[1]);
  c.days_of_month = std::bitset<32>(*masks[2]);
  c.months = std::bitset<13>(*masks[3]);
  uint64_t dow = *masks[4];
  if (dow & (uint64_t{1} << 7)) dow |= 1;  // 7 is Sunday
  c.days_of_week = std::bitset<7>(dow & 0x7f);
  c.any_day_of_month = fields[2].front() == '*';
  c.any_day_of_week = fields[4].front() == '*';
  return c;
}

const date::time_zone* FindTimeZone(std::string_view name, std::string* why) {
  try {
    return date::locate_zone(name);
  } catch (const std::exception& e) {
    if (why != nullptr)
      *why = fmt::format("unknown time zone \"{}\" (an IANA name such as Europe/Berlin or UTC)",
                         name.substr(0, std::min<size_t>(name.size(), 80)));
    return nullptr;
  }
}

std::optional<WallTime> Schedule::NextStart(WallTime after) const {
  std::optional<WallTime> next;
  ScanStarts(*this, LocalDay(*this, after) - date::days(1), kScheduleSearchYears * 366 + 2,
             [&](WallTime start) {
               if (start <= after) return true;
               next = start;
               return false;
             });
  return next;
}

std::vector<WallTime> Schedule::StartsBetween(WallTime from, WallTime to, size_t limit) const {
  std::vector<WallTime> starts;
  if (to <= from || limit == 0) return starts;
  const date::local_days first = LocalDay(*this, from) - date::days(1);
  const int count = static_cast<int>((LocalDay(*this, to) - first).count()) + 2;
  ScanStarts(*this, first, count, [&](WallTime start) {
    if (start >= to) return false;
    if (start >= from) starts.push_back(start);
    return starts.size() < limit;
  });
  return starts;
}

std::optional<WallTime> Schedule::ActiveStart(WallTime t) const {
  // Starts in (t - duration, t]; the latest one is the window open now.
  const std::vector<WallTime> starts = StartsBetween(t - duration + std::chrono::nanoseconds(1),
                                                     t + std::chrono::nanoseconds(1), SIZE_MAX);
  if (starts.empty()) return std::nullopt;
  return starts.back();
}

std::optional<ActiveSchedule> ActiveScheduleAt(const std::vector<Schedule>& schedules, WallTime t) {
  for (const Schedule& s : schedules)
    if (std::optional<WallTime> start = s.ActiveStart(t))
      return ActiveSchedule{&s, *start, *start + s.duration};
  return std::nullopt;
}

std::optional<WallTime> NextScheduleStart(const std::vector<Schedule>& schedules, WallTime t) {
  std::optional<WallTime> next;
  for (const Schedule& s : schedules)
    if (std::optional<WallTime> n = s.NextStart(t); n && (!next || *n < *next)) next = n;
  return next;
}

Bounds EffectiveBounds(int64_t min, int64_t max, const Schedule* active) {
  if (active == nullptr) return {min, max};
  return {active->min.value_or(min), active->max.value_or(max)};
}

std::optional<ScheduleOverlap> FindScheduleOverlap(const std::vector<Schedule>& schedules,
                                                   WallTime from, Duration horizon, size_t limit,
                                                   std::optional<size_t>* too_many) {
  struct Window {
    WallTime start;
    WallTime end;
    size_t index;
  };
  std::vector<Window> windows;
  for (size_t i = 0; i < schedules.size(); ++i) {
    const size_t left = limit - windows.size();
    const std::vector<WallTime> starts = schedules[i].StartsBetween(from, from + horizon, left + 1);
    if (starts.size() > left) {
      if (too_many != nullptr) *too_many = i;
      return std::nullopt;
    }
    for (WallTime s : starts) windows.push_back({s, s + schedules[i].duration, i});
  }
  std::sort(windows.begin(), windows.end(), [](const Window& a, const Window& b) {
    return std::tie(a.start, a.index) < std::tie(b.start, b.index);
  });
  std::optional<Window> open;  // the window that ends last so far
  for (const Window& w : windows) {
    if (open && w.start < open->end)
      return ScheduleOverlap{open->index, w.index, open->start, w.start};
    if (!open || w.end > open->end) open = w;
  }
  return std::nullopt;
}

}  // namespace virtscale::autoscale
