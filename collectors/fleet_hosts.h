#pragma once
// The hypervisors of `hosts:`: one LibvirtConnection and one Sampler per host,
// the same code as the agent's own connection (keepalive, reconnect with
// backoff, a deadline on every call), so a host that hangs or goes away costs
// nothing but its own series. Each host's latest snapshot carries its domains
// (group members, ownership metadata) and its free memory and CPU.
//
// A host is *up* while its latest sample reached libvirt. `unreachable_for` is
// how long it has not been: since it was last up, or since Start() for a host
// never reached. Exported through Collect():
//   virtscale_host_up{host}, virtscale_host_unreachable_seconds{host},
//   virtscale_host_memory_bytes{host}, virtscale_host_memory_free_bytes{host},
//   virtscale_host_cpus{host}, virtscale_host_cpu_idle_ratio{host},
//   virtscale_host_domains{host}, virtscale_host_last_sample_timestamp_seconds{host}
//
//   FleetHosts fleet({{"hv1", "qemu+tcp://10.77.0.2/system"}}, sampler_options, false);
//   fleet.Start();
//   for (const FleetHostStatus& h : fleet.Status()) Use(h.name, h.up, h.snapshot);
#include <prometheus/collectable.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "collectors/libvirt_connection.h"
#include "collectors/sampler.h"
#include "common/clock.h"

namespace virtscale {

struct FleetHostStatus {
  std::string name;
  std::string uri;
  bool up = false;
  Duration unreachable_for = Duration::zero();  // zero while up
  SnapshotPtr snapshot;                         // latest; null before the first sample
  // Share of the host's CPU time that was idle between its last two samples;
  // absent until two samples with CPU stats exist, or when the driver has none.
  std::optional<double> cpu_idle_ratio;
};

class FleetHosts : public prometheus::Collectable {
 public:
  // `hosts`: name -> libvirt URI (validated by the config loader).
  // `read_only`: a monitoring-only agent opens read-only connections.
  FleetHosts(const std::map<std::string, std::string>& hosts, SamplerOptions options,
             bool read_only);
  ~FleetHosts() override;  // Stop()
  FleetHosts(const FleetHosts&) = delete;
  FleetHosts& operator=(const FleetHosts&) = delete;

  void Start();  // returns at once; hosts connect and sample in the background
  void Stop();

  bool empty() const { return hosts_.empty(); }
  // By name, as configured.
  std::vector<FleetHostStatus> Status() const;
  // Applies new sampling options (interval, timeouts) from each host's next sample on.
  void UpdateOptions(const SamplerOptions& options);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Host {
    std::string name;
    std::unique_ptr<LibvirtConnection> connection;
    std::unique_ptr<Sampler> sampler;
    mutable std::mutex mu;  // the fields below
    MonoTime last_up{};     // last sample that reached libvirt; Start() time before any
    std::optional<double> cpu_idle_ratio;
    std::map<std::string, uint64_t> previous_cpu_time_ns;
  };
  void OnSnapshot(Host& host, const SnapshotPtr& snapshot);
  FleetHostStatus StatusOf(const Host& host, MonoTime now) const;

  std::vector<std::unique_ptr<Host>> hosts_;
};

// The share of CPU time spent idle between two readings of the node's CPU
// time by mode (ns); absent when either lacks "idle" or time did not advance.
std::optional<double> CpuIdleRatio(const std::map<std::string, uint64_t>& before,
                                   const std::map<std::string, uint64_t>& after);

}  // namespace virtscale
