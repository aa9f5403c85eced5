#include "collectors/domain_stats_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/collectors/typed_params.h"

namespace virtscale {
namespace {

TEST(DomainStatsParser, ParsesEveryCoreGroupInBaseUnits) {
  Params p;
  p.I("state.state", VIR_DOMAIN_RUNNING)
      .I("state.reason", 1)
      .U("cpu.time", 5'000'000'000ULL)
      .U("cpu.user", 3'000'000'000ULL)
      .U("cpu.system", 1'000'000'000ULL)
      .U("balloon.current", 1024)
      .U("balloon.maximum", 2048)
      .U("balloon.available", 1000)
      .U("balloon.usable", 250)
      .U("balloon.rss", 900)
      .U("balloon.major_fault", 7)
      .U("vcpu.current", 2)
      .U("vcpu.maximum", 4)
      .I("vcpu.0.state", 1)
      .U("vcpu.0.time", 100)
      .U("vcpu.1.time", 200)
      .U("vcpu.1.delay", 5)
      .U("net.count", 1)
      .S("net.0.name", "vnet0")
      .U("net.0.rx.bytes", 111)
      .U("net.0.tx.pkts", 3)
      .U("block.count", 1)
      .S("block.0.name", "vda")
      .S("block.0.path", "/var/lib/images/a.qcow2")
      .U("block.0.rd.bytes", 4096)
      .U("block.0.wr.times", 77)
      .U("block.0.allocation", 10)
      .U("block.0.capacity", 20)
      .U("block.0.physical", 30);
  DomainStats d;
  StatsParseResult r = ParseDomainStatsParams(p.data(), p.size(), d);

  EXPECT_EQ(r.groups_present, kCoreStatGroups);
  EXPECT_EQ(r.skipped_devices, 0);
  EXPECT_EQ(d.state, DomainState::kRunning);
  EXPECT_EQ(d.state_reason, 1);
  EXPECT_TRUE(d.active);
  EXPECT_EQ(d.cpu_time_ns, 5'000'000'000ULL);
  EXPECT_EQ(d.cpu_user_ns, 3'000'000'000ULL);
  EXPECT_EQ(d.cpu_system_ns, 1'000'000'000ULL);
  // Balloon values arrive in KiB.
  EXPECT_EQ(d.memory_bytes, 1024u * 1024);
  EXPECT_EQ(d.max_memory_bytes, 2048u * 1024);
  EXPECT_EQ(d.memory.available, 1000u * 1024);
  EXPECT_EQ(d.memory.usable, 250u * 1024);
  EXPECT_EQ(d.memory.rss, 900u * 1024);
  EXPECT_EQ(d.memory.major_fault, 7u);  // a count, not scaled
  EXPECT_FALSE(d.memory.swap_in.has_value());
  EXPECT_EQ(d.virtual_cpus, 2u);
  ASSERT_EQ(d.vcpus.size(), 2u);
  EXPECT_EQ(d.vcpus[0].id, 0u);
  EXPECT_EQ(d.vcpus[0].state, 1);
  EXPECT_EQ(d.vcpus[0].time_ns, 100u);
  EXPECT_FALSE(d.vcpus[0].delay_ns.has_value());
  EXPECT_EQ(d.vcpus[1].time_ns, 200u);
  EXPECT_EQ(d.vcpus[1].delay_ns, 5u);
  ASSERT_EQ(d.interfaces.size(), 1u);
  EXPECT_EQ(d.interfaces[0].name, "vnet0");
  EXPECT_EQ(d.interfaces[0].rx_bytes, 111u);
  EXPECT_EQ(d.interfaces[0].tx_pkts, 3u);
  EXPECT_FALSE(d.interfaces[0].rx_drop.has_value());
  ASSERT_EQ(d.blocks.size(), 1u);
  EXPECT_EQ(d.blocks[0].name, "vda");
  EXPECT_EQ(d.blocks[0].path, "/var/lib/images/a.qcow2");
  EXPECT_EQ(d.blocks[0].rd_bytes, 4096u);
  EXPECT_EQ(d.blocks[0].wr_times_ns, 77u);
  EXPECT_EQ(d.blocks[0].allocation, 10u);
  EXPECT_EQ(d.blocks[0].capacity, 20u);
  EXPECT_EQ(d.blocks[0].physical, 30u);
}

TEST(DomainStatsParser, StateOnlyRecordLeavesOtherFieldsAndGroupsAbsent) {
  Params p;
  p.I("state.state", VIR_DOMAIN_SHUTOFF).I("state.reason", 2);
  DomainStats d;
  d.name = "keep";
  StatsParseResult r = ParseDomainStatsParams(p.data(), p.size(), d);
  EXPECT_EQ(r.groups_present, StatGroups{VIR_DOMAIN_STATS_STATE});
  EXPECT_EQ(d.state, DomainState::kShutoff);
  EXPECT_FALSE(d.active);
  EXPECT_EQ(d.name, "keep");
  EXPECT_FALSE(d.cpu_time_ns.has_value());
  EXPECT_FALSE(d.memory_bytes.has_value());
  EXPECT_TRUE(d.blocks.empty());
}

// libvirt 9 fills cpu.* of a shut-off domain with libvirtd's own CPU time.
TEST(DomainStatsParser, InactiveDomainHasNoCpuTime) {
  Params p;
  p.I("state.state", VIR_DOMAIN_SHUTOFF)
      .U("cpu.time", 600000000)
      .U("cpu.user", 190000000)
      .U("cpu.system", 410000000);
  DomainStats d;
  ParseDomainStatsParams(p.data(), p.size(), d);
  EXPECT_FALSE(d.active);
  EXPECT_FALSE(d.cpu_time_ns.has_value());
  EXPECT_FALSE(d.cpu_user_ns.has_value());
  EXPECT_FALSE(d.cpu_system_ns.has_value());

  Params running;
  running.I("state.state", VIR_DOMAIN_RUNNING).U("cpu.time", 600000000);
  DomainStats r;
  ParseDomainStatsParams(running.data(), running.size(), r);
  EXPECT_EQ(r.cpu_time_ns, 600000000u);
}

TEST(DomainStatsParser, DropsEmptyAndRepeatedDeviceNamesAndCountsThem) {
  Params p;
  p.U("block.count", 4)
      .S("block.0.name", "vda")
      .U("block.0.rd.bytes", 1)
      .S("block.1.name", "vda")  // backing-chain entry of the same disk
      .U("block.1.rd.bytes", 2)
      .U("block.2.rd.bytes", 3)  // no name at all
      .S("block.3.name", "vdb")
      .U("block.3.rd.bytes", 4)
      .U("net.count", 2)
      .S("net.0.name", "")
      .S("net.1.name", "vnet1");
  DomainStats d;
  StatsParseResult r = ParseDomainStatsParams(p.data(), p.size(), d);
  EXPECT_EQ(r.skipped_devices, 3);
  ASSERT_EQ(d.blocks.size(), 2u);
  EXPECT_EQ(d.blocks[0].name, "vda");
  EXPECT_EQ(d.blocks[0].rd_bytes, 1u);  // the first one wins
  EXPECT_EQ(d.blocks[1].name, "vdb");
  ASSERT_EQ(d.interfaces.size(), 1u);
  EXPECT_EQ(d.interfaces[0].name, "vnet1");
}

TEST(DomainStatsParser, IgnoresMalformedKeysAndNegativeValues) {
  Params p;
  p.U("vcpu.x.time", 1).U("block.7", 2).U("nodot", 3).I("state.state", -1).U("cpu.time", 9);
  DomainStats d;
  StatsParseResult r = ParseDomainStatsParams(p.data(), p.size(), d);
  EXPECT_TRUE(d.vcpus.empty());
  EXPECT_TRUE(d.blocks.empty());
  EXPECT_EQ(d.state, DomainState::kNoState);
  EXPECT_EQ(d.cpu_time_ns, 9u);
  EXPECT_EQ(r.skipped_devices, 0);
}

TEST(DomainStatsParser, MemoryWhoseBytesOverflowIsNoReading) {
  // 2^54 KiB is 2^64 bytes: multiplied it would wrap to 0, a plausible reading.
  Params p;
  p.U("balloon.current", uint64_t{1} << 54)
      .U("balloon.maximum", (uint64_t{1} << 54) - 1)
      .U("balloon.rss", UINT64_MAX);
  DomainStats d;
  ParseDomainStatsParams(p.data(), p.size(), d);
  EXPECT_FALSE(d.memory.current.has_value());
  ASSERT_TRUE(d.memory.maximum.has_value());
  EXPECT_EQ(*d.memory.maximum, UINT64_MAX - 1023);
  EXPECT_FALSE(d.memory.rss.has_value());
}

TEST(StatGroups, ParsesNamesAndRejectsUnknown) {
  StatGroups g = 0;
  ASSERT_TRUE(ParseStatGroups({"state", "cpu", "block"}, g));
  EXPECT_EQ(
      g, StatGroups{VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL | VIR_DOMAIN_STATS_BLOCK});
  EXPECT_EQ(StatGroupNames(g), (std::vector<std::string>{"state", "cpu", "block"}));
  StatGroups untouched = 42;
  EXPECT_FALSE(ParseStatGroups({"cpu", "gpu"}, untouched));
  EXPECT_EQ(untouched, 42u);
  ASSERT_TRUE(ParseStatGroups({"perf", "iothread", "dirtyrate"}, g));
  EXPECT_EQ(g, StatGroups{VIR_DOMAIN_STATS_PERF | VIR_DOMAIN_STATS_IOTHREAD |
                          VIR_DOMAIN_STATS_DIRTYRATE});
}

TEST(DomainStatsParser, ParsesTheOptionalGroupsAndTheFullBalloonSet) {
  Params p;
  p.I("state.state", VIR_DOMAIN_RUNNING)
      .U("balloon.hugetlb_pgalloc", 12)
      .U("balloon.hugetlb_pgfail", 3)
      .L("balloon.last-update", 1'764'000'000)
      .S("block.0.name", "vda")
      .U("block.0.threshold", 1 << 30)
      .U("perf.cpu_cycles", 123456)
      .U("perf.cmt", 65536)
      .U("perf.Bad-Name", 1)
      .U("iothread.count", 2)
      .U("iothread.1.poll-max-ns", 32768)
      .U("iothread.1.poll-grow", 2)
      .U("iothread.4.poll-shrink", 4)
      .I("dirtyrate.calc_status", 2)
      .L("dirtyrate.calc_start_time", 1'764'000'100)
      .I("dirtyrate.calc_period", 1)
      .L("dirtyrate.megabytes_per_second", 42)
      .S("dirtyrate.calc_mode", "dirty-ring")
      .L("dirtyrate.vcpu.0.megabytes_per_second", 40)
      .L("dirtyrate.vcpu.1.megabytes_per_second", 2)
      .L("dirtyrate.vcpu.x.megabytes_per_second", 9);
  DomainStats d;
  StatsParseResult r = ParseDomainStatsParams(p.data(), p.size(), d);
  EXPECT_EQ(
      r.groups_present &
          (VIR_DOMAIN_STATS_PERF | VIR_DOMAIN_STATS_IOTHREAD | VIR_DOMAIN_STATS_DIRTYRATE),
      unsigned{VIR_DOMAIN_STATS_PERF | VIR_DOMAIN_STATS_IOTHREAD | VIR_DOMAIN_STATS_DIRTYRATE});
  EXPECT_EQ(d.memory.hugetlb_pgalloc, 12u);
  EXPECT_EQ(d.memory.hugetlb_pgfail, 3u);
  EXPECT_EQ(d.memory.last_update_unix, 1'764'000'000);
  ASSERT_EQ(d.blocks.size(), 1u);
  EXPECT_EQ(d.blocks[0].threshold, 1u << 30);
  // A name that is not a libvirt event name never becomes a label.
  ASSERT_EQ(d.perf_events.size(), 2u);
  EXPECT_EQ(d.perf_events[0].name, "cpu_cycles");
  EXPECT_EQ(d.perf_events[0].value, 123456u);
  EXPECT_EQ(d.perf_events[1].name, "cmt");
  EXPECT_EQ(d.iothread_count, 2u);
  ASSERT_EQ(d.iothreads.size(), 2u);
  EXPECT_EQ(d.iothreads[0].id, 1u);
  EXPECT_EQ(d.iothreads[0].poll_max_ns, 32768u);
  EXPECT_EQ(d.iothreads[0].poll_grow, 2u);
  EXPECT_FALSE(d.iothreads[0].poll_shrink);
  EXPECT_EQ(d.iothreads[1].id, 4u);
  EXPECT_EQ(d.iothreads[1].poll_shrink, 4u);
  ASSERT_TRUE(d.dirty_rate);
  EXPECT_EQ(d.dirty_rate->calc_status, 2);
  EXPECT_EQ(d.dirty_rate->calc_start_time, 1'764'000'100);
  EXPECT_EQ(d.dirty_rate->calc_period_seconds, 1);
  EXPECT_EQ(d.dirty_rate->mebibytes_per_second, 42u);
  EXPECT_EQ(d.dirty_rate->vcpu_mebibytes_per_second,
            (std::vector<std::pair<unsigned, uint64_t>>{{0, 40}, {1, 2}}));
}

TEST(DomainStatsParser, BoundsWhatTheOptionalGroupsMayAdd) {
  Params p;
  for (int i = 0; i < 1000; ++i) {
    p.U("perf.event_" + std::to_string(i), 1);
    p.U("iothread." + std::to_string(i) + ".poll-grow", 1);
  }
  p.I("dirtyrate.calc_status", 7).I("dirtyrate.calc_period", -5);
  DomainStats d;
  ParseDomainStatsParams(p.data(), p.size(), d);
  EXPECT_EQ(d.perf_events.size(), 64u);
  EXPECT_EQ(d.iothreads.size(), 256u);
  ASSERT_TRUE(d.dirty_rate);
  EXPECT_FALSE(d.dirty_rate->calc_status);  // not a libvirt status
  EXPECT_FALSE(d.dirty_rate->calc_period_seconds);
}

TEST(DomainXml, ReadsOsTypeAndUniqueDeviceTargets) {
  const char* xml = R"(<domain type='kvm'>
    <name>a</name>
    <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
    <devices>
      <disk type='file'><source file='/img/a.qcow2'/><target dev='vda'/></disk>
      <disk type='block'><source dev='/dev/sdb'/><target dev='vdb'/></disk>
      <disk type='file'><source file='/img/dup.qcow2'/><target dev='vda'/></disk>
      <disk type='file' device='cdrom'><target dev='sda'/></disk>
      <interface type='network'><target dev='vnet3'/></interface>
      <interface type='network'/>
    </devices>
  </domain>)";
  DomainXmlInfo info;
  ASSERT_TRUE(ParseDomainXml(xml, info));
  EXPECT_EQ(info.os_type, "hvm");
  EXPECT_EQ(info.os_arch, "x86_64");
  EXPECT_EQ(info.os_machine, "pc-q35-7.2");
  ASSERT_EQ(info.disks.size(), 3u);
  EXPECT_EQ(info.disks[0].target, "vda");
  EXPECT_EQ(info.disks[0].source, "/img/a.qcow2");
  EXPECT_EQ(info.disks[1].source, "/dev/sdb");
  EXPECT_EQ(info.disks[2].target, "sda");
  EXPECT_EQ(info.disks[2].source, "");
  EXPECT_EQ(info.interfaces, std::vector<std::string>{"vnet3"});
}

TEST(DomainXml, RejectsNonDomainXml) {
  DomainXmlInfo info;
  EXPECT_FALSE(ParseDomainXml("<domain><name>", info));
  EXPECT_FALSE(ParseDomainXml("<network/>", info));
}

}  // namespace
}  // namespace virtscale
