// Linked into every unit test binary (tests/CMakeLists.txt). With CI set to a
// true value (as .ci/run sets it) a test that calls GTEST_SKIP fails instead:
// on the CI machine every tool and service a test needs is installed, so a
// skip there means something broke. Outside CI a skip stays a skip, and ctest
// reports it as Skipped through the "[  SKIPPED ]" pattern.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace {

bool InCi() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr) return false;
  const std::string v(ci);
  return !v.empty() && v != "0" && v != "false" && v != "no";
}

class SkipIsFailure : public ::testing::EmptyTestEventListener {
  // OnTestEnd runs while the test is still current, so a failure added here
  // belongs to the test (gtest's own leak-checker sample does the same).
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result() != nullptr && info.result()->Skipped()) {
      ADD_FAILURE() << "skipped under CI=" << std::getenv("CI")
                    << ": on the CI machine a skip is a failure (see tests/README.md)";
    }
  }
};

// Registered before main(): gtest_main's InitGoogleTest keeps appended listeners.
const bool kRegistered = [] {
  if (InCi()) ::testing::UnitTest::GetInstance()->listeners().Append(new SkipIsFailure);
  return true;
}();

}  // namespace
