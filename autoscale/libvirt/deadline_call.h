#pragma once
// One blocking libvirt call on its own thread, under a deadline, and given up
// early once the actuator is cancelled. libvirt calls cannot be interrupted: an
// abandoned call keeps running on its thread, its description stays in a
// StuckCalls set (collectors/deadline_runner.h) until it returns, and its result
// is dropped. So the closure must own (capture by value; shared_ptr) everything
// it touches, and must return its result rather than write through references.
//
// libvirt's last error is per thread: it is read on the worker right after the
// call and handed back in CallResult::error.
//
//   auto r = RunCall("start", [dom] { return virDomainCreate(dom.get()); },
//                    {.timeout = 10s, .cancel_grace = 1s}, cancel, stuck);
//   if (!r.value) return r.failure;             // "start timed out after 10s"
//   if (*r.value < 0) return r.error.message;   // libvirt's own error
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "collectors/deadline_runner.h"
#include "collectors/libvirt_error.h"
#include "common/duration.h"

namespace virtscale::autoscale {

inline constexpr const char* kCancelledText = "cancelled (agent stopping)";

// Set once at agent shutdown; wakes every wait at once. Thread-safe.
class CancelFlag {
 public:
  void Cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
  }
  bool cancelled() const {
    std::lock_guard lock(mu_);
    return cancelled_;
  }
  // Sleeps for `d`; false (at once) when cancelled before or during the wait.
  bool SleepFor(Duration d) const {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return cancelled_; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool cancelled_ = false;
};

struct CallStatus {
  LibvirtError error;   // the worker's last libvirt error after the call
  std::string failure;  // set when the call did not return in time or was cancelled
};

template <typename T>
struct CallResult : CallStatus {
  std::optional<T> value;  // the call's return value, when it returned in time
};

struct CallPolicy {
  Duration timeout = std::chrono::seconds(10);
  // Once cancelled, a call still running is abandoned after this much longer.
  Duration cancel_grace = std::chrono::seconds(1);
  // Rollback calls still run after a cancel (bounded by cancel_grace); others
  // fail at once with kCancelledText.
  bool rollback = false;
};

template <typename F>
CallResult<std::invoke_result_t<F&>> RunCall(const std::string& what, F fn,
                                             const CallPolicy& policy, const CancelFlag& cancel,
                                             const std::shared_ptr<StuckCalls>& stuck) {
  using T = std::invoke_result_t<F&>;
  using Clock = std::chrono::steady_clock;
  CallResult<T> result;
  if (cancel.cancelled() && !policy.rollback) {
    result.failure = std::string(kCancelledText) + " before " + what;
    return result;
  }
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool abandoned = false;
    std::optional<T> value;
    LibvirtError error;
  };
  auto state = std::make_shared<State>();
  std::thread([state, stuck, what, fn = std::move(fn)]() mutable {
    std::optional<T> value;
    LibvirtError error;
    try {
      value.emplace(fn());
      error = LastLibvirtError();
    } catch (...) {
      error.message = "exception in libvirt call";
    }
    bool abandoned = false;
    {
      std::lock_guard lock(state->mu);
      state->value = std::move(value);
      state->error = std::move(error);
      state->done = true;
      abandoned = state->abandoned;
    }
    state->cv.notify_all();
    if (abandoned) stuck->Remove({what});
  }).detach();

  const auto deadline = Clock::now() + policy.timeout;
  std::optional<Clock::time_point> cancel_limit;
  std::unique_lock lock(state->mu);
  while (!state->done) {
    auto now = Clock::now();
    if (!cancel_limit && cancel.cancelled()) cancel_limit = now + policy.cancel_grace;
    auto limit = cancel_limit ? std::min(deadline, *cancel_limit) : deadline;
    if (now >= limit) break;
    // Short slices: a cancel must be noticed within a fraction of a second.
    state->cv.wait_until(lock, std::min(limit, now + std::chrono::milliseconds(50)));
  }
  if (state->done) {
    if (state->value) result.value.emplace(std::move(*state->value));
    result.error = state->error;
    if (!result.value) result.failure = what + ": " + state->error.message;
    return result;
  }
  state->abandoned = true;
  stuck->Add({what});
  bool by_cancel = cancel_limit && Clock::now() < deadline;
  result.failure = by_cancel ? std::string(kCancelledText) + " during " + what
                             : what + " timed out after " + FormatDuration(policy.timeout);
  return result;
}

}  // namespace virtscale::autoscale
