#pragma once
// Failed libvirt calls of the sampler: counted by (call, code) for
// virtscale_libvirt_call_errors_total, and logged on transitions only. A pair
// is logged at warning, with libvirt's own text, in the sample where it starts
// failing, and at info in the first sample without it; a host where one call
// fails every second gets two lines, not one per sample.
//
//   auto log = std::make_shared<CallErrorLog>();
//   log->Record("memory_stats", LastLibvirtError(), "web-1");  // any thread
//   log->EndSample();                                          // sampler thread
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "collectors/libvirt_error.h"

namespace virtscale {

using CallErrorKey = std::pair<std::string, int>;  // call name, virErrorNumber

class CallErrorLog {
 public:
  // Counts one failure; `subject` (a domain or pool name, may be empty) is
  // logged with the first failure of a pair in a sample. Thread-safe.
  void Record(std::string_view call, const LibvirtError& error, std::string_view subject);
  // Logs the pairs that started or stopped failing since the previous call.
  void EndSample();
  std::map<CallErrorKey, uint64_t> Totals() const;

 private:
  struct Seen {
    std::string message, subject;
    uint64_t count = 0;  // failures of the pair in this sample
  };
  mutable std::mutex mu_;
  std::map<CallErrorKey, uint64_t> totals_;
  std::map<CallErrorKey, Seen> this_sample_;
  std::map<CallErrorKey, Seen> failing_;  // as of the last EndSample
};

}  // namespace virtscale
