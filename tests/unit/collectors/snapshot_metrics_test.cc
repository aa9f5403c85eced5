#include "collectors/snapshot_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>

#include "common/utf8.h"

namespace virtscale {
namespace {

using prometheus::MetricFamily;

Snapshot LiteralSnapshot() {
  Snapshot s;
  s.libvirt_up = true;
  s.duration_seconds = 0.25;
  s.taken_at = std::chrono::system_clock::time_point(std::chrono::seconds(1764194400));
  s.taken_at_steady = std::chrono::steady_clock::time_point(std::chrono::seconds(1000));
  s.host.cpus = 16;
  s.host.memory_total_bytes = 64ULL << 30;
  s.host.cpu_time_ns = {{"user", 2'500'000'000ULL}, {"system", 1'000'000'000ULL}};
  s.collectors = {{"domains", 0.2, true}, {"host", 0.01, false}, {"storage_pools", 0.03, true}};
  s.storage_pools = {{.name = "default",
                      .type = "dir",
                      .state = StoragePoolState::kRunning,
                      .capacity_bytes = 100ULL << 30,
                      .allocation_bytes = 1ULL << 30,
                      .available_bytes = 99ULL << 30},
                     {.name = "images",
                      .type = "logical",
                      .state = StoragePoolState::kInactive,
                      .capacity_bytes = std::nullopt,
                      .allocation_bytes = std::nullopt,
                      .available_bytes = std::nullopt}};

  DomainStats web;
  web.name = "web-1";
  web.uuid = "6695eb01-f6a4-8304-79aa-97f2502e193f";
  web.os_type = "hvm";
  web.os_arch = "x86_64";
  web.state = DomainState::kRunning;
  web.state_reason = 1;  // VIR_DOMAIN_RUNNING_BOOTED
  web.active = true;
  web.virtual_cpus = 2;
  web.max_memory_bytes = 1ULL << 30;
  web.memory_bytes = 512ULL << 20;
  web.cpu_time_ns = 1'500'000'000ULL;
  web.memory.available = 1000;
  web.memory.major_fault = 3;
  web.vcpus = {{0, 1, 700'000'000ULL, std::nullopt, 2'000'000ULL}};
  BlockStats vda;
  vda.name = "vda";
  vda.path = "/img/web-1.qcow2";
  vda.rd_bytes = 4096;
  vda.rd_times_ns = 3'000'000'000ULL;
  vda.capacity = 10ULL << 30;
  web.blocks = {vda};
  InterfaceStats vnet;
  vnet.name = "vnet0";
  vnet.rx_bytes = 123;
  web.interfaces = {vnet};
  web.metadata = VirtscaleMetadata{"web", "/etc/virtscale/templates/web.xml", 1764194000, "", ""};
  web.cpu_utilization = 0.5;
  web.memory_utilization = 0.25;
  web.errors = {"memory_stats"};

  DomainStats idle;
  idle.name = "idle";
  idle.uuid = "11111111-2222-3333-4444-555555555555";
  idle.state = DomainState::kShutoff;
  idle.state_reason = 2;  // VIR_DOMAIN_SHUTOFF_DESTROYED
  idle.timed_out = true;
  s.domains = {idle, web};
  return s;
}

std::string Serialize(const std::vector<MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

bool Contains(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(Exposition, SnapshotSeriesUseInovexNamesBaseUnitsAndLabels) {
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(LiteralSnapshot(), families);
  std::string text = Serialize(families);

  EXPECT_TRUE(Contains(text, "libvirt_up 1"));
  EXPECT_TRUE(Contains(text, "libvirt_domains 2"));
  EXPECT_TRUE(Contains(text,
                       "libvirt_domain_info{domain=\"web-1\",uuid=\"6695eb01-f6a4-8304-79aa-"
                       "97f2502e193f\",os_type=\"hvm\",os_type_arch=\"x86_64\",os_type_machine="
                       "\"\"} 1"));
  EXPECT_TRUE(Contains(
      text, "libvirt_domain_info_state{domain=\"web-1\",state_desc=\"the domain is running\"} 1"));
  EXPECT_TRUE(Contains(
      text, "libvirt_domain_info_state{domain=\"idle\",state_desc=\"the domain is shut off\"} 5"));
  // Inactive domains too, and each reason named in its own state's enumeration.
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_info_state_reason{domain=\"web-1\",reason=\"booted\"} 1"));
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_info_state_reason{domain=\"idle\",reason=\"destroyed\"} 2"));
  EXPECT_TRUE(Contains(text, "libvirt_domain_info_cpu_time_seconds_total{domain=\"web-1\"} 1.5"));
  EXPECT_TRUE(Contains(text, "libvirt_domain_info_virtual_cpus{domain=\"web-1\"} 2"));
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_info_maximum_memory_bytes{domain=\"web-1\"} 1073741824"));
  EXPECT_TRUE(Contains(text, "libvirt_domain_info_memory_usage_bytes{domain=\"web-1\"} 536870912"));
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_vcpu_time_seconds_total{domain=\"web-1\",vcpu=\"0\"} 0.7"));
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_vcpu_delay_seconds_total{domain=\"web-1\",vcpu=\"0\"} 0.002"));
  EXPECT_TRUE(Contains(text, "libvirt_domain_memory_stats_available_bytes{domain=\"web-1\"} 1000"));
  EXPECT_TRUE(Contains(text, "libvirt_domain_memory_stats_major_fault_total{domain=\"web-1\"} 3"));
  EXPECT_TRUE(Contains(
      text,
      "libvirt_domain_block_stats_read_bytes_total{domain=\"web-1\",target_device=\"vda\"} 4096"));
  EXPECT_TRUE(Contains(
      text,
      "libvirt_domain_block_stats_read_time_seconds_total{domain=\"web-1\",target_device=\"vda\"} "
      "3"));
  EXPECT_TRUE(Contains(text,
                       "libvirt_domain_block_stats_info{domain=\"web-1\",target_device=\"vda\","
                       "source_file=\"/img/web-1.qcow2\"} 1"));
  EXPECT_TRUE(Contains(text,
                       "libvirt_domain_interface_stats_receive_bytes_total{domain=\"web-1\","
                       "target_device=\"vnet0\"} 123"));
  EXPECT_TRUE(Contains(text,
                       "virtscale_domain_metadata_info{domain=\"web-1\",group=\"web\",template=\"/"
                       "etc/virtscale/templates/web.xml\"} 1"));
  EXPECT_TRUE(Contains(text, "virtscale_domain_cpu_utilization_ratio{domain=\"web-1\"} 0.5"));
  EXPECT_TRUE(Contains(text, "virtscale_domain_memory_utilization_ratio{domain=\"web-1\"} 0.25"));
  EXPECT_TRUE(Contains(text, "virtscale_domain_timed_out{domain=\"idle\"} 1"));
  EXPECT_TRUE(Contains(text, "virtscale_domain_timed_out{domain=\"web-1\"} 0"));
  EXPECT_TRUE(Contains(text, "virtscale_domain_errors{domain=\"web-1\",call=\"memory_stats\"} 1"));
  EXPECT_TRUE(Contains(text, "libvirt_node_cpus 16"));
  EXPECT_TRUE(Contains(text, "libvirt_node_cpu_seconds_total{mode=\"user\"} 2.5"));
  EXPECT_TRUE(Contains(text, "virtscale_sample_duration_seconds 0.25"));
  EXPECT_TRUE(Contains(text, "virtscale_scrape_collector_success{collector=\"host\"} 0"));
  EXPECT_TRUE(
      Contains(text, "virtscale_scrape_collector_duration_seconds{collector=\"domains\"} 0.2"));
  EXPECT_TRUE(Contains(text, "# TYPE libvirt_domain_info_cpu_time_seconds_total counter"));
  EXPECT_TRUE(Contains(text, "# TYPE libvirt_domain_info_virtual_cpus gauge"));
}

TEST(Exposition, OptionalGroupsJobsAndTheFullBalloonSetInBaseUnits) {
  Snapshot s = LiteralSnapshot();
  DomainStats& web = s.domains[1];
  ASSERT_EQ(web.name, "web-1");
  web.memory.hugetlb_pgalloc = 12;
  web.memory.last_update_unix = 1764194000;
  web.blocks[0].threshold = 8ULL << 30;
  web.perf_events = {{"cpu_cycles", 1000}, {"cmt", 65536}, {"mbml", 2048}, {"task_clock", 5}};
  web.iothread_count = 1;
  web.iothreads = {{.id = 1, .poll_max_ns = 32'768, .poll_grow = 0, .poll_shrink = std::nullopt}};
  web.dirty_rate = DirtyRateStats{.calc_status = 2,
                                  .calc_start_time = 1764194300,
                                  .calc_period_seconds = 1,
                                  .mebibytes_per_second = 3,
                                  .vcpu_mebibytes_per_second = {{0, 2}}};
  JobStats job;
  job.type = VIR_DOMAIN_JOB_UNBOUNDED;
  job.operation = VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT;
  job.time_elapsed_ms = 2500;
  job.data_processed = 1ULL << 20;
  job.disk_remaining = 1ULL << 21;
  job.memory_dirty_rate = 250;
  job.memory_page_size = 4096;
  web.job = job;
  DomainStats measuring;
  measuring.name = "measuring";
  measuring.dirty_rate = DirtyRateStats{.calc_status = 1,
                                        .calc_start_time = 1764194300,
                                        .calc_period_seconds = 5,
                                        .mebibytes_per_second = 0,
                                        .vcpu_mebibytes_per_second = {}};
  s.domains.push_back(measuring);

  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(s, families);
  std::string text = Serialize(families);
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_memory_stats_hugetlb_pgalloc_total{domain=\"web-1\"} 12"));
  EXPECT_TRUE(Contains(
      text,
      "libvirt_domain_memory_stats_last_update_timestamp_seconds{domain=\"web-1\"} 1764194000"));
  EXPECT_TRUE(Contains(text,
                       "libvirt_domain_block_stats_threshold_bytes{domain=\"web-1\",target_device="
                       "\"vda\"} 8589934592"));
  EXPECT_TRUE(Contains(
      text, "libvirt_domain_perf_events_total{domain=\"web-1\",event=\"cpu_cycles\"} 1000"));
  EXPECT_TRUE(Contains(
      text,
      "libvirt_domain_perf_clock_seconds_total{domain=\"web-1\",clock=\"task_clock\"} 5e-09"));
  EXPECT_TRUE(Contains(text, "libvirt_domain_perf_cache_occupancy_bytes{domain=\"web-1\"} 65536"));
  EXPECT_TRUE(Contains(text,
                       "libvirt_domain_perf_memory_bandwidth_bytes_per_second{domain=\"web-1\","
                       "scope=\"local\"} 2048"));
  EXPECT_EQ(text.find("event=\"cmt\""), std::string::npos);
  EXPECT_TRUE(Contains(text, "libvirt_domain_iothreads{domain=\"web-1\"} 1"));
  EXPECT_TRUE(Contains(
      text,
      "libvirt_domain_iothread_poll_max_seconds{domain=\"web-1\",iothread=\"1\"} 3.2768e-05"));
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_iothread_poll_grow{domain=\"web-1\",iothread=\"1\"} 0"));
  EXPECT_EQ(text.find("libvirt_domain_iothread_poll_shrink{"), std::string::npos);
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_dirty_rate_bytes_per_second{domain=\"web-1\"} 3145728"));
  EXPECT_TRUE(Contains(
      text,
      "libvirt_domain_dirty_rate_vcpu_bytes_per_second{domain=\"web-1\",vcpu=\"0\"} 2097152"));
  // While a calculation measures, its status shows and no rate does.
  EXPECT_TRUE(Contains(text, "libvirt_domain_dirty_rate_calc_status{domain=\"measuring\"} 1"));
  EXPECT_EQ(text.find("libvirt_domain_dirty_rate_bytes_per_second{domain=\"measuring\"}"),
            std::string::npos);
  EXPECT_TRUE(Contains(text,
                       "libvirt_domain_job_info{domain=\"web-1\",type=\"unbounded\",operation="
                       "\"migration_out\"} 1"));
  EXPECT_TRUE(Contains(text, "libvirt_domain_job_info_time_elapsed_seconds{domain=\"web-1\"} 2.5"));
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_job_info_data_processed_bytes{domain=\"web-1\"} 1048576"));
  EXPECT_TRUE(Contains(
      text, "libvirt_domain_job_info_memory_dirty_rate_pages_per_second{domain=\"web-1\"} 250"));
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_job_info_memory_page_size_bytes{domain=\"web-1\"} 4096"));
  // inovex's forms: the type as a code, disk copies as "file".
  EXPECT_TRUE(Contains(text, "libvirt_domain_job_info_type{domain=\"web-1\"} 2"));
  EXPECT_TRUE(
      Contains(text, "libvirt_domain_job_info_file_remaining_bytes{domain=\"web-1\"} 2097152"));
  // Only what the job reported: a migration without an estimate has no remaining time.
  EXPECT_EQ(text.find("libvirt_domain_job_info_time_remaining_seconds"), std::string::npos);
  EXPECT_EQ(text.find("libvirt_domain_job_info{domain=\"idle\""), std::string::npos);
}

TEST(Exposition, StoragePoolsUseInovexNamesWithSizesOnlyWhileMeasured) {
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(LiteralSnapshot(), families);
  std::string text = Serialize(families);
  EXPECT_TRUE(Contains(
      text,
      "libvirt_storage_pool_info{storage_pool=\"default\",type=\"dir\",state=\"running\"} 1"));
  EXPECT_TRUE(Contains(
      text,
      "libvirt_storage_pool_info{storage_pool=\"images\",type=\"logical\",state=\"inactive\"} 1"));
  EXPECT_TRUE(Contains(text, "libvirt_storage_pool_state{storage_pool=\"default\"} 2"));
  EXPECT_TRUE(Contains(text, "libvirt_storage_pool_state{storage_pool=\"images\"} 0"));
  EXPECT_TRUE(
      Contains(text, "libvirt_storage_pool_capacity_bytes{storage_pool=\"default\"} 107374182400"));
  EXPECT_TRUE(
      Contains(text, "libvirt_storage_pool_allocation_bytes{storage_pool=\"default\"} 1073741824"));
  EXPECT_TRUE(Contains(
      text, "libvirt_storage_pool_available_bytes{storage_pool=\"default\"} 106300440576"));
  EXPECT_TRUE(Contains(text, "# TYPE libvirt_storage_pool_capacity_bytes gauge"));
  EXPECT_TRUE(Contains(text, "virtscale_scrape_collector_success{collector=\"storage_pools\"} 1"));
  // An inactive pool's sizes are not measured: no made-up zeros.
  EXPECT_EQ(text.find("_bytes{storage_pool=\"images\"}"), std::string::npos);
}

TEST(Exposition, StoragePoolStateCodeLibvirtMayAddLaterIsUnknown) {
  Snapshot s;
  s.storage_pools = {{.name = "future",
                      .type = "zfs",
                      .state = static_cast<StoragePoolState>(7),
                      .capacity_bytes = 1,
                      .allocation_bytes = 0,
                      .available_bytes = 1}};
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(s, families);
  std::string text = Serialize(families);
  EXPECT_TRUE(Contains(
      text, "libvirt_storage_pool_info{storage_pool=\"future\",type=\"zfs\",state=\"unknown\"} 1"));
  EXPECT_STREQ(StoragePoolStateName(StoragePoolState::kBuilding), "building");
  EXPECT_STREQ(StoragePoolStateName(StoragePoolState::kDegraded), "degraded");
  EXPECT_STREQ(StoragePoolStateName(StoragePoolState::kInaccessible), "inaccessible");
  EXPECT_STREQ(StoragePoolStateName(static_cast<StoragePoolState>(-1)), "unknown");
}

TEST(Exposition, NonUtf8StoragePoolNamesBecomeValidLabelsWithoutDuplicates) {
  Snapshot s;
  // Two names that differ only in invalid bytes repair to the same label.
  for (const char* name : {"caf\xe9", "caf\xff"}) {
    s.storage_pools.push_back({.name = name,
                               .type = "dir\xc3",
                               .state = StoragePoolState::kRunning,
                               .capacity_bytes = 10,
                               .allocation_bytes = 4,
                               .available_bytes = 6});
  }
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(s, families);
  std::string text = Serialize(families);
  EXPECT_TRUE(Contains(
      text,
      "libvirt_storage_pool_info{storage_pool=\"caf\xef\xbf\xbd\",type=\"dir\xef\xbf\xbd\","
      "state=\"running\"} 1"));
  EXPECT_TRUE(
      Contains(text, "libvirt_storage_pool_capacity_bytes{storage_pool=\"caf\xef\xbf\xbd\"} 10"));
  for (const MetricFamily& f : families) {
    if (f.name.starts_with("libvirt_storage_pool_")) {
      EXPECT_EQ(f.metric.size(), 1u) << f.name;
    }
  }
  EXPECT_TRUE(IsValidUtf8(text));
  EXPECT_EQ(text.find("\xe9"), std::string::npos);
  EXPECT_EQ(text.find("\xff"), std::string::npos);
}

TEST(Exposition, AbsentValuesProduceNoSeriesAndEveryFamilyHasHelpAndSamples) {
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(LiteralSnapshot(), families);
  std::set<std::string> names;
  for (const MetricFamily& f : families) {
    EXPECT_FALSE(f.help.empty()) << f.name;
    EXPECT_FALSE(f.metric.empty()) << f.name;
    EXPECT_TRUE(names.insert(f.name).second) << "family twice: " << f.name;
    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_TRUE(f.name.ends_with("_total")) << f.name;
    }
    for (const auto& m : f.metric) EXPECT_EQ(m.timestamp_ms, 0) << f.name;
  }
  std::string text = Serialize(families);
  // "idle" has no stats and "web-1" no swap figures: no made-up zeros.
  EXPECT_EQ(text.find("libvirt_domain_info_virtual_cpus{domain=\"idle\"}"), std::string::npos);
  EXPECT_EQ(text.find("libvirt_domain_memory_stats_swap_in_bytes"), std::string::npos);
  EXPECT_EQ(text.find("libvirt_node_memory_free_bytes"), std::string::npos);
  EXPECT_EQ(text.find("virtscale_domain_cpu_utilization_ratio{domain=\"idle\"}"),
            std::string::npos);
}

TEST(Exposition, VanishedDomainVanishesFromTheNextSnapshot) {
  Snapshot s = LiteralSnapshot();
  s.domains.erase(s.domains.begin() + 1);  // web-1 undefined
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(s, families);
  std::string text = Serialize(families);
  EXPECT_EQ(text.find("web-1"), std::string::npos);
  EXPECT_TRUE(Contains(text, "libvirt_domains 1"));
}

TEST(Exposition, LibvirtDownSaysSoWithNoDomains) {
  Snapshot s;
  s.collectors = {{"domains", 0, false}, {"host", 0, false}};
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(s, families);
  std::string text = Serialize(families);
  EXPECT_TRUE(Contains(text, "libvirt_up 0"));
  EXPECT_TRUE(Contains(text, "libvirt_domains 0"));
  EXPECT_TRUE(Contains(text, "virtscale_scrape_collector_success{collector=\"domains\"} 0"));
  EXPECT_EQ(text.find("libvirt_storage_pool_"), std::string::npos);
}

TEST(Exposition, SamplerSeriesComputeAgeAtScrapeTimeAndListEveryEvent) {
  auto snap = std::make_shared<Snapshot>(LiteralSnapshot());
  SamplerCounters c;
  c.samples_total = 7;
  c.domain_events_total = {{"started", 3}};
  c.timed_out_calls_total = 2;
  std::vector<MetricFamily> families;
  AppendSamplerFamilies(snap, c, snap->taken_at_steady + std::chrono::milliseconds(1500), families);
  std::string text = Serialize(families);
  EXPECT_TRUE(Contains(text, "virtscale_sample_age_seconds 1.5"));
  EXPECT_TRUE(Contains(text, "virtscale_samples_total 7"));
  EXPECT_TRUE(Contains(text, "virtscale_domain_events_total{event=\"started\"} 3"));
  EXPECT_TRUE(Contains(text, "virtscale_domain_events_total{event=\"crashed\"} 0"));
  EXPECT_TRUE(Contains(text, "virtscale_call_timeouts_total 2"));

  families.clear();
  AppendSamplerFamilies(nullptr, SamplerCounters{}, std::chrono::steady_clock::now(), families);
  EXPECT_EQ(Serialize(families).find("virtscale_sample_age_seconds"), std::string::npos);
}

TEST(Exposition, StateReasonsAreNamedPerStateAndUnknownCodesSayUnknown) {
  Snapshot s;
  s.libvirt_up = true;
  auto domain = [](const char* name, DomainState state, int reason) {
    DomainStats d;
    d.name = name;
    d.state = state;
    d.state_reason = reason;
    return d;
  };
  s.domains = {domain("crashed", DomainState::kCrashed, 1),
               domain("io", DomainState::kPaused, 5),
               domain("daemon", DomainState::kShutoff, 8),
               domain("future", DomainState::kShutoff, 99),
               domain("negative", DomainState::kRunning, -1),
               domain("suspended", DomainState::kPmSuspended, 0)};
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(s, families);
  const std::string text = Serialize(families);
  for (const char* line :
       {"libvirt_domain_info_state_reason{domain=\"crashed\",reason=\"panicked\"} 1",
        "libvirt_domain_info_state_reason{domain=\"io\",reason=\"ioerror\"} 5",
        "libvirt_domain_info_state_reason{domain=\"daemon\",reason=\"daemon\"} 8",
        "libvirt_domain_info_state_reason{domain=\"future\",reason=\"unknown\"} 99",
        "libvirt_domain_info_state_reason{domain=\"negative\",reason=\"unknown\"} -1",
        "libvirt_domain_info_state_reason{domain=\"suspended\",reason=\"unknown\"} 0"}) {
    EXPECT_TRUE(Contains(text, line)) << line << "\n" << text;
  }
}

// /metrics serves SnapshotText; the families are what tests and Collectables
// read. Both must say the same, byte for byte.
TEST(Exposition, SnapshotTextIsWhatTheSerializerWritesOfTheFamilies) {
  Snapshot s = LiteralSnapshot();
  s.metadata_label_names = {"project"};
  for (int i = 0; i < 40; ++i) {
    DomainStats d = s.domains[1];
    d.name = "vm \"" + std::to_string(i) + "\\\n";  // every character the format escapes
    d.uuid = std::to_string(i);
    d.metadata_labels = {i % 2 ? "tenant\"a" : ""};
    d.cpu_utilization = 1.0 / (i + 3);
    d.cpu_time_ns = (1ULL << 60) + static_cast<uint64_t>(i);  // beyond 16 digits
    s.domains.push_back(d);
  }
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(s, families);
  const std::string text = SnapshotText(s);
  EXPECT_EQ(text, Serialize(families));
  EXPECT_TRUE(Contains(text, "libvirt_up 1")) << text.substr(0, 400);
  EXPECT_NE(text.find("domain=\"vm \\\"3\\\\\\n\""), std::string::npos);
}

TEST(Exposition, PromtoolAcceptsTheExposition) {
  // promtool comes with scripts/install-deps.sh; its absence is a failure, not a skip.
  ASSERT_EQ(std::system("command -v promtool >/dev/null 2>&1"), 0)
      << "promtool not installed: run scripts/install-deps.sh";
  std::vector<MetricFamily> families;
  AppendSnapshotFamilies(LiteralSnapshot(), families);
  AppendSamplerFamilies(std::make_shared<Snapshot>(LiteralSnapshot()), SamplerCounters{},
                        std::chrono::steady_clock::now(), families);
  std::string path = ::testing::TempDir() + "virtscale_exposition_test.prom";
  {
    std::ofstream out(path);
    out << Serialize(families);
  }
  std::string output_path = path + ".out";
  int rc =
      std::system(("promtool check metrics < " + path + " > " + output_path + " 2>&1").c_str());
  std::ifstream in(output_path);
  std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << output;
  EXPECT_EQ(output, "") << output;
  std::remove(path.c_str());
  std::remove(output_path.c_str());
}

}  // namespace
}  // namespace virtscale
