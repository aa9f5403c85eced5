#include "autoscale/forecast.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <random>

namespace virtscale::autoscale {
namespace {

constexpr double kDay = 86400;
// Monday 2026-11-02 00:00 UTC.
constexpr double kMonday = 1793577600;

// A diurnal load: 100 at night, 300 at 14:00, and on Saturday and Sunday 40%
// of a weekday, plus Gaussian noise of standard deviation `noise`.
double Load(double t) {
  const double hour = std::fmod(t - kMonday, kDay) / 3600;
  const int weekday = static_cast<int>((t - kMonday) / kDay) % 7;  // 0: Monday
  const double day =
      100 + 200 * std::pow(std::max(0.0, std::sin((hour - 8) / 12 * std::numbers::pi)), 2);
  return weekday >= 5 ? 0.4 * day : day;
}

std::vector<LoadSample> History(double from, double to, double noise, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0, noise);
  std::vector<LoadSample> out;
  for (double t = from; t < to; t += 60) out.push_back({t, std::max(0.0, Load(t) + n(rng))});
  return out;
}

TEST(Forecast, NeedsADayOfHistory) {
  const double now = kMonday + 10 * kDay;
  EXPECT_FALSE(ForecastLoad(History(now - kDay + 600, now, 0), now, std::chrono::minutes(15)));
  EXPECT_FALSE(ForecastLoad({}, now, std::chrono::minutes(15)));
  auto f = ForecastLoad(History(now - kDay - 600, now, 0), now, std::chrono::minutes(15));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->days, 1);
  EXPECT_EQ(f->weeks, 0);
  EXPECT_DOUBLE_EQ(f->daily_weight, 1);
}

// On three weeks of noisy history, forecasts 15 minutes ahead every hour of a
// week stay within a mean absolute error of 6% of the mean load, weekends
// (which only the weekly season knows) included; noise alone is 5%.
TEST(Forecast, SeasonalLoadWithNoiseWithinBound) {
  const double start = kMonday;
  const double noise = 10;  // 5% of the mean weekday load (about 200)
  const std::vector<LoadSample> all = History(start, start + 28 * kDay, noise, 7);
  double error = 0, level = 0;
  int n = 0;
  for (double now = start + 21 * kDay; now < start + 28 * kDay; now += 3600) {
    std::vector<LoadSample> past;
    for (const LoadSample& s : all)
      if (s.unix_seconds < now) past.push_back(s);
    auto f = ForecastLoad(past, now, std::chrono::minutes(15));
    ASSERT_TRUE(f) << now;
    EXPECT_EQ(f->weeks, 3);
    EXPECT_EQ(f->days, 7);
    double peak = 0;  // the true peak of (now, now + 15m], without noise
    for (double t = now; t <= now + 900; t += 60) peak = std::max(peak, Load(t));
    error += std::abs(f->peak - peak);
    level += peak;
    ++n;
  }
  const double mae = error / n, mean = level / n;
  std::printf("forecast 15m ahead, %d hours: mean absolute error %.2f of mean load %.1f (%.2f%%)\n",
              n, mae, mean, 100 * mae / mean);
  EXPECT_LT(mae / mean, 0.06) << "mean absolute error " << mae << " of mean load " << mean;
}

// The weekly season carries the weekend: on a Saturday morning the
// combination leans on it, and the forecast is near the weekend level.
TEST(Forecast, WeekendFollowsTheWeeklySeason) {
  const double now = kMonday + 19 * kDay + 14 * 3600;  // Saturday of week 3, 14:00
  auto f = ForecastLoad(History(kMonday, now, 0), now, std::chrono::minutes(15));
  ASSERT_TRUE(f);
  EXPECT_LT(f->daily_weight, 0.5) << f->Describe();
  EXPECT_NEAR(f->peak, Load(now + 900), 0.1 * Load(now + 900)) << f->Describe();
}

// A day busier than usual: the last hour's residual lifts the forecast.
TEST(Forecast, LevelShiftFollowsABusyDay) {
  const double now = kMonday + 9 * kDay + 11 * 3600;  // Wednesday, 11:00
  std::vector<LoadSample> h = History(kMonday, now, 0);
  for (LoadSample& s : h)
    if (s.unix_seconds >= now - 3600) s.value += 50;
  auto f = ForecastLoad(h, now, std::chrono::minutes(15));
  ASSERT_TRUE(f);
  EXPECT_NEAR(f->level_shift, 50, 5) << f->Describe();
  EXPECT_NEAR(f->peak, Load(now + 900) + 50, 10) << f->Describe();
}

TEST(Forecast, AbsurdSamplesAreIgnored) {
  const double now = kMonday + 3 * kDay;
  std::vector<LoadSample> h = History(kMonday, now, 0);
  const auto clean = ForecastLoad(h, now, std::chrono::minutes(15));
  const double inf = std::numeric_limits<double>::infinity();
  for (double v : {std::nan(""), inf, -inf, -5.0, 1e300})
    for (double t = now - 7200; t < now; t += 300) h.push_back({t, v});
  h.push_back({std::nan(""), 1});
  h.push_back({now + 3600, 1e6});  // in the future
  h.push_back({-1e300, 1e6});
  const auto dirty = ForecastLoad(h, now, std::chrono::minutes(15));
  ASSERT_TRUE(clean);
  ASSERT_TRUE(dirty);
  EXPECT_DOUBLE_EQ(dirty->peak, clean->peak);
  EXPECT_FALSE(ForecastLoad(h, std::nan(""), std::chrono::minutes(15)));
  EXPECT_FALSE(ForecastLoad(h, 1e300, std::chrono::minutes(15)));
}

TEST(Forecast, DescribeNamesTheSeasonsAndWeights) {
  const double now = kMonday + 15 * kDay;
  auto f = ForecastLoad(History(kMonday, now, 0), now, std::chrono::minutes(15));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->weeks, 2);
  EXPECT_NE(f->Describe().find("daily 7 days x"), std::string::npos) << f->Describe();
  EXPECT_NE(f->Describe().find("weekly 2 weeks x"), std::string::npos) << f->Describe();
}

}  // namespace
}  // namespace virtscale::autoscale
