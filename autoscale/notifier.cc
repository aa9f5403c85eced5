#include "autoscale/notifier.h"

#include <algorithm>

#include "common/log.h"
#include "common/metric_families.h"

namespace virtscale::autoscale {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::vector<NotificationEvent> EventsOf(const Decision& d) {
  // A pause whose storing failed still paused the group: not a failure to report.
  if (d.outcome == Outcome::kPaused) return {NotificationEvent::kPaused};
  if (d.outcome == Outcome::kResumed) return {NotificationEvent::kResumed};
  // Nothing ran (leadership not confirmed, or shutdown): nothing to announce.
  if (d.result == DecisionResult::kCancelled) return {};
  std::vector<NotificationEvent> events;
  if (d.result == DecisionResult::kError || d.result == DecisionResult::kPartial)
    events.push_back(NotificationEvent::kFailed);
  if (!d.replacing.empty()) events.push_back(NotificationEvent::kReplace);
  if (d.outcome == Outcome::kScaleUp) events.push_back(NotificationEvent::kScaleUp);
  if (d.outcome == Outcome::kScaleDown) events.push_back(NotificationEvent::kScaleDown);
  return events;
}

std::map<std::string, std::vector<NotificationTarget>> GroupTargets(const RuleSet& rules) {
  std::map<std::string, std::vector<NotificationTarget>> out;
  for (const GroupRule& g : rules.groups)
    if (!g.notifications.empty()) out[g.name] = g.notifications;
  return out;
}

Notifier::Notifier(NotifierOptions options)
    : options_(options), targets_(std::make_shared<Targets>()), thread_([this] { Run(); }) {}

Notifier::~Notifier() { Shutdown(); }

void Notifier::SetTargets(std::vector<NotificationTarget> global,
                          std::map<std::string, std::vector<NotificationTarget>> by_group) {
  auto t = std::make_shared<Targets>(Targets{std::move(global), std::move(by_group)});
  std::lock_guard lock(mu_);
  // Every target's series exist from the start, at 0.
  for (const NotificationTarget& n : t->global) counts_[n.Label()];
  for (const auto& entry : t->by_group)
    for (const NotificationTarget& n : entry.second) counts_[n.Label()];
  targets_ = std::move(t);
}

void Notifier::Notify(const std::vector<NotificationEvent>& events, const std::string& group,
                      const nlohmann::json& record) {
  std::shared_ptr<const Targets> targets;
  {
    std::lock_guard lock(mu_);
    targets = targets_;
  }
  // Bodies are built outside the lock: the caller may be an engine worker.
  std::vector<Pending> batch;
  auto add = [&](const std::vector<NotificationTarget>& list) {
    for (const NotificationTarget& t : list) {
      auto e = std::find_if(events.begin(), events.end(),
                            [&t](NotificationEvent ev) { return t.events.count(ev) > 0; });
      if (e == events.end()) continue;
      nlohmann::json body = record;
      body["event"] = NotificationEventName(*e);
      batch.push_back(Pending{t, group, *e,
                              body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
    }
  };
  add(targets->global);
  if (auto it = targets->by_group.find(group); it != targets->by_group.end()) add(it->second);
  if (batch.empty()) return;
  std::lock_guard lock(mu_);
  for (Pending& p : batch) {
    if (stop_ || queue_.size() >= options_.max_queue) {
      ++counts_[p.target.Label()].dropped;
      continue;
    }
    queue_.emplace(Clock::now(), std::move(p));
  }
  cv_.notify_all();
}

void Notifier::Run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (queue_.empty()) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      continue;
    }
    const auto due = queue_.begin()->first;
    if (Clock::now() < due) {
      // Woken early by a new notification or Shutdown; the loop looks again.
      cv_.wait_until(lock, due);
      continue;
    }
    Pending p = std::move(queue_.begin()->second);
    queue_.erase(queue_.begin());
    Deliver(std::move(p), lock);
  }
  queue_.clear();
}

void Notifier::Deliver(Pending p, std::unique_lock<std::mutex>& lock) {
  RequestCanceller canceller;
  current_ = &canceller;
  ++in_flight_;
  lock.unlock();
  HttpRequestOptions options;
  options.timeout = p.target.timeout;
  options.max_body_bytes = 1 << 20;  // the answer is discarded; only its status counts
  options.canceller = &canceller;
  const HttpResult r = HttpPost(p.target.url, {}, p.body, "application/json", options);
  ++p.attempts;
  const bool ok = r.ok() && r.value().status >= 200 && r.value().status < 300;
  const std::string why = ok       ? ""
                          : r.ok() ? "HTTP " + std::to_string(r.value().status)
                                   : r.error().ToString();
  lock.lock();
  current_ = nullptr;
  --in_flight_;
  Counts& c = counts_[p.target.Label()];
  (ok ? c.attempts_ok : c.attempts_error) += 1;
  if (ok) {
    ++c.ok;
    return;
  }
  if (stop_) return;
  if (p.attempts >= options_.max_attempts) {
    ++c.failed;
    LogWarn("notification failed", {{"url", p.target.Label()},
                                    {"group", p.group},
                                    {"event", NotificationEventName(p.event)},
                                    {"attempts", p.attempts},
                                    {"error", why}});
    return;
  }
  const int shift = std::min(p.attempts - 1, 16);
  const Duration backoff =
      std::min(options_.backoff_base * (int64_t{1} << shift), options_.backoff_max);
  LogDebug("notification attempt failed",
           {{"url", p.target.Label()}, {"attempts", p.attempts}, {"error", why}});
  queue_.emplace(Clock::now() + std::chrono::duration_cast<Clock::duration>(backoff), std::move(p));
}

void Notifier::Shutdown() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (current_) current_->Cancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t Notifier::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size() + in_flight_;
}

std::vector<MetricFamily> Notifier::Collect() const {
  MetricFamilies f;
  using IfEmpty = MetricFamilies::IfEmpty;
  auto total = f.Family("virtscale_notifications_total",
                        "Notifications by target URL (without its query) and result: ok, failed "
                        "(every attempt failed) or dropped (the queue was full).",
                        MetricType::Counter, IfEmpty::kKeep);
  auto attempts = f.Family("virtscale_notification_attempts_total",
                           "Notification POSTs by target URL and result (ok: a 2xx answer; error).",
                           MetricType::Counter, IfEmpty::kKeep);
  auto queue = f.Family("virtscale_notification_queue_length",
                        "Notifications waiting for delivery or a retry.", MetricType::Gauge);
  std::lock_guard lock(mu_);
  for (const auto& [url, c] : counts_) {
    f.Add(total, {{"url", url}, {"result", "ok"}}, c.ok);
    f.Add(total, {{"url", url}, {"result", "failed"}}, c.failed);
    f.Add(total, {{"url", url}, {"result", "dropped"}}, c.dropped);
    f.Add(attempts, {{"url", url}, {"result", "ok"}}, c.attempts_ok);
    f.Add(attempts, {{"url", url}, {"result", "error"}}, c.attempts_error);
  }
  f.Add(queue, {}, static_cast<double>(queue_.size() + in_flight_));
  return f.Take();
}

}  // namespace virtscale::autoscale
