#include "common/metric_families.h"

#include <gtest/gtest.h>

#include <optional>

namespace virtscale {
namespace {

using prometheus::MetricType;

TEST(MetricFamilies, KeepsFirstUseOrderAndDropsEmptyFamilies) {
  MetricFamilies f;
  auto empty = f.Family("a_empty", "never sampled", MetricType::Gauge);
  f.Counter("b_total", "counter", {{"k", "v"}}, 3);
  f.Gauge("c", "gauge", {}, 1.5);
  f.Counter("b_total", "counter", {{"k", "w"}}, 4);  // same family, found by name
  (void)empty;
  std::vector<prometheus::MetricFamily> out = f.Take();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].name, "b_total");
  EXPECT_EQ(out[0].type, MetricType::Counter);
  ASSERT_EQ(out[0].metric.size(), 2u);
  EXPECT_EQ(out[0].metric[1].counter.value, 4);
  EXPECT_EQ(out[0].metric[1].label[0].value, "w");
  EXPECT_EQ(out[1].name, "c");
  EXPECT_EQ(out[1].metric[0].gauge.value, 1.5);
}

TEST(MetricFamilies, KeptFamilyIsEmittedWithoutSamples) {
  MetricFamilies f;
  f.Family("errors_total", "errors", MetricType::Counter, MetricFamilies::IfEmpty::kKeep);
  std::vector<prometheus::MetricFamily> out = f.Take();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].help, "errors");
  EXPECT_TRUE(out[0].metric.empty());
  EXPECT_TRUE(f.Take().empty());  // Take leaves the builder empty
}

TEST(MetricFamilies, OptionalReadingsAddNothingWhenAbsentAndDivideWhenPresent) {
  MetricFamilies f;
  f.Gauge("bytes", "b", {}, std::optional<uint64_t>{});
  f.Counter("seconds_total", "s", {}, std::optional<uint64_t>{2500000000}, 1e9);
  std::vector<prometheus::MetricFamily> out = f.Take();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "seconds_total");
  EXPECT_DOUBLE_EQ(out[0].metric[0].counter.value, 2.5);
}

}  // namespace
}  // namespace virtscale
