#include "common/rfc3339.h"

#include <gtest/gtest.h>

namespace virtscale {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::system_clock;

system_clock::time_point Unix(int64_t s) { return system_clock::time_point(seconds(s)); }

TEST(ParseRfc3339, UtcOffsetsAndFractions) {
  EXPECT_EQ(ParseRfc3339("2026-12-01T10:00:00Z"), Unix(1796119200));
  EXPECT_EQ(ParseRfc3339("2026-12-01t10:00:00z"), Unix(1796119200));
  EXPECT_EQ(ParseRfc3339("2026-12-01T11:30:00+01:30"), Unix(1796119200));
  EXPECT_EQ(ParseRfc3339("2026-12-01T05:00:00-05:00"), Unix(1796119200));
  EXPECT_EQ(ParseRfc3339("2026-12-01T10:00:00.250Z"), Unix(1796119200) + milliseconds(250));
  EXPECT_EQ(ParseRfc3339("2026-12-01T10:00:00.5+00:00"), Unix(1796119200) + milliseconds(500));
  // Digits past nanoseconds are dropped, not an error.
  EXPECT_EQ(ParseRfc3339("2026-12-01T10:00:00.0000000019Z"),
            Unix(1796119200) + std::chrono::nanoseconds(1));
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), Unix(0));
  EXPECT_EQ(ParseRfc3339("2024-02-29T00:00:00Z"), Unix(1709164800));  // leap day
  EXPECT_EQ(ParseRfc3339("2016-12-31T23:59:60Z"), Unix(1483228799));  // leap second
}

TEST(ParseRfc3339, RefusesWhatIsNotOne) {
  for (const char* bad : {
           "",
           "2026-12-01",                 // no time
           "2026-12-01T10:00:00",        // no zone
           "2026-12-01 10:00:00Z",       // space
           "2026-12-01T10:00Z",          // no seconds
           "2026-12-01T10:00:00.Z",      // empty fraction
           "2026-12-01T10:00:00+0100",   // offset without colon
           "2026-12-01T10:00:00+01",     // short offset
           "2026-12-01T10:00:00Zjunk",   // trailing text
           "2026-13-01T10:00:00Z",       // month 13
           "2026-04-31T10:00:00Z",       // 31st of April
           "2025-02-29T10:00:00Z",       // not a leap year
           "2026-12-01T24:00:00Z",       // hour 24
           "2026-12-01T10:60:00Z",       // minute 60
           "2026-12-01T10:00:61Z",       // second 61
           "2026-12-01T10:00:00+24:00",  // offset hour 24
           "26-12-01T10:00:00Z",         // two-digit year
           "2026-1-01T10:00:00Z",        // one-digit month
           "2026-12-01T+1:00:00Z",       // sign in a field
           "1796119200",                 // Unix seconds
           "yesterday",
       }) {
    EXPECT_EQ(ParseRfc3339(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace virtscale
