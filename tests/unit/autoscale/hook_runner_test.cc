#include "autoscale/hook_runner.h"

#include <gtest/gtest.h>

namespace virtscale::autoscale {
namespace {

const PlaceholderValues kMember{.domain = "web-3", .group = "web", .address = ""};

Hook MakeHook(std::vector<std::string> argv, HookFailure on_failure) {
  Hook h;
  h.command = std::move(argv);
  h.on_failure = on_failure;
  h.timeout = std::chrono::seconds(30);
  return h;
}

TEST(RunHook, SucceedsWithPlaceholdersAndEnvironment) {
  HookRun run = RunHook(MakeHook({"sh", "-c",
                                  "test \"$1\" = web-3 && test \"$VIRTSCALE_GROUP\" = web && "
                                  "test -z \"$VIRTSCALE_ADDRESS\"",
                                  "sh", "{domain}"},
                                 HookFailure::kAbandon),
                        kMember, nullptr);
  EXPECT_TRUE(run.result.ok()) << run.Describe();
  EXPECT_TRUE(run.proceed);
  EXPECT_EQ(run.Describe(), "hook sh: ok");
}

TEST(RunHook, OnFailureDecides) {
  const std::vector<std::string> failing = {"sh", "-c", "echo still 3 sessions; exit 1"};
  HookRun abandon = RunHook(MakeHook(failing, HookFailure::kAbandon), kMember, nullptr);
  EXPECT_FALSE(abandon.proceed);
  EXPECT_EQ(abandon.Describe(), "hook sh: exit status 1: still 3 sessions");
  EXPECT_TRUE(RunHook(MakeHook(failing, HookFailure::kContinue), kMember, nullptr).proceed);
  HookRun missing = RunHook(MakeHook({"/nope/{domain}"}, HookFailure::kContinue), kMember, nullptr);
  EXPECT_TRUE(missing.proceed);
  EXPECT_EQ(missing.Describe(), "hook /nope/web-3: exec: /nope/web-3: No such file or directory");
}

TEST(RunHook, CancelledNeverProceeds) {
  Canceller cancel;
  cancel.Cancel();
  HookRun run = RunHook(MakeHook({"true"}, HookFailure::kContinue), kMember, &cancel);
  EXPECT_EQ(run.result.outcome, SubprocessOutcome::kCancelled);
  EXPECT_FALSE(run.proceed);
}

}  // namespace
}  // namespace virtscale::autoscale
