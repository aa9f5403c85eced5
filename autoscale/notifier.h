#pragma once
// Delivers notifications of autoscaler actions (DESIGN.md "Lifecycle keys"):
// each is a POST of a decision record as JSON, with an "event" key added, to
// every target that subscribed to the event: the top-level targets and those
// of the decision's group.
//
// Notify never blocks: it copies the body into a bounded queue (max_queue
// pending in total; a notification that finds it full is dropped and counted).
// One delivery thread takes whatever is due first from a queue ordered by
// next-attempt time, so a target in backoff never delays another; a target
// that hangs holds the thread for at most its timeout. A failed attempt (no
// answer, or a status other than 2xx) is retried after backoff_base, doubling
// up to backoff_max, at most max_attempts in all; then it counts as failed.
//
//   Notifier notifier;
//   notifier.SetTargets(cfg.notifications, GroupTargets(cfg.rules));
//   engine_options.on_change_finished = [&](const Decision& d) { notifier.NotifyDecision(d); };
//   // /metrics: families = notifier.Collect();
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "autoscale/decision.h"
#include "autoscale/notification_target.h"
#include "autoscale/rules.h"
#include "common/duration.h"
#include "common/http_client.h"

namespace virtscale::autoscale {

struct NotifierOptions {
  size_t max_queue = 1000;
  int max_attempts = 5;
  Duration backoff_base{std::chrono::seconds(1)};  // tests make it short
  Duration backoff_max{std::chrono::seconds(60)};
};

// The events a finished change decision sends, most specific first: `failed`
// when its result is error or partial, then scale_up / scale_down. Each target
// gets one POST, for the first of them it subscribed to. None when every
// action was cancelled before it ran.
std::vector<NotificationEvent> EventsOf(const Decision& d);

// Per group name, the targets of its rule.
std::map<std::string, std::vector<NotificationTarget>> GroupTargets(const RuleSet& rules);

class Notifier : public prometheus::Collectable {
 public:
  explicit Notifier(NotifierOptions options = {});
  ~Notifier();  // Shutdown()
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Replaces the targets (a reload); notifications already queued still go.
  void SetTargets(std::vector<NotificationTarget> global,
                  std::map<std::string, std::vector<NotificationTarget>> by_group);
  // Queues `record` (a JSON object) for each target of `group` subscribed to
  // one of `events` (see EventsOf). Never blocks on the network.
  void Notify(const std::vector<NotificationEvent>& events, const std::string& group,
              const nlohmann::json& record);
  void NotifyDecision(const Decision& d) { Notify(EventsOf(d), d.group, d.ToJson()); }
  // Cancels the request in flight, drops what is queued, joins. Idempotent.
  void Shutdown();
  // Notifications queued or in flight (tests).
  size_t pending() const;

  // virtscale_notifications_total{url,result}, virtscale_notification_attempts_total{url,result}
  // and virtscale_notification_queue_length.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Targets {
    std::vector<NotificationTarget> global;
    std::map<std::string, std::vector<NotificationTarget>> by_group;
  };
  struct Pending {
    NotificationTarget target;
    std::string group;  // for logs
    NotificationEvent event = NotificationEvent::kScaleUp;
    std::string body;
    int attempts = 0;
  };
  struct Counts {
    double ok = 0, failed = 0, dropped = 0, attempts_ok = 0, attempts_error = 0;
  };
  using Clock = std::chrono::steady_clock;

  void Run();
  void Deliver(Pending p, std::unique_lock<std::mutex>& lock);

  const NotifierOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Targets> targets_;
  std::multimap<Clock::time_point, Pending> queue_;  // by next attempt
  size_t in_flight_ = 0;
  RequestCanceller* current_ = nullptr;  // the attempt in flight
  bool stop_ = false;
  std::map<std::string, Counts> counts_;  // by Label()
  std::thread thread_;                    // last: starts once the members above exist
};

}  // namespace virtscale::autoscale
