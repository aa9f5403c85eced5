#pragma once
// A seasonal forecast of a group's load from its history (pure, no I/O).
//
// Loads that people make (requests, queue depth) repeat by time of day and by
// day of week. The model is two seasonal naive forecasts (Hyndman &
// Athanasopoulos, "Forecasting: Principles and Practice", 3rd ed., 5.2), one
// per season of 12.1 ("complex seasonality": daily and weekly periods):
//   daily(t)  = mean of the load at t - 1d, ..., t - 7d (those in the history)
//   weekly(t) = mean of the load at t - 7d, ..., t - 28d
// combined with weights inversely proportional to each one's mean absolute
// error over the last day (forecast combination, 13.4, after Bates & Granger
// 1969), so a history without a weekly pattern leans on the daily profile,
// and a weekend leans on the weekly one. The seasonal value is then shifted by
// the mean residual of the last hour, so a day busier than usual is followed.
// Averaging over several periods keeps noise down; seasonal naive keeps the
// model explainable and cheap (a few thousand additions per forecast).
//
// Samples are averaged into 5-minute bins. A sample that is not finite,
// negative, beyond 2^53, or outside the 29 days before `now` is ignored.
//
//   std::optional<LoadForecast> f = ForecastLoad(samples, now_unix, 15min);
//   // f->peak: the highest load forecast in (now, now + 15m]
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/duration.h"

namespace virtscale::autoscale {

struct LoadSample {
  double unix_seconds = 0;
  double value = 0;
};

struct LoadForecast {
  double peak = 0;               // the highest load forecast in (now, now + horizon]
  int days = 0;                  // daily seasons that contributed (0..7)
  int weeks = 0;                 // weekly seasons that contributed (0..4)
  double daily_weight = 1;       // in the combination; weekly_weight = 1 - daily_weight
  double level_shift = 0;        // the last hour's mean residual, added
  std::string Describe() const;  // "peak 123.4 (daily 7 days x0.40, weekly 2 weeks x0.60, +3.1)"
};

inline constexpr Duration kForecastBin = std::chrono::minutes(5);
inline constexpr Duration kMaxForecastHorizon = std::chrono::hours(24);
inline constexpr Duration kForecastHistory = std::chrono::hours(24 * 29);

// nullopt when the history covers less than one day before `now`.
[[nodiscard]] std::optional<LoadForecast> ForecastLoad(const std::vector<LoadSample>& samples,
                                                       double now_unix, Duration horizon);

}  // namespace virtscale::autoscale
