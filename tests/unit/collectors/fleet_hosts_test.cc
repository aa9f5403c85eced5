#include "collectors/fleet_hosts.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <thread>

namespace virtscale {
namespace {

using Times = std::map<std::string, uint64_t>;

TEST(CpuIdleRatio, IdleShareOfAllModesBetweenReadings) {
  const Times before = {{"idle", 1000}, {"user", 500}, {"system", 500}, {"iowait", 0}};
  const Times after = {{"idle", 1600}, {"user", 700}, {"system", 600}, {"iowait", 100}};
  // 600 idle of 1000 elapsed.
  ASSERT_TRUE(CpuIdleRatio(before, after));
  EXPECT_DOUBLE_EQ(*CpuIdleRatio(before, after), 0.6);
}

TEST(CpuIdleRatio, NoRatioFromUnusableReadings) {
  const Times t = {{"idle", 1000}, {"user", 500}};
  EXPECT_FALSE(CpuIdleRatio(t, t));                                // time did not advance
  EXPECT_FALSE(CpuIdleRatio({{"user", 1}}, {{"user", 2}}));        // no idle mode
  EXPECT_FALSE(CpuIdleRatio(t, {{"idle", 900}, {"user", 700}}));   // idle went back
  EXPECT_FALSE(CpuIdleRatio(t, {{"idle", 1100}, {"user", 400}}));  // a mode went back
  EXPECT_FALSE(CpuIdleRatio(t, {{"idle", 1100}, {"steal", 5}}));   // a mode appeared
  EXPECT_FALSE(CpuIdleRatio({}, t));
}

std::string Exposition(const FleetHosts& fleet) {
  return prometheus::TextSerializer().Serialize(fleet.Collect());
}

// One reachable host (the test driver) and one that refuses: the first is up
// with its node figures, the second down with only up and unreachable_seconds.
TEST(FleetHosts, ReportsEachHostsHealthApart) {
  EnsureLibvirtEventLoop();
  SamplerOptions options;
  options.interval = std::chrono::milliseconds(200);
  options.call_timeout = std::chrono::seconds(5);
  FleetHosts fleet({{"hv1", "test:///default"}, {"hv2", "qemu+tcp://127.0.0.1:1/system"}}, options,
                   /*read_only=*/true);
  EXPECT_EQ(Exposition(FleetHosts({}, options, true)), "");
  fleet.Start();
  std::vector<FleetHostStatus> status;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = fleet.Status();
  } while (std::chrono::steady_clock::now() < deadline &&
           !(status[0].up && status[1].snapshot &&
             status[1].unreachable_for > std::chrono::milliseconds(300)));
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[0].name, "hv1");
  EXPECT_TRUE(status[0].up);
  EXPECT_EQ(status[0].unreachable_for, Duration::zero());
  ASSERT_TRUE(status[0].snapshot);
  EXPECT_EQ(status[0].snapshot->domains.size(), 1u);  // the test driver's "test" domain
  EXPECT_EQ(status[1].name, "hv2");
  EXPECT_FALSE(status[1].up);
  EXPECT_GT(status[1].unreachable_for, std::chrono::milliseconds(300));

  const std::string text = Exposition(fleet);
  EXPECT_NE(text.find("virtscale_host_up{host=\"hv1\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("virtscale_host_up{host=\"hv2\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("virtscale_host_unreachable_seconds{host=\"hv1\"} 0"), std::string::npos);
  EXPECT_NE(text.find("virtscale_host_cpus{host=\"hv1\"} 16"), std::string::npos) << text;
  EXPECT_NE(text.find("virtscale_host_domains{host=\"hv1\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("virtscale_host_memory_bytes{host=\"hv1\"}"), std::string::npos) << text;
  EXPECT_EQ(text.find("virtscale_host_memory_bytes{host=\"hv2\"}"), std::string::npos) << text;
  EXPECT_EQ(text.find("virtscale_host_domains{host=\"hv2\"}"), std::string::npos) << text;
  fleet.Stop();
}

}  // namespace
}  // namespace virtscale
