#pragma once
// The two clocks of the agent. Every timer (`for`, cooldowns, backoff, settle,
// staleness, rate limits) runs on the monotonic clock, so an NTP step or a
// manual `date -s` changes none of them; wall time is only for display and for
// the timestamps stored in libvirt (created-at, scale stamps).
//
//   Instant now = SystemClock().Now();
//   if (now.mono - last_action >= cooldown) ...;   // timers: monotonic
//   FormatTime(now.wall);                           // display: wall
//
// Tests and the simulator pass a FakeClock, whose wall time can be stepped
// without moving the monotonic one.
#include <chrono>
#include <mutex>

namespace virtscale {

using MonoTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// One reading of both clocks, taken together.
struct Instant {
  MonoTime mono{};
  WallTime wall{};

  // The wall time at which monotonic `t` happened (or will), for display.
  WallTime WallOf(MonoTime t) const {
    return wall + std::chrono::duration_cast<WallTime::duration>(t - mono);
  }
  // The monotonic time of wall time `t` (a timestamp read back from libvirt).
  MonoTime MonoOf(WallTime t) const {
    return mono + std::chrono::duration_cast<MonoTime::duration>(t - wall);
  }
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Instant Now() const = 0;
};

// steady_clock and system_clock.
const Clock& SystemClock();

// A settable clock. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(Instant start = {}) : now_(start) {}
  Instant Now() const override;
  void Set(Instant now);
  // Moves both clocks, as time passing does.
  void Advance(std::chrono::nanoseconds d);
  // Moves only the wall clock, as an NTP step does.
  void StepWall(std::chrono::nanoseconds d);

 private:
  mutable std::mutex mu_;
  Instant now_;
};

}  // namespace virtscale
