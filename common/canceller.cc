#include "common/canceller.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace virtscale {

Canceller::Canceller() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Canceller::~Canceller() {
  if (fd_ >= 0) close(fd_);
}

void Canceller::Cancel() {
  cancelled_.store(true, std::memory_order_release);
  if (fd_ < 0) return;
  const uint64_t one = 1;
  // Only fails when the counter would overflow: it is readable already.
  [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof one);
}

}  // namespace virtscale
