#include "common/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

namespace virtscale {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

SubprocessResult RunFor(const std::vector<std::string>& argv, Duration timeout = seconds(30)) {
  SubprocessOptions options;
  options.timeout = timeout;
  return RunSubprocess(argv, options);
}

// Gone, or a zombie waiting for its new parent to reap it.
bool ProcessDead(const std::string& pid) {
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

TEST(Subprocess, ExitZeroWithOutput) {
  SubprocessResult r = RunFor({"sh", "-c", "echo out; echo err >&2"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.outcome, SubprocessOutcome::kExited);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "out\nerr\n");
  EXPECT_EQ(r.Describe(), "exit status 0");
}

TEST(Subprocess, ExitThree) {
  SubprocessResult r = RunFor({"sh", "-c", "echo failing; exit 3"});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.outcome, SubprocessOutcome::kExited);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.Describe(), "exit status 3");
  EXPECT_EQ(r.FirstLines(1, 100), "failing");
}

TEST(Subprocess, KilledBySignal) {
  SubprocessResult r = RunFor({"sh", "-c", "kill -9 $$"});
  EXPECT_EQ(r.outcome, SubprocessOutcome::kSignaled);
  EXPECT_EQ(r.signal, 9);
  EXPECT_EQ(r.Describe(), "killed by signal 9");
}

TEST(Subprocess, StdinIsEmptyAndNoOtherDescriptors) {
  // A descriptor without O_CLOEXEC must still not reach the child.
  const int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  // ls lists 0, 1, 2 and its own handle on the directory (3).
  SubprocessResult r = RunFor({"sh", "-c", "cat; ls /proc/self/fd"});
  ::close(leaked);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.output, "0\n1\n2\n3\n");
}

TEST(Subprocess, TimeoutKillsTheCommandAndItsChildren) {
  // The background sleep prints its pid, then both sleep far past the timeout.
  SubprocessResult r = RunFor({"sh", "-c", "sleep 60 & echo $!; sleep 60"}, milliseconds(300));
  EXPECT_EQ(r.outcome, SubprocessOutcome::kTimedOut);
  EXPECT_EQ(r.Describe(), "timed out after 300ms");
  const std::string child = r.FirstLines(1, 20);
  ASSERT_FALSE(child.empty());
  bool dead = false;
  // A guard against a hang, not a timing assertion.
  for (int i = 0; i < 500 && !(dead = ProcessDead(child)); ++i)
    std::this_thread::sleep_for(milliseconds(10));
  EXPECT_TRUE(dead) << "pid " << child << " survived the timeout";
}

TEST(Subprocess, SigtermIgnoredThenSigkill) {
  SubprocessOptions options;
  options.timeout = milliseconds(200);
  options.kill_grace = milliseconds(200);
  SubprocessResult r = RunSubprocess({"sh", "-c", "trap '' TERM; sleep 60"}, options);
  EXPECT_EQ(r.outcome, SubprocessOutcome::kTimedOut);
}

TEST(Subprocess, OutputCap) {
  SubprocessOptions options;
  options.max_output_bytes = 1000;
  SubprocessResult r = RunSubprocess({"sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a"}, options);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.output.size(), 1000u);
  EXPECT_EQ(r.output_truncated, 4000u);
}

TEST(Subprocess, FirstLinesIsBoundedUtf8) {
  SubprocessResult r;
  r.output = "one\ntwo\nthree\n";
  EXPECT_EQ(r.FirstLines(2, 100), "one\ntwo");
  EXPECT_EQ(r.FirstLines(10, 100), "one\ntwo\nthree");
  EXPECT_EQ(r.FirstLines(0, 100), "");
  r.output = "caf\xe9\n";
  EXPECT_EQ(r.FirstLines(1, 100), "caf\xef\xbf\xbd");
  r.output = std::string(50, 'x');
  EXPECT_EQ(r.FirstLines(1, 10), std::string(10, 'x') + "...");
}

TEST(Subprocess, EnvironmentIsAddedAndReplaces) {
  ::setenv("VIRTSCALE_TEST_KEPT", "kept", 1);
  ::setenv("VIRTSCALE_TEST_REPLACED", "old", 1);
  SubprocessOptions options;
  options.env = {{"VIRTSCALE_DOMAIN", "web-1"}, {"VIRTSCALE_TEST_REPLACED", "new"}};
  SubprocessResult r = RunSubprocess(
      {"sh", "-c", "echo $VIRTSCALE_DOMAIN $VIRTSCALE_TEST_KEPT $VIRTSCALE_TEST_REPLACED"},
      options);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.output, "web-1 kept new\n");
}

TEST(Subprocess, MissingBinary) {
  SubprocessResult r = RunFor({"/nope"});
  EXPECT_EQ(r.outcome, SubprocessOutcome::kSpawnError);
  EXPECT_EQ(r.Describe(), "exec: /nope: No such file or directory");
  EXPECT_EQ(RunFor({}).outcome, SubprocessOutcome::kSpawnError);
}

TEST(Subprocess, CancelFromAnotherThread) {
  Canceller cancel;
  SubprocessOptions options;
  options.timeout = seconds(60);
  options.canceller = &cancel;
  SubprocessResult r;
  std::thread runner([&] { r = RunSubprocess({"sh", "-c", "echo started; sleep 60"}, options); });
  std::this_thread::sleep_for(milliseconds(100));
  cancel.Cancel();
  runner.join();
  EXPECT_EQ(r.outcome, SubprocessOutcome::kCancelled);
  EXPECT_EQ(r.Describe(), "cancelled");
}

TEST(Subprocess, CancelledBeforeStart) {
  Canceller cancel;
  cancel.Cancel();
  cancel.Cancel();  // idempotent
  SubprocessOptions options;
  options.canceller = &cancel;
  EXPECT_EQ(RunSubprocess({"true"}, options).outcome, SubprocessOutcome::kCancelled);
}

TEST(Subprocess, ExitedCommandLeavingAChildDoesNotWaitForIt) {
  // The background child keeps the pipe open; the run ends when sh exits.
  SubprocessResult r = RunFor({"sh", "-c", "sleep 2 & echo done"}, seconds(30));
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.FirstLines(1, 100), "done");
}

}  // namespace
}  // namespace virtscale
