#include "autoscale/health_monitor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/log.h"
#include "common/placeholders.h"

namespace virtscale::autoscale {
namespace {

bool NeedsAddress(const HealthPolicy& policy) {
  for (const HealthCheck& c : policy.checks) {
    if (c.type == HealthCheckType::kTcp) return true;
    if (c.type == HealthCheckType::kHttp && UsesPlaceholder(c.url, "address")) return true;
    if (c.type == HealthCheckType::kExec)
      for (const std::string& arg : c.command)
        if (UsesPlaceholder(arg, "address")) return true;
  }
  return false;
}

}  // namespace

std::string HealthPolicySignature(const HealthPolicy& policy) {
  std::string out = fmt::format("{}|{}|{}", policy.grace_period.count(), policy.interval.count(),
                                policy.unhealthy_after);
  for (const HealthCheck& c : policy.checks) {
    out += fmt::format("|{}:{}:{}:{}:{}", static_cast<int>(c.type), fmt::join(c.command, "\x1f"),
                       c.url, c.port, c.timeout.count());
  }
  return out;
}

HealthMonitor::HealthMonitor(AddressLookup lookup, const Clock& clock, size_t workers, Probe probe)
    : lookup_(std::move(lookup)), clock_(clock), probe_(std::move(probe)) {
  if (!probe_) probe_ = &RunChecks;
  for (size_t i = 0; i < std::max<size_t>(workers, 1); ++i)
    cancellers_.push_back(std::make_unique<ProbeCanceller>());
  for (auto& canceller : cancellers_)
    workers_.emplace_back([this, c = canceller.get()] { WorkerLoop(*c); });
}

HealthMonitor::~HealthMonitor() { Shutdown(); }

void HealthMonitor::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stop_ && workers_.empty()) return;
    stop_ = true;
    queue_.clear();
  }
  idle_cv_.notify_all();
  for (auto& canceller : cancellers_) canceller->Cancel();
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void HealthMonitor::Update(const std::string& group, const HealthPolicy& policy,
                           const std::vector<HealthSubject>& members, MonoTime now) {
  std::lock_guard lock(mu_);
  if (stop_) return;
  const std::string signature = HealthPolicySignature(policy);
  auto it = groups_.find(group);
  if (it == groups_.end() || it->second.signature != signature) {
    // Rounds of the old policy still running are recorded nowhere (their signature differs).
    it = groups_
             .insert_or_assign(group, GroupHealth{signature,
                                                  std::make_shared<const HealthPolicy>(policy),
                                                  HealthTracker(policy),
                                                  {}})
             .first;
  }
  GroupHealth& g = it->second;
  std::set<std::string> present;
  bool queued = false;
  for (const HealthSubject& m : members) {
    present.insert(m.domain);
    if (g.in_flight.count(m.domain) || !g.tracker.Due(m.domain, m.started, now)) continue;
    g.in_flight.insert(m.domain);
    queue_.push_back({group, g.policy, signature, m});
    queued = true;
  }
  g.tracker.Retain(present);
  if (queued) cv_.notify_all();
}

void HealthMonitor::RetainGroups(const std::set<std::string>& groups) {
  std::lock_guard lock(mu_);
  std::erase_if(groups_, [&](const auto& kv) { return !groups.count(kv.first); });
}

std::map<std::string, MemberHealthStatus> HealthMonitor::Health(
    const std::string& group, const std::vector<HealthSubject>& members, MonoTime now) const {
  std::lock_guard lock(mu_);
  std::map<std::string, MemberHealthStatus> out;
  auto it = groups_.find(group);
  if (it == groups_.end()) return out;
  for (const HealthSubject& m : members)
    out.emplace(m.domain, it->second.tracker.Status(m.domain, m.started, now));
  return out;
}

void HealthMonitor::WorkerLoop(ProbeCanceller& canceller) {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Round round = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    lock.unlock();
    RunRound(round, canceller);
    lock.lock();
    --running_;
    if (queue_.empty() && running_ == 0) idle_cv_.notify_all();
  }
}

void HealthMonitor::WaitIdle() const {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [this] { return stop_ || (queue_.empty() && running_ == 0); });
}

void HealthMonitor::RunRound(const Round& round, ProbeCanceller& canceller) {
  MemberProbeInput in{.domain = round.subject.domain,
                      .group = round.group,
                      .address = {},
                      .state = round.subject.state,
                      .state_reason = round.subject.state_reason,
                      .should_be_running = round.subject.should_be_running};
  if (lookup_ && NeedsAddress(*round.policy)) {
    try {
      in.address = lookup_(in.domain);
    } catch (const std::exception& e) {
      LogDebug("member address lookup failed", {{"domain", in.domain}, {"err", e.what()}});
    }
  }
  std::vector<ProbeResult> results = probe_(*round.policy, in, &canceller);
  const MonoTime done = clock_.Now().mono;
  std::lock_guard lock(mu_);
  auto it = groups_.find(round.group);
  if (it == groups_.end() || it->second.signature != round.signature) return;
  it->second.in_flight.erase(in.domain);
  const MemberHealthStatus before =
      it->second.tracker.Status(in.domain, round.subject.started, done);
  const MemberHealthStatus& after =
      it->second.tracker.Record(in.domain, round.subject.started, done, results);
  // Logged when a member becomes unhealthy or recovers, not every round.
  if (after.state != before.state &&
      (after.state == MemberHealth::kUnhealthy || before.state == MemberHealth::kUnhealthy)) {
    LogWarn(after.state == MemberHealth::kUnhealthy ? "member unhealthy" : "member recovered",
            {{"group", round.group},
             {"domain", in.domain},
             {"check", after.failed_check},
             {"output", after.output},
             {"consecutive_failures", after.consecutive_failures}});
  }
}

}  // namespace virtscale::autoscale
