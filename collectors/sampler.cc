#include "collectors/sampler.h"

#include <algorithm>
#include <utility>

#include "collectors/collector_call.h"
#include "collectors/domain_jobs.h"
#include "collectors/host_collector.h"
#include "collectors/storage_pools.h"
#include "common/log.h"

namespace virtscale {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

const std::vector<std::string>& DomainEventNames() {
  static const std::vector<std::string> kNames = {"defined",   "undefined",   "started",
                                                  "suspended", "resumed",     "stopped",
                                                  "shutdown",  "pmsuspended", "crashed"};
  return kNames;
}

Sampler::Sampler(LibvirtConnection& conn, SamplerOptions options)
    : conn_(conn), options_(std::move(options)) {}

Sampler::~Sampler() { Stop(); }

void Sampler::SetSnapshotListener(SnapshotListener listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

void Sampler::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Sampler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SnapshotPtr Sampler::Latest() const {
  std::lock_guard lock(mu_);
  return latest_;
}

SnapshotPtr Sampler::WaitFirstSample(Duration timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return latest_ != nullptr; });
  return latest_;
}

void Sampler::RequestSample() {
  {
    std::lock_guard lock(mu_);
    sample_requested_ = true;
  }
  cv_.notify_all();
}

void Sampler::OnDomainEvent(const std::string& event, const std::string& domain) {
  {
    std::lock_guard lock(mu_);
    ++counters_.domain_events_total[event];
  }
  if (event == "defined" || event == "undefined") {
    RefreshDomains({domain});
  } else {
    RequestSample();
  }
}

void Sampler::RefreshDomains(const std::vector<std::string>& domains) {
  {
    std::lock_guard lock(invalidate_mu_);
    invalidated_names_.insert(invalidated_names_.end(), domains.begin(), domains.end());
  }
  RequestSample();
}

void Sampler::UpdateOptions(SamplerOptions options) {
  {
    std::lock_guard lock(mu_);
    options_ = std::move(options);
  }
  RequestSample();  // apply (and show) the new settings at once
}

SamplerOptions Sampler::options() const {
  std::lock_guard lock(mu_);
  return options_;
}

SamplerCounters Sampler::Counters() const {
  std::lock_guard lock(mu_);
  SamplerCounters c = counters_;
  c.stuck_calls = stuck_->size();
  c.call_errors_total = call_errors_->Totals();
  return c;
}

void Sampler::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    sample_requested_ = false;
    Clock::time_point start = Clock::now();
    lock.unlock();
    SampleNow();
    lock.lock();
    cv_.wait_until(lock, start + options_.interval, [this] { return stop_ || sample_requested_; });
    if (sample_requested_ && !stop_) {
      // Lifecycle events come in bursts (a group starting 10 VMs): gather them.
      cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stop_; });
    }
  }
}

void Sampler::Publish(SnapshotPtr snapshot) {
  SnapshotListener listener;
  {
    std::lock_guard lock(mu_);
    latest_ = snapshot;
    ++counters_.samples_total;
    counters_.skipped_devices_total += static_cast<uint64_t>(snapshot->skipped_devices);
    listener = listener_;
  }
  cv_.notify_all();
  if (listener) listener(snapshot);
}

// connect -> list -> one run of every collector's calls -> apply each -> publish.
SnapshotPtr Sampler::SampleNow() {
  std::lock_guard sample_lock(sample_mu_);
  const SamplerOptions opts = options();
  const auto start = std::chrono::steady_clock::now();
  auto snap = std::make_shared<Snapshot>();
  snap->taken_at = std::chrono::system_clock::now();
  snap->taken_at_steady = start;
  snap->libvirt_uri = conn_.uri();
  const SnapshotPtr previous = Latest();
  {
    std::lock_guard lock(invalidate_mu_);
    domains_.Forget(invalidated_names_);
    invalidated_names_.clear();
  }
  domains_.UseMetadataLabels(opts.metadata_labels);
  if (opts.metadata_labels) snap->metadata_label_names = opts.metadata_labels->Names();

  CollectorResult domains_result{"domains", 0, false};
  CollectorResult host_result{"host", 0, false};
  CollectorResult pools_result{"storage_pools", 0, false};
  CollectorResult jobs_result{"jobs", 0, false};
  uint64_t timed_out_calls = 0;
  bool connection_lost = false;
  // Read before Acquire: a reconnect in between labels the sample older, never newer.
  snap->connection_generation = conn_.generation();
  ConnectionRef conn = conn_.Acquire();
  const SampleCalls calls{conn_.uri(), opts.call_timeout, stuck_, call_errors_};

  if (conn != nullptr && !stuck_->Contains("list")) {
    DomainsSample listed = domains_.List(conn, calls, opts.workers);
    snap->libvirt_up = listed.listed;
    connection_lost |= listed.connection_lost;
    timed_out_calls += listed.timed_out_calls;

    // One run: host, bulk stats shards, storage pools and jobs side by side.
    std::vector<DeadlineTask> tasks;
    const CollectorCall<HostResult> host(
        "host", *stuck_, tasks,
        [conn, log = call_errors_](HostResult& r) { CollectHost(conn.get(), *log, r); });
    domains_.AddBulkTasks(conn, opts.stat_groups | VIR_DOMAIN_STATS_STATE, listed, tasks);
    const CollectorCall<StoragePoolsResult> pools(
        "storage_pools", *stuck_, tasks, [conn, log = call_errors_](StoragePoolsResult& r) {
          CollectStoragePools(conn.get(), *log, r);
        });
    const uint64_t sequence = previous ? previous->sequence + 1 : 1;
    const JobCalls jobs(SelectJobTargets(listed.live, previous.get(), sequence, opts.interval),
                        jobs_unsupported_, tasks);
    DeadlineRunResult run =
        RunWithDeadlines(std::move(tasks), listed.workers + 2, opts.call_timeout, stuck_);
    timed_out_calls += run.timed_out;

    if (const HostResult* r = host.Finished(run, host_result, connection_lost)) {
      snap->host = r->host;
    }
    if (StoragePoolsResult* r = pools.Finished(run, pools_result, connection_lost)) {
      snap->storage_pools = std::move(r->pools);
    }
    DomainsCollectorResult domains =
        domains_.Finish(listed, run, previous.get(), calls, opts.identity_ttl, snap->domains);
    domains_result = domains.collector;
    connection_lost |= domains.connection_lost;
    timed_out_calls += domains.timed_out_calls;
    snap->skipped_devices += domains.skipped_devices;
    JobsCollectorResult job_result =
        jobs.Apply(run, jobs_unsupported_, *call_errors_, snap->domains);
    jobs_result = job_result.collector;
    connection_lost |= job_result.connection_lost;
    std::sort(snap->domains.begin(), snap->domains.end(),
              [](const DomainStats& a, const DomainStats& b) { return a.name < b.name; });
  }
  if (connection_lost) {
    LogWarn("libvirt connection looks broken; reconnecting", {{"uri", conn_.uri()}});
    conn_.ReportBroken();
  }
  snap->collectors = {domains_result, host_result, pools_result, jobs_result};
  call_errors_->EndSample();
  snap->duration_seconds = SecondsSince(start);
  {
    std::lock_guard lock(mu_);
    snap->sequence = ++sequence_;
    counters_.timed_out_calls_total += timed_out_calls;
  }
  SnapshotPtr published = snap;
  Publish(published);
  return published;
}

void FeedFromConnection(LibvirtConnection& conn, Sampler& sampler) {
  conn.SetDomainEventListener([&sampler](const std::string& event, const std::string& domain) {
    sampler.OnDomainEvent(event, domain);
  });
  conn.SetStateListener([&sampler](bool up) {
    if (up) sampler.RequestSample();
  });
}

}  // namespace virtscale
