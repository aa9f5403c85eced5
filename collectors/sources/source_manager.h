#pragma once
// Polls every configured source on its own thread and interval, so one slow
// source never delays another or the sampler, and keeps the last good value
// with its time. A value older than the source's `stale_after` counts as
// missing ("stale: last success 47s ago"); a missing value is never 0.
//
//   SourceManager sources(DecodeSources(root["sources"], dir, diags));
//   sources.Start();
//   SourceReadings now = sources.Readings(SystemClock().Now());
//   if (now["jobs"].value) Use(*now["jobs"].value); else Explain(now["jobs"].error);
//   families = sources.Collect();       // virtscale_source_* series for /metrics
//   sources.Stop();                      // also done by the destructor
//
// Exported series (HELP on all):
//   virtscale_source_value{source}                          only while a fresh value exists
//   virtscale_source_up{source}                             1 when the last poll succeeded
//                                                           and its value is fresh
//   virtscale_source_last_success_timestamp_seconds{source} 0 before the first success
//   virtscale_source_errors_total{source,reason}            every reason the type can
//                                                           produce, from 0
//   virtscale_source_history_samples{source}                forecast sources: samples in
//                                                           the newest history (0: none)
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "collectors/sources/reading.h"
#include "collectors/sources/source_config.h"
#include "common/clock.h"

namespace virtscale {

class SourceManager : public prometheus::Collectable {
 public:
  // `history_sources`: the sources groups forecast from (GroupRule::forecast);
  // each also fetches its history (FetchSourceHistory) on a thread of its
  // own, at once and every kHistoryRefetch (kHistoryRetry after a failure),
  // so a month-long range query never delays the source's polls.
  explicit SourceManager(std::map<std::string, SourceConfig> configs,
                         const std::set<std::string>& history_sources = {});
  ~SourceManager();
  SourceManager(const SourceManager&) = delete;
  SourceManager& operator=(const SourceManager&) = delete;

  // Starts one polling thread per source; the first poll runs at once.
  void Start();
  // Returns promptly: wakes sleeping pollers and aborts requests in flight (a
  // request still connecting ends within its timeout). Idempotent.
  void Stop();

  // One reading per configured source, judged fresh or stale at `now`.
  // Staleness runs on the monotonic clock (common/clock.h).
  SourceReadings Readings(Instant now) const;
  // The same at wall time `now`, mapped to the monotonic clock through each
  // source's last success (tests move time this way).
  SourceReadings Readings(std::chrono::system_clock::time_point now) const;
  // The virtscale_source_* families, judged at the current time.
  std::vector<prometheus::MetricFamily> Collect() const override;

  // Completed polls of `name` so far (successful or not), for tests and debugging.
  uint64_t PollCount(const std::string& name) const;

  struct Source;  // one polled source; defined in the .cc

 private:
  std::vector<std::unique_ptr<Source>> sources_;  // ordered by name
  bool started_ = false;
};

}  // namespace virtscale
