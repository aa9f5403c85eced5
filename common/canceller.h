#pragma once
// A one-shot cancellation signal that blocking waits can poll(2) on, so an
// agent shutdown ends a running check or hook at once instead of at its
// timeout. Cancel() may be called from any thread, any number of times; once
// cancelled it stays cancelled.
//
//   Canceller cancel;                       // shared with the shutdown path
//   std::thread t([&] { RunSubprocess(argv, {.canceller = &cancel}); });
//   cancel.Cancel();                        // the run ends with kCancelled
//
//   pollfd fds[] = {{sock, POLLOUT, 0}, {cancel.fd(), POLLIN, 0}};   // a waiter
#include <atomic>

namespace virtscale {

class Canceller {
 public:
  Canceller();  // an eventfd; when it cannot be made, fd() is -1 and waiters poll cancelled()
  ~Canceller();
  Canceller(const Canceller&) = delete;
  Canceller& operator=(const Canceller&) = delete;

  void Cancel();
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // Readable once cancelled (never drained). -1 when no eventfd could be made.
  int fd() const { return fd_; }

 private:
  std::atomic<bool> cancelled_{false};
  int fd_ = -1;
};

}  // namespace virtscale
