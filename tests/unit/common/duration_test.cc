#include "common/duration.h"

#include <gtest/gtest.h>

namespace virtscale {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(ParseDuration, AcceptsPrometheusForms) {
  EXPECT_EQ(ParseDuration("5s"), seconds(5));
  EXPECT_EQ(ParseDuration("1m"), minutes(1));
  EXPECT_EQ(ParseDuration("1h30m"), minutes(90));
  EXPECT_EQ(ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(ParseDuration("1m30s500ms"), milliseconds(90500));
  EXPECT_EQ(ParseDuration("2d"), hours(48));
  EXPECT_EQ(ParseDuration("0"), milliseconds(0));
}

TEST(ParseDuration, RejectsMalformed) {
  for (const char* bad :
       {"", "5", "s", "5x", "-5s", "1.5s", "30m1h", "5s5s", "5 s", "1h 30m", "ms", "5sm"}) {
    EXPECT_FALSE(ParseDuration(bad).has_value()) << bad;
  }
}

TEST(ParseDuration, RejectsBeyondTheMaximumWithoutOverflow) {
  EXPECT_EQ(ParseDuration("100d"), kMaxDuration);
  EXPECT_EQ(ParseDuration("14w2d"), kMaxDuration);
  EXPECT_EQ(ParseDuration("8640000000ms"), kMaxDuration);
  // 293y is 2^63 ns: once accepted and wrapped to a negative clock offset.
  for (const char* big : {"100d1ms", "293y", "1y", "1099511627776y",
                          "99999999999999999999999999999999999999d", "8640000001ms"}) {
    std::string why;
    EXPECT_FALSE(ParseDuration(big, &why).has_value()) << big;
    EXPECT_NE(why.find("longer than the maximum 100d"), std::string::npos) << why;
  }
  // A typo after a huge number is still reported as a typo.
  std::string why;
  EXPECT_FALSE(ParseDuration("999999999999999999y5x", &why));
  EXPECT_NE(why.find("invalid duration"), std::string::npos) << why;
}

TEST(FormatDuration, RoundTrips) {
  for (const char* text : {"5s", "1m", "1h30m", "500ms", "2d3h", "1m30s500ms"}) {
    auto d = ParseDuration(text);
    ASSERT_TRUE(d) << text;
    EXPECT_EQ(FormatDuration(*d), text);
  }
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0s");
}

}  // namespace
}  // namespace virtscale
