#include "collectors/call_errors.h"

#include "common/log.h"

namespace virtscale {

void CallErrorLog::Record(std::string_view call, const LibvirtError& error,
                          std::string_view subject) {
  std::lock_guard lock(mu_);
  CallErrorKey key{std::string(call), error.code};
  ++totals_[key];
  Seen& seen = this_sample_[key];
  if (seen.count++ == 0) {
    seen.message = error.message;
    seen.subject = std::string(subject);
  }
}

void CallErrorLog::EndSample() {
  std::map<CallErrorKey, Seen> started, ended;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, seen] : this_sample_) {
      if (!failing_.contains(key)) started.emplace(key, seen);
    }
    for (const auto& [key, seen] : failing_) {
      if (!this_sample_.contains(key)) ended.emplace(key, seen);
    }
    failing_ = std::move(this_sample_);
    this_sample_.clear();
  }
  for (const auto& [key, seen] : started) {
    // The subject is the first domain or pool the call failed for in this sample.
    if (seen.subject.empty()) {
      LogWarn("libvirt call failing", {{"call", key.first},
                                       {"code", key.second},
                                       {"error", seen.message},
                                       {"failures", seen.count}});
    } else {
      LogWarn("libvirt call failing", {{"call", key.first},
                                       {"code", key.second},
                                       {"subject", seen.subject},
                                       {"error", seen.message},
                                       {"failures", seen.count}});
    }
  }
  for (const auto& [key, seen] : ended) {
    LogWarn("libvirt call no longer failing", {{"call", key.first}, {"code", key.second}});
  }
}

std::map<CallErrorKey, uint64_t> CallErrorLog::Totals() const {
  std::lock_guard lock(mu_);
  return totals_;
}

}  // namespace virtscale
