#include "collectors/fleet_hosts.h"

#include <chrono>

#include "common/metric_families.h"

namespace virtscale {

std::optional<double> CpuIdleRatio(const std::map<std::string, uint64_t>& before,
                                   const std::map<std::string, uint64_t>& after) {
  auto idle_before = before.find("idle");
  auto idle_after = after.find("idle");
  if (idle_before == before.end() || idle_after == after.end()) return std::nullopt;
  // Counters that went backwards (a host rebooted, or a mode vanished) give no ratio.
  double total = 0;
  for (const auto& [mode, ns] : after) {
    auto old = before.find(mode);
    if (old == before.end() || ns < old->second) return std::nullopt;
    total += static_cast<double>(ns - old->second);
  }
  if (!(total > 0)) return std::nullopt;
  // The idle delta is one of the summed deltas: the ratio is within 0..1.
  return static_cast<double>(idle_after->second - idle_before->second) / total;
}

FleetHosts::FleetHosts(const std::map<std::string, std::string>& hosts, SamplerOptions options,
                       bool read_only) {
  for (const auto& [name, uri] : hosts) {
    auto host = std::make_unique<Host>();
    host->name = name;
    host->connection = std::make_unique<LibvirtConnection>(
        LibvirtConnection::Options{.uri = uri, .read_only = read_only});
    host->sampler = std::make_unique<Sampler>(*host->connection, options);
    FeedFromConnection(*host->connection, *host->sampler);
    Host* raw = host.get();
    host->sampler->SetSnapshotListener(
        [this, raw](const SnapshotPtr& snapshot) { OnSnapshot(*raw, snapshot); });
    hosts_.push_back(std::move(host));
  }
}

FleetHosts::~FleetHosts() { Stop(); }

void FleetHosts::Start() {
  const MonoTime started = std::chrono::steady_clock::now();
  for (auto& h : hosts_) {
    {
      std::lock_guard lock(h->mu);
      h->last_up = started;
    }
    h->connection->Start();
    h->sampler->Start();
  }
}

void FleetHosts::Stop() {
  for (auto& h : hosts_) h->sampler->Stop();
  for (auto& h : hosts_) h->connection->Stop();
}

void FleetHosts::UpdateOptions(const SamplerOptions& options) {
  for (auto& h : hosts_) h->sampler->UpdateOptions(options);
}

void FleetHosts::OnSnapshot(Host& host, const SnapshotPtr& snapshot) {
  std::lock_guard lock(host.mu);
  if (!snapshot->libvirt_up) return;
  host.last_up = snapshot->taken_at_steady;
  if (!snapshot->host.cpu_time_ns.empty()) {
    if (!host.previous_cpu_time_ns.empty())
      host.cpu_idle_ratio = CpuIdleRatio(host.previous_cpu_time_ns, snapshot->host.cpu_time_ns);
    host.previous_cpu_time_ns = snapshot->host.cpu_time_ns;
  }
}

FleetHostStatus FleetHosts::StatusOf(const Host& host, MonoTime now) const {
  FleetHostStatus s;
  s.name = host.name;
  s.uri = host.connection->uri();
  s.snapshot = host.sampler->Latest();
  s.up = s.snapshot && s.snapshot->libvirt_up;
  std::lock_guard lock(host.mu);
  if (!s.up)
    s.unreachable_for =
        std::max(Duration::zero(), std::chrono::duration_cast<Duration>(now - host.last_up));
  if (s.up) s.cpu_idle_ratio = host.cpu_idle_ratio;
  return s;
}

std::vector<FleetHostStatus> FleetHosts::Status() const {
  const MonoTime now = std::chrono::steady_clock::now();
  std::vector<FleetHostStatus> out;
  out.reserve(hosts_.size());
  for (const auto& h : hosts_) out.push_back(StatusOf(*h, now));
  return out;
}

std::vector<prometheus::MetricFamily> FleetHosts::Collect() const {
  if (hosts_.empty()) return {};
  using prometheus::MetricType;
  using IfEmpty = MetricFamilies::IfEmpty;
  MetricFamilies f;
  auto up = f.Family("virtscale_host_up",
                     "1 when the latest sample of the fleet host (hosts:) reached its libvirt.",
                     MetricType::Gauge, IfEmpty::kKeep);
  auto unreachable = f.Family(
      "virtscale_host_unreachable_seconds",
      "Seconds since the fleet host was last reached (0 while up); since the agent started for "
      "a host never reached.",
      MetricType::Gauge, IfEmpty::kKeep);
  auto memory =
      f.Family("virtscale_host_memory_bytes", "Memory of the fleet host.", MetricType::Gauge);
  auto free_memory =
      f.Family("virtscale_host_memory_free_bytes",
               "Free memory of the fleet host, as libvirt reports it.", MetricType::Gauge);
  auto cpus = f.Family("virtscale_host_cpus", "Logical CPUs of the fleet host.", MetricType::Gauge);
  auto idle = f.Family("virtscale_host_cpu_idle_ratio",
                       "Share of the fleet host's CPU time that was idle between its last two "
                       "samples (0 to 1).",
                       MetricType::Gauge);
  auto domains = f.Family("virtscale_host_domains",
                          "Domains (defined or running) on the fleet host in its latest sample.",
                          MetricType::Gauge);
  auto sampled = f.Family("virtscale_host_last_sample_timestamp_seconds",
                          "Unix time of the fleet host's latest sample that reached libvirt.",
                          MetricType::Gauge);
  for (const FleetHostStatus& h : Status()) {
    const MetricFamilies::Labels labels = {{"host", h.name}};
    f.Add(up, labels, h.up ? 1 : 0);
    f.Add(unreachable, labels, std::chrono::duration<double>(h.unreachable_for).count());
    if (!h.up) continue;
    const Snapshot& s = *h.snapshot;
    if (s.host.memory_total_bytes)
      f.Add(memory, labels, static_cast<double>(*s.host.memory_total_bytes));
    if (s.host.memory_free_bytes)
      f.Add(free_memory, labels, static_cast<double>(*s.host.memory_free_bytes));
    if (s.host.cpus) f.Add(cpus, labels, static_cast<double>(*s.host.cpus));
    if (h.cpu_idle_ratio) f.Add(idle, labels, *h.cpu_idle_ratio);
    f.Add(domains, labels, static_cast<double>(s.domains.size()));
    f.Add(sampled, labels, std::chrono::duration<double>(s.taken_at.time_since_epoch()).count());
  }
  return f.Take();
}

}  // namespace virtscale
