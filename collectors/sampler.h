#pragma once
// Samples libvirt on its own thread into immutable Snapshots. Every `interval`
// (or sooner after RequestSample(), e.g. on a lifecycle event) it runs the
// collectors, each in its own file and each reporting its duration and
// success (virtscale_scrape_collector_*):
//   domains        collectors/domains_collector.h: list, bulk stats, per-domain calls
//   host           collectors/host_collector.h
//   storage_pools  collectors/storage_pools.h
//   jobs           collectors/domain_jobs.h
// The calls of all four run side by side under `call_timeout` each; then the
// sampler publishes the result; /metrics and the autoscaler read Latest()
// without waiting on libvirt.
//
// A domain whose call does not return in time is exported with timed_out=true
// and skipped (no new call) until the stuck call returns. While libvirt is down
// the snapshot says libvirt_up=false and has no domains.
//
//   LibvirtConnection conn({.uri = "test:///default"});
//   Sampler sampler(conn, {.interval = std::chrono::seconds(5)});
//   conn.SetDomainEventListener([&](const std::string& e, const std::string& d) {
//     sampler.OnDomainEvent(e, d);
//   });
//   conn.Start();
//   sampler.Start();
//   SnapshotPtr snap = sampler.WaitFirstSample(std::chrono::seconds(10));
//   ...
//   conn.Stop();     // first: no more events into the sampler
//   sampler.Stop();
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "collectors/call_errors.h"
#include "collectors/deadline_runner.h"
#include "collectors/domain_stats_parser.h"
#include "collectors/domains_collector.h"
#include "collectors/libvirt_connection.h"
#include "collectors/metadata_labels.h"
#include "collectors/snapshot.h"
#include "common/duration.h"

namespace virtscale {

struct SamplerOptions {
  Duration interval = std::chrono::seconds(5);
  Duration call_timeout = std::chrono::seconds(10);
  int workers = 0;  // threads for bulk shards and per-domain calls; 0 = auto (up to 4)
  StatGroups stat_groups = kCoreStatGroups;  // state is always collected
  // How long cached domain XML facts (os type, devices, virtscale metadata) are
  // trusted; "defined"/"undefined" events drop them at once.
  Duration identity_ttl = std::chrono::minutes(5);
  // libvirt.metadata_labels; null or empty: no libvirt_domain_metadata_info.
  std::shared_ptr<const MetadataLabels> metadata_labels = nullptr;
};

// Counters over the sampler's lifetime, for the self-metrics.
struct SamplerCounters {
  uint64_t samples_total = 0;
  uint64_t skipped_devices_total = 0;  // empty or repeated device names dropped
  uint64_t timed_out_calls_total = 0;  // calls abandoned at call_timeout
  size_t stuck_calls = 0;              // abandoned calls that have not returned yet
  std::map<std::string, uint64_t> domain_events_total;  // lifecycle event -> count
  std::map<CallErrorKey, uint64_t> call_errors_total;   // failed libvirt calls
};

// The lifecycle event names LibvirtConnection reports, in libvirt's order.
const std::vector<std::string>& DomainEventNames();

class Sampler {
 public:
  using SnapshotListener = std::function<void(const SnapshotPtr&)>;

  Sampler(LibvirtConnection& conn, SamplerOptions options);
  ~Sampler();  // Stop()
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Called on the sampler thread after each publish; set before Start().
  void SetSnapshotListener(SnapshotListener listener);

  void Start();  // starts the sampling thread; the first sample begins at once
  void Stop();   // waits for a sample in progress (bounded by call_timeout per phase)

  // The latest published snapshot; nullptr before the first sample.
  SnapshotPtr Latest() const;
  // Blocks until the first snapshot exists or `timeout` passes; returns Latest().
  SnapshotPtr WaitFirstSample(Duration timeout) const;
  // Wakes the sampling thread for a sample now (requests arriving together
  // coalesce into one sample).
  void RequestSample();
  // Lifecycle event hook: counts it, drops cached XML facts of the domain on
  // "defined"/"undefined", and requests a sample. Safe from any thread.
  void OnDomainEvent(const std::string& event, const std::string& domain);
  // Drops the cached XML facts (metadata included) of `domains` and requests a
  // sample, after virtscale itself changed their metadata. Safe from any thread.
  void RefreshDomains(const std::vector<std::string>& domains);
  // Applies new options from the next sample on (config reload).
  void UpdateOptions(SamplerOptions options);
  SamplerOptions options() const;
  SamplerCounters Counters() const;

  // Takes one sample synchronously and publishes it. The sampling thread uses
  // it; tests may call it without Start(). Serialised with the thread.
  SnapshotPtr SampleNow();

 private:
  void Loop();
  void Publish(SnapshotPtr snapshot);

  LibvirtConnection& conn_;

  mutable std::mutex mu_;  // options_, latest_, counters_, flags
  mutable std::condition_variable cv_;
  SamplerOptions options_;
  SnapshotPtr latest_;
  SamplerCounters counters_;
  bool stop_ = false;
  bool sample_requested_ = false;
  uint64_t sequence_ = 0;
  SnapshotListener listener_;
  std::thread thread_;

  std::mutex sample_mu_;  // one sample at a time; guards domains_
  DomainsCollector domains_;

  std::mutex invalidate_mu_;
  std::vector<std::string> invalidated_names_;  // from events, applied at the next sample

  // The driver has no job API: the jobs collector stops asking.
  std::atomic<bool> jobs_unsupported_{false};
  std::shared_ptr<StuckCalls> stuck_ = std::make_shared<StuckCalls>();
  std::shared_ptr<CallErrorLog> call_errors_ = std::make_shared<CallErrorLog>();
};

// Feeds `conn`'s lifecycle events to `sampler` (OnDomainEvent) and asks for
// a sample at every (re)connect: a fresh connection deserves a fresh sample.
// Call before conn.Start(); both must outlive the connection's threads.
void FeedFromConnection(LibvirtConnection& conn, Sampler& sampler);

}  // namespace virtscale
