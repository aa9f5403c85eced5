#include "autoscale/notifier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "tests/unit/support/test_server.h"

namespace virtscale::autoscale {
namespace {

using namespace std::chrono_literals;
using testing::Gate;
using testing::TestServer;
using testing::WaitFor;

// Records every POST it gets; answers with the statuses of `statuses` in
// turn (the last one from then on).
class Receiver {
 public:
  explicit Receiver(std::vector<int> statuses = {200}) : statuses_(std::move(statuses)) {
    server_.server().Post(R"(/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      posts_.push_back(req.path + " " + req.get_header_value("Content-Type") + " " +
                       req.get_header_value("User-Agent"));
      bodies_.push_back(nlohmann::json::parse(req.body, nullptr, false));
      res.status = statuses_[std::min(posts_.size() - 1, statuses_.size() - 1)];
    });
  }
  NotificationTarget Target(const std::string& path, std::set<NotificationEvent> events = {}) {
    NotificationTarget t;
    std::string why;
    t.url = *ParseHttpUrl(server_.Url(path), why);
    t.events = events.empty() ? std::set<NotificationEvent>(AllNotificationEvents().begin(),
                                                            AllNotificationEvents().end())
                              : events;
    return t;
  }
  size_t count() const {
    std::lock_guard lock(mu_);
    return posts_.size();
  }
  std::vector<std::string> posts() const {
    std::lock_guard lock(mu_);
    return posts_;
  }
  std::vector<nlohmann::json> bodies() const {
    std::lock_guard lock(mu_);
    return bodies_;
  }
  std::string Url(const std::string& path) const { return server_.Url(path); }

 private:
  TestServer server_;
  std::vector<int> statuses_;
  mutable std::mutex mu_;
  std::vector<std::string> posts_;
  std::vector<nlohmann::json> bodies_;
};

NotifierOptions Fast() {
  NotifierOptions o;
  o.backoff_base = 1ms;
  o.backoff_max = 4ms;
  return o;
}

Decision Finished(Outcome outcome, DecisionResult result, const std::string& group = "web") {
  Decision d;
  d.id = 7;
  d.group = group;
  d.outcome = outcome;
  d.direction = outcome == Outcome::kScaleDown ? Direction::kDown : Direction::kUp;
  ActionRecord a;
  a.operation.kind = Operation::Kind::kStart;
  a.domain = "web-2";
  a.result = result == DecisionResult::kOk ? ActionResult::kOk : ActionResult::kError;
  d.actions.push_back(a);
  d.result = result;
  return d;
}

// The value of `name`{labels}, or -1 when absent.
double Sample(const Notifier& n, const std::string& name,
              const std::map<std::string, std::string>& labels) {
  std::vector<prometheus::MetricFamily> families = n.Collect();
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have != labels) continue;
      return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return -1;
}

TEST(Notifier, PostsTheDecisionAsJsonAndCountsItByUrlWithoutTheQuery) {
  Receiver receiver;
  Notifier notifier(Fast());
  notifier.SetTargets({receiver.Target("/hook?token=s3cret")}, {});
  const std::string label = receiver.Url("/hook");
  EXPECT_EQ(Sample(notifier, "virtscale_notifications_total", {{"url", label}, {"result", "ok"}}),
            0);
  notifier.NotifyDecision(Finished(Outcome::kScaleUp, DecisionResult::kOk));
  ASSERT_TRUE(WaitFor([&] {
    return Sample(notifier, "virtscale_notifications_total", {{"url", label}, {"result", "ok"}}) ==
           1;
  }));
  ASSERT_EQ(receiver.count(), 1u);
  EXPECT_EQ(receiver.posts()[0], "/hook application/json virtscale");
  const nlohmann::json body = receiver.bodies()[0];
  EXPECT_EQ(body["group"], "web");
  EXPECT_EQ(body["outcome"], "scale_up");
  EXPECT_EQ(body["event"], "scale_up");
  EXPECT_EQ(body["actions"][0]["result"], "ok");
  EXPECT_EQ(Sample(notifier, "virtscale_notification_queue_length", {}), 0);
  std::vector<prometheus::MetricFamily> families = notifier.Collect();
  for (const auto& f : families)
    for (const auto& m : f.metric)
      for (const auto& l : m.label) EXPECT_EQ(l.value.find("s3cret"), std::string::npos);
}

TEST(Notifier, RetriesUntilA2xx) {
  Receiver receiver({500, 302, 204});
  Notifier notifier(Fast());
  notifier.SetTargets({receiver.Target("/hook")}, {});
  notifier.NotifyDecision(Finished(Outcome::kScaleDown, DecisionResult::kOk));
  const std::string url = receiver.Url("/hook");
  ASSERT_TRUE(WaitFor([&] {
    return Sample(notifier, "virtscale_notifications_total", {{"url", url}, {"result", "ok"}}) == 1;
  }));
  EXPECT_EQ(receiver.count(), 3u);
  EXPECT_EQ(Sample(notifier, "virtscale_notification_attempts_total",
                   {{"url", url}, {"result", "error"}}),
            2);
  EXPECT_EQ(
      Sample(notifier, "virtscale_notification_attempts_total", {{"url", url}, {"result", "ok"}}),
      1);
  EXPECT_EQ(Sample(notifier, "virtscale_notifications_total", {{"url", url}, {"result", "failed"}}),
            0);
}

TEST(Notifier, GivesUpAfterMaxAttempts) {
  Receiver receiver({503});
  NotifierOptions options = Fast();
  options.max_attempts = 3;
  Notifier notifier(options);
  notifier.SetTargets({receiver.Target("/hook")}, {});
  notifier.NotifyDecision(Finished(Outcome::kScaleUp, DecisionResult::kOk));
  const std::string url = receiver.Url("/hook");
  ASSERT_TRUE(WaitFor([&] {
    return Sample(notifier, "virtscale_notifications_total",
                  {{"url", url}, {"result", "failed"}}) == 1;
  }));
  EXPECT_EQ(receiver.count(), 3u);
  EXPECT_EQ(notifier.pending(), 0u);
}

TEST(Notifier, FullQueueDropsTheNewNotificationAndCountsIt) {
  Gate gate;
  TestServer server;
  std::atomic<int> received{0};
  server.server().Post("/slow", [&](const httplib::Request&, httplib::Response&) {
    gate.Wait();
    ++received;
  });
  NotifierOptions options = Fast();
  options.max_queue = 2;
  Notifier notifier(options);
  NotificationTarget target;
  std::string why;
  target.url = *ParseHttpUrl(server.Url("/slow"), why);
  target.events = {NotificationEvent::kScaleUp};
  target.timeout = 30s;
  notifier.SetTargets({target}, {});
  const Decision d = Finished(Outcome::kScaleUp, DecisionResult::kOk);
  notifier.NotifyDecision(d);
  ASSERT_TRUE(WaitFor([&] { return gate.waiting() == 1; }));  // in flight, out of the queue
  for (int i = 0; i < 5; ++i) notifier.NotifyDecision(d);
  const std::string url = server.Url("/slow");
  EXPECT_EQ(
      Sample(notifier, "virtscale_notifications_total", {{"url", url}, {"result", "dropped"}}), 3);
  EXPECT_EQ(Sample(notifier, "virtscale_notification_queue_length", {}), 3);  // 2 + in flight
  gate.Open();
  EXPECT_TRUE(WaitFor([&] { return received == 3; }));
  EXPECT_TRUE(WaitFor([&] { return notifier.pending() == 0; }));
}

TEST(Notifier, EachTargetGetsTheFirstEventItSubscribedTo) {
  Receiver receiver;
  Notifier notifier(Fast());
  // Top level: failures only; the group's target: scale_up only; another group's: all.
  notifier.SetTargets({receiver.Target("/failures", {NotificationEvent::kFailed})},
                      {{"web", {receiver.Target("/ups", {NotificationEvent::kScaleUp})}},
                       {"db", {receiver.Target("/db")}}});
  notifier.NotifyDecision(Finished(Outcome::kScaleUp, DecisionResult::kPartial));
  notifier.NotifyDecision(Finished(Outcome::kScaleDown, DecisionResult::kOk));  // nobody
  notifier.NotifyDecision(Finished(Outcome::kScaleUp, DecisionResult::kOk));
  ASSERT_TRUE(WaitFor([&] { return receiver.count() == 3 && notifier.pending() == 0; }));
  std::multiset<std::string> got;
  for (const nlohmann::json& b : receiver.bodies())
    got.insert(b["event"].get<std::string>() + " " + b["result"].get<std::string>());
  std::vector<std::string> paths;
  for (const std::string& p : receiver.posts()) paths.push_back(p.substr(0, p.find(' ')));
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(got, (std::multiset<std::string>{"failed partial", "scale_up partial", "scale_up ok"}));
  EXPECT_EQ(paths, (std::vector<std::string>{"/failures", "/ups", "/ups"}));
}

TEST(Notifier, EventsOfAFinishedDecision) {
  EXPECT_EQ(EventsOf(Finished(Outcome::kScaleUp, DecisionResult::kOk)),
            std::vector<NotificationEvent>{NotificationEvent::kScaleUp});
  EXPECT_EQ(
      EventsOf(Finished(Outcome::kScaleDown, DecisionResult::kError)),
      (std::vector<NotificationEvent>{NotificationEvent::kFailed, NotificationEvent::kScaleDown}));
  // A pause that could not be stored still paused the group.
  EXPECT_EQ(EventsOf(Finished(Outcome::kPaused, DecisionResult::kError)),
            std::vector<NotificationEvent>{NotificationEvent::kPaused});
  EXPECT_EQ(EventsOf(Finished(Outcome::kResumed, DecisionResult::kOk)),
            std::vector<NotificationEvent>{NotificationEvent::kResumed});
  // A scale-up whose actions never ran (the leadership was not confirmed).
  EXPECT_TRUE(EventsOf(Finished(Outcome::kScaleUp, DecisionResult::kCancelled)).empty());
}

TEST(Notifier, ShutdownCancelsARequestToAHangingServer) {
  Gate gate;
  TestServer server;
  server.server().Post("/hang", [&](const httplib::Request&, httplib::Response&) { gate.Wait(); });
  auto notifier = std::make_unique<Notifier>(Fast());
  NotificationTarget target;
  std::string why;
  target.url = *ParseHttpUrl(server.Url("/hang"), why);
  target.events = {NotificationEvent::kScaleUp};
  target.timeout = 60s;
  notifier->SetTargets({target}, {});
  notifier->NotifyDecision(Finished(Outcome::kScaleUp, DecisionResult::kOk));
  ASSERT_TRUE(WaitFor([&] { return gate.waiting() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  notifier->Shutdown();
  // Far below the 60s timeout: the request was cancelled, not waited out.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  notifier->NotifyDecision(Finished(Outcome::kScaleUp, DecisionResult::kOk));  // after: dropped
  EXPECT_EQ(Sample(*notifier, "virtscale_notifications_total",
                   {{"url", server.Url("/hang")}, {"result", "dropped"}}),
            1);
  gate.Open();
}

}  // namespace
}  // namespace virtscale::autoscale
