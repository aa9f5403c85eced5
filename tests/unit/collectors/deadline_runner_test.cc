#include "collectors/deadline_runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

namespace virtscale {
namespace {

using std::chrono::milliseconds;

TEST(DeadlineRunner, RunsEveryTaskAndReportsThemFinished) {
  auto stuck = std::make_shared<StuckCalls>();
  auto count = std::make_shared<std::atomic<int>>(0);
  std::vector<DeadlineTask> tasks;
  for (int i = 0; i < 50; ++i) {
    tasks.push_back({{"d" + std::to_string(i)}, [count] { count->fetch_add(1); }});
  }
  DeadlineRunResult r = RunWithDeadlines(std::move(tasks), 4, std::chrono::seconds(30), stuck);
  EXPECT_EQ(count->load(), 50);
  EXPECT_EQ(r.timed_out, 0);
  ASSERT_EQ(r.finished.size(), 50u);
  for (bool f : r.finished) EXPECT_TRUE(f);
  EXPECT_EQ(stuck->size(), 0u);
}

TEST(DeadlineRunner, HungTaskIsAbandonedOthersFinishAndKeyStaysStuckUntilItReturns) {
  auto stuck = std::make_shared<StuckCalls>();
  auto release = std::make_shared<std::promise<void>>();
  std::shared_future<void> released = release->get_future().share();
  auto returned = std::make_shared<std::promise<void>>();
  std::future<void> hung_returned = returned->get_future();
  auto count = std::make_shared<std::atomic<int>>(0);

  std::vector<DeadlineTask> tasks;
  tasks.push_back({{"hung-uuid"}, [released, returned] {
                     released.wait();  // a libvirt call that never comes back (until released)
                     returned->set_value();
                   }});
  for (int i = 0; i < 20; ++i) {
    tasks.push_back({{"ok-" + std::to_string(i)}, [count] { count->fetch_add(1); }});
  }
  // One worker only: the other tasks can finish only if the hung worker is replaced.
  DeadlineRunResult r = RunWithDeadlines(std::move(tasks), 1, milliseconds(100), stuck);
  EXPECT_EQ(r.timed_out, 1);
  EXPECT_FALSE(r.finished[0]);
  for (size_t i = 1; i < r.finished.size(); ++i) EXPECT_TRUE(r.finished[i]);
  EXPECT_EQ(count->load(), 20);
  EXPECT_TRUE(stuck->Contains("hung-uuid"));
  EXPECT_FALSE(stuck->Contains("ok-0"));

  release->set_value();
  hung_returned.wait();
  // The abandoned worker removes its key right after the call returns.
  for (int i = 0; i < 500 && stuck->Contains("hung-uuid"); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_FALSE(stuck->Contains("hung-uuid"));
}

TEST(DeadlineRunner, ThrowingTaskCountsAsFinished) {
  auto stuck = std::make_shared<StuckCalls>();
  std::vector<DeadlineTask> tasks;
  tasks.push_back({{"a"}, [] { throw std::runtime_error("boom"); }});
  DeadlineRunResult r = RunWithDeadlines(std::move(tasks), 2, std::chrono::seconds(5), stuck);
  ASSERT_EQ(r.finished.size(), 1u);
  EXPECT_TRUE(r.finished[0]);
  EXPECT_EQ(r.timed_out, 0);
}

TEST(StuckCalls, CountsRepeatedKeys) {
  StuckCalls s;
  s.Add({"a", "a", "b"});
  EXPECT_EQ(s.size(), 3u);
  s.Remove({"a"});
  EXPECT_TRUE(s.Contains("a"));
  s.Remove({"a", "b"});
  EXPECT_FALSE(s.Contains("a"));
  EXPECT_EQ(s.size(), 0u);
}

}  // namespace
}  // namespace virtscale
