#include "collectors/call_errors.h"

#include <gtest/gtest.h>
#include <libvirt/virterror.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace virtscale {
namespace {

// Sends the default logger to a string for the life of the fixture.
class CallErrorLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  void TearDown() override { spdlog::set_default_logger(previous_); }

  std::vector<std::string> TakeLines() {
    std::vector<std::string> lines;
    std::string line;
    std::istringstream in(out_.str());
    while (std::getline(in, line)) lines.push_back(line);
    out_.str("");
    return lines;
  }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

LibvirtError Error(int code, std::string message) {
  LibvirtError e;
  e.code = code;
  e.message = std::move(message);
  return e;
}

TEST_F(CallErrorLogTest, LogsOnceWhenAPairStartsAndOnceWhenItEnds) {
  CallErrorLog log;
  const LibvirtError denied = Error(VIR_ERR_OPERATION_DENIED, "access denied: pool list");
  for (int sample = 0; sample < 5; ++sample) {
    log.Record("list_storage_pools", denied, "");
    log.EndSample();
  }
  std::vector<std::string> lines = TakeLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("level=warn"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("libvirt call failing"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("call=list_storage_pools"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("code=29"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("access denied: pool list"), std::string::npos) << lines[0];

  log.EndSample();  // a sample without the failure
  log.EndSample();
  lines = TakeLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("level=warn"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("libvirt call no longer failing"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("call=list_storage_pools"), std::string::npos) << lines[0];

  EXPECT_EQ(
      log.Totals(),
      (std::map<CallErrorKey, uint64_t>{{{"list_storage_pools", VIR_ERR_OPERATION_DENIED}, 5}}));
}

TEST_F(CallErrorLogTest, ANewCodeOfTheSameCallIsItsOwnPair) {
  CallErrorLog log;
  log.Record("memory_stats", Error(VIR_ERR_OPERATION_TIMEOUT, "timed out"), "web-1");
  log.Record("memory_stats", Error(VIR_ERR_OPERATION_TIMEOUT, "timed out"), "web-2");
  log.EndSample();
  log.Record("memory_stats", Error(VIR_ERR_SYSTEM_ERROR, "cgroup gone"), "web-1");
  log.EndSample();
  std::vector<std::string> lines = TakeLines();
  ASSERT_EQ(lines.size(), 3u);
  // First sample: one line for two failures, naming the first domain and the count.
  EXPECT_NE(lines[0].find("subject=web-1"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("failures=2"), std::string::npos) << lines[0];
  // Second: the new code starts, the old one ends.
  EXPECT_NE(lines[1].find("libvirt call failing"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("cgroup gone"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("no longer failing"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("code=68"), std::string::npos) << lines[2];
  EXPECT_EQ(log.Totals().at({"memory_stats", VIR_ERR_OPERATION_TIMEOUT}), 2u);
  EXPECT_EQ(log.Totals().at({"memory_stats", VIR_ERR_SYSTEM_ERROR}), 1u);
}

TEST_F(CallErrorLogTest, RecordIsSafeFromManyThreads) {
  CallErrorLog log;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log] {
      for (int i = 0; i < 1000; ++i) log.Record("vcpus", Error(VIR_ERR_INTERNAL_ERROR, "x"), "d");
    });
  }
  for (std::thread& t : threads) t.join();
  log.EndSample();
  EXPECT_EQ(log.Totals().at({"vcpus", VIR_ERR_INTERNAL_ERROR}), 4000u);
  std::vector<std::string> lines = TakeLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("failures=4000"), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace virtscale
