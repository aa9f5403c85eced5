#include "autoscale/forecast.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace virtscale::autoscale {
namespace {

constexpr int64_t kBinSeconds =
    std::chrono::duration_cast<std::chrono::seconds>(kForecastBin).count();
constexpr int64_t kDayBins = 86400 / kBinSeconds;
constexpr int64_t kWeekBins = 7 * kDayBins;
constexpr int kMaxDays = 7;
constexpr int kMaxWeeks = 4;
constexpr int64_t kLevelBins = 3600 / kBinSeconds;  // the last hour
constexpr double kMaxPlausible = 9007199254740992.0;

// The history's samples averaged per 5-minute bin, numbered from the Unix epoch.
class Bins {
 public:
  Bins(const std::vector<LoadSample>& samples, double now_unix)
      : now_(static_cast<int64_t>(std::floor(now_unix / kBinSeconds))),
        first_(now_ - std::chrono::duration_cast<std::chrono::seconds>(kForecastHistory).count() /
                          kBinSeconds),
        sum_(static_cast<size_t>(now_ - first_ + 1)),
        count_(sum_.size()) {
    for (const LoadSample& s : samples) {
      if (!std::isfinite(s.unix_seconds) || !std::isfinite(s.value) || s.value < 0 ||
          s.value > kMaxPlausible)
        continue;
      const double b = std::floor(s.unix_seconds / kBinSeconds);
      if (b < static_cast<double>(first_) || b > static_cast<double>(now_)) continue;
      const size_t i = static_cast<size_t>(static_cast<int64_t>(b) - first_);
      sum_[i] += s.value;
      ++count_[i];
      earliest_ = std::min(earliest_, static_cast<int64_t>(b));
    }
  }
  // Only completed bins (before now's) count as observed.
  std::optional<double> Observed(int64_t bin) const {
    if (bin < first_ || bin >= now_) return std::nullopt;
    const size_t i = static_cast<size_t>(bin - first_);
    if (count_[i] == 0) return std::nullopt;
    return sum_[i] / static_cast<double>(count_[i]);
  }
  int64_t now() const { return now_; }
  int64_t earliest() const { return earliest_; }  // INT64_MAX without data

 private:
  int64_t now_;
  int64_t first_;
  std::vector<double> sum_;
  std::vector<uint32_t> count_;
  int64_t earliest_ = INT64_MAX;
};

// Seasonal naive over up to `periods` past seasons: the mean of the load one,
// two, ... seasons before `bin`.
std::optional<double> SeasonalMean(const Bins& bins, int64_t bin, int64_t period, int periods) {
  double sum = 0;
  int n = 0;
  for (int k = 1; k <= periods; ++k) {
    if (auto v = bins.Observed(bin - k * period)) {
      sum += *v;
      ++n;
    }
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

struct Combination {
  double daily_weight = 1;
  std::optional<double> At(const Bins& bins, int64_t bin) const {
    const auto daily = SeasonalMean(bins, bin, kDayBins, kMaxDays);
    const auto weekly = SeasonalMean(bins, bin, kWeekBins, kMaxWeeks);
    if (daily && weekly) return daily_weight * *daily + (1 - daily_weight) * *weekly;
    return daily ? daily : weekly;
  }
};

// Weights inversely proportional to each season's mean absolute error over
// the last day; even when the day gives no comparison.
double DailyWeight(const Bins& bins) {
  double daily_error = 0, weekly_error = 0, level = 0;
  int n = 0;
  for (int64_t b = bins.now() - kDayBins; b < bins.now(); ++b) {
    const auto actual = bins.Observed(b);
    const auto daily = SeasonalMean(bins, b, kDayBins, kMaxDays);
    const auto weekly = SeasonalMean(bins, b, kWeekBins, kMaxWeeks);
    if (!actual || !daily || !weekly) continue;
    daily_error += std::abs(*daily - *actual);
    weekly_error += std::abs(*weekly - *actual);
    level += *actual;
    ++n;
  }
  if (n == 0) return 0.5;
  // A small floor keeps a perfect fit from dividing by zero.
  const double floor = 1e-9 * (1 + level / n);
  const double daily_inverse = 1 / (daily_error / n + floor);
  const double weekly_inverse = 1 / (weekly_error / n + floor);
  return daily_inverse / (daily_inverse + weekly_inverse);
}

}  // namespace

std::string LoadForecast::Describe() const {
  std::string s = fmt::format("peak {:.4g} (daily {} days", peak, days);
  if (weeks > 0)
    s += fmt::format(" x{:.2f}, weekly {} weeks x{:.2f}", daily_weight, weeks, 1 - daily_weight);
  return s + fmt::format(", level {:+.4g})", level_shift);
}

std::optional<LoadForecast> ForecastLoad(const std::vector<LoadSample>& samples, double now_unix,
                                         Duration horizon) {
  if (!std::isfinite(now_unix) || std::abs(now_unix) > 1e12) return std::nullopt;
  horizon = std::clamp(horizon, Duration(0), kMaxForecastHorizon);
  const Bins bins(samples, now_unix);
  if (bins.earliest() > bins.now() - kDayBins) return std::nullopt;  // less than a day

  LoadForecast f;
  const int64_t covered = bins.now() - bins.earliest();
  f.days = static_cast<int>(std::min<int64_t>(kMaxDays, covered / kDayBins));
  f.weeks = static_cast<int>(std::min<int64_t>(kMaxWeeks, covered / kWeekBins));
  Combination model;
  if (f.weeks > 0) model.daily_weight = DailyWeight(bins);
  f.daily_weight = model.daily_weight;

  double residual = 0;
  int n = 0;
  for (int64_t b = bins.now() - kLevelBins; b < bins.now(); ++b) {
    const auto actual = bins.Observed(b);
    const auto seasonal = model.At(bins, b);
    if (!actual || !seasonal) continue;
    residual += *actual - *seasonal;
    ++n;
  }
  f.level_shift = n > 0 ? residual / n : 0;

  const int64_t horizon_seconds = std::chrono::duration_cast<std::chrono::seconds>(horizon).count();
  const int64_t last = static_cast<int64_t>(
      std::floor((now_unix + static_cast<double>(horizon_seconds)) / kBinSeconds));
  std::optional<double> peak;
  for (int64_t b = std::min(bins.now() + 1, last); b <= last; ++b) {
    if (auto v = model.At(bins, b)) peak = std::max(peak.value_or(0), *v + f.level_shift);
  }
  if (!peak) return std::nullopt;
  f.peak = std::max(0.0, *peak);
  return f;
}

}  // namespace virtscale::autoscale
