#include "common/clock.h"

namespace virtscale {
namespace {

class RealClock : public Clock {
 public:
  Instant Now() const override {
    return {std::chrono::steady_clock::now(), std::chrono::system_clock::now()};
  }
};

}  // namespace

const Clock& SystemClock() {
  static const RealClock clock;
  return clock;
}

Instant FakeClock::Now() const {
  std::lock_guard lock(mu_);
  return now_;
}

void FakeClock::Set(Instant now) {
  std::lock_guard lock(mu_);
  now_ = now;
}

void FakeClock::Advance(std::chrono::nanoseconds d) {
  std::lock_guard lock(mu_);
  now_.mono += d;
  now_.wall += std::chrono::duration_cast<WallTime::duration>(d);
}

void FakeClock::StepWall(std::chrono::nanoseconds d) {
  std::lock_guard lock(mu_);
  now_.wall += std::chrono::duration_cast<WallTime::duration>(d);
}

}  // namespace virtscale
