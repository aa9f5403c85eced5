#include "collectors/domain_jobs.h"

#include <gtest/gtest.h>

#include "collectors/libvirt_connection.h"
#include "tests/unit/collectors/typed_params.h"

namespace virtscale {
namespace {

TEST(DomainJobs, ParsesAMigrationJobInLibvirtsUnits) {
  Params p;
  p.I(VIR_DOMAIN_JOB_OPERATION, VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT)
      .U(VIR_DOMAIN_JOB_TIME_ELAPSED, 2500)
      .U(VIR_DOMAIN_JOB_DATA_TOTAL, 1000)
      .U(VIR_DOMAIN_JOB_DATA_PROCESSED, 600)
      .U(VIR_DOMAIN_JOB_DATA_REMAINING, 400)
      .U(VIR_DOMAIN_JOB_DISK_TOTAL, 300)
      .U(VIR_DOMAIN_JOB_DISK_PROCESSED, 100)
      .U(VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, 250)
      .U(VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, 4096)
      .U(VIR_DOMAIN_JOB_MEMORY_ITERATION, 3)
      .U(VIR_DOMAIN_JOB_MEMORY_BPS, 1 << 20)
      .S("unrelated", "x");
  std::optional<JobStats> job = ParseJobStats(VIR_DOMAIN_JOB_UNBOUNDED, p.data(), p.size());
  ASSERT_TRUE(job);
  EXPECT_EQ(job->type, VIR_DOMAIN_JOB_UNBOUNDED);
  EXPECT_EQ(job->operation, VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT);
  EXPECT_EQ(job->time_elapsed_ms, 2500u);
  EXPECT_FALSE(job->time_remaining_ms);
  EXPECT_EQ(job->data_total, 1000u);
  EXPECT_EQ(job->data_processed, 600u);
  EXPECT_EQ(job->data_remaining, 400u);
  EXPECT_EQ(job->disk_total, 300u);
  EXPECT_EQ(job->disk_processed, 100u);
  EXPECT_FALSE(job->disk_remaining);
  EXPECT_EQ(job->memory_dirty_rate, 250u);
  EXPECT_EQ(job->memory_page_size, 4096u);
  EXPECT_EQ(job->memory_iteration, 3u);
  EXPECT_EQ(job->memory_bps, 1u << 20);
  EXPECT_STREQ(JobTypeName(job->type), "unbounded");
  EXPECT_STREQ(JobOperationName(job->operation), "migration_out");
}

TEST(DomainJobs, OnlyAJobInProgressIsKeptAndAbsurdValuesAreDropped) {
  Params p;
  p.I(VIR_DOMAIN_JOB_TIME_ELAPSED, -5).I(VIR_DOMAIN_JOB_OPERATION, 100000);
  for (int type :
       std::initializer_list<int>{VIR_DOMAIN_JOB_NONE, VIR_DOMAIN_JOB_COMPLETED,
                                  VIR_DOMAIN_JOB_FAILED, VIR_DOMAIN_JOB_CANCELLED, 99, -1}) {
    EXPECT_FALSE(ParseJobStats(type, p.data(), p.size())) << type;
  }
  std::optional<JobStats> job = ParseJobStats(VIR_DOMAIN_JOB_BOUNDED, p.data(), p.size());
  ASSERT_TRUE(job);
  EXPECT_FALSE(job->time_elapsed_ms);  // negative: not a time
  EXPECT_EQ(job->operation, 0);        // out of range: unknown
  EXPECT_STREQ(JobOperationName(100000), "unknown");
  EXPECT_STREQ(JobOperationName(-1), "unknown");
  EXPECT_STREQ(JobTypeName(7), "unknown");
  EXPECT_TRUE(ParseJobStats(VIR_DOMAIN_JOB_BOUNDED, nullptr, 0));
}

// The test driver has no job API: the collector succeeds, finds no job, and
// does not ask again.
TEST(DomainJobs, ADriverWithoutJobsIsAskedOnce) {
  LibvirtConnection conn({.uri = "test:///default"});
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(std::chrono::seconds(10)));
  ConnectionRef c = conn.Acquire();
  ASSERT_NE(c, nullptr);
  virDomainPtr raw = virDomainLookupByName(c.get(), "test");
  ASSERT_NE(raw, nullptr);
  std::shared_ptr<virDomain> dom(raw, [](virDomainPtr d) { virDomainFree(d); });
  EXPECT_EQ(GetDomainJob(dom.get()).outcome, DomainJobCall::kUnsupported);

  std::vector<DomainStats> domains(1);
  domains[0].name = "test";
  domains[0].uuid = "uuid-of-test";
  std::atomic<bool> unsupported{false};
  CallErrorLog log;
  auto stuck = std::make_shared<StuckCalls>();
  auto collect = [&](std::shared_ptr<virDomain> target) {
    std::vector<DeadlineTask> tasks;
    tasks.push_back({{"other"}, [] {}});  // a call of another collector in the same run
    JobCalls calls({{"uuid-of-test", std::move(target)}}, unsupported, tasks);
    DeadlineRunResult run = RunWithDeadlines(std::move(tasks), 2, std::chrono::seconds(5), stuck);
    return calls.Apply(run, unsupported, log, domains);
  };
  JobsCollectorResult r = collect(dom);
  EXPECT_TRUE(r.collector.success);
  EXPECT_EQ(r.collector.name, "jobs");
  EXPECT_TRUE(unsupported.load());
  EXPECT_FALSE(domains[0].job);
  EXPECT_TRUE(domains[0].errors.empty());
  EXPECT_TRUE(log.Totals().empty());

  // Asked again, a null domain would fail the call: it is not made.
  EXPECT_TRUE(collect(nullptr).collector.success);
  EXPECT_TRUE(domains[0].errors.empty());
  unsupported = false;
  EXPECT_FALSE(collect(nullptr).collector.success);
  EXPECT_EQ(domains[0].errors, std::vector<std::string>{"job_stats"});
  EXPECT_EQ(log.Totals().size(), 1u);
  conn.Stop();
}

}  // namespace
}  // namespace virtscale
