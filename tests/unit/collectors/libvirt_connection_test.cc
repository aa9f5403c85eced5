#include "collectors/libvirt_connection.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <vector>

namespace virtscale {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Records what the connection reports, for waiting on from the test thread.
class Recorder {
 public:
  void Add(std::string entry) {
    std::lock_guard lock(mu_);
    entries_.push_back(std::move(entry));
    cv_.notify_all();
  }
  bool WaitFor(const std::string& entry, Duration timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      return std::find(entries_.begin(), entries_.end(), entry) != entries_.end();
    });
  }
  bool WaitForCount(size_t n, Duration timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return entries_.size() >= n; });
  }
  std::vector<std::string> entries() {
    std::lock_guard lock(mu_);
    return entries_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> entries_;
};

constexpr const char* kTransientXml = R"(<domain type='test'>
  <name>conn-test-vm</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>)";

TEST(LibvirtConnection, ConnectsAndForwardsLifecycleEventsByName) {
  Recorder events;
  LibvirtConnection conn({.uri = "test:///default"});
  conn.SetDomainEventListener([&](const std::string& event, const std::string& domain) {
    events.Add(event + " " + domain);
  });
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  EXPECT_TRUE(conn.up());
  ConnectionRef c = conn.Acquire();
  ASSERT_NE(c, nullptr);
  EXPECT_GE(virConnectNumOfDomains(c.get()), 1);

  virDomainPtr dom = virDomainCreateXML(c.get(), kTransientXml, 0);
  ASSERT_NE(dom, nullptr);
  EXPECT_TRUE(events.WaitFor("started conn-test-vm", seconds(10)));
  ASSERT_EQ(virDomainDestroy(dom), 0);
  virDomainFree(dom);
  EXPECT_TRUE(events.WaitFor("stopped conn-test-vm", seconds(10)));
  conn.Stop();
  EXPECT_FALSE(conn.up());
  EXPECT_EQ(conn.Acquire(), nullptr);
}

TEST(LibvirtConnection, UnreachableUriIsNotFatalAndKeepsRetrying) {
  LibvirtConnection conn({.uri = "qemu+unix:///system?socket=/nonexistent/virtscale-test.sock",
                          .initial_backoff = milliseconds(5),
                          .max_backoff = milliseconds(20)});
  conn.Start();
  EXPECT_FALSE(conn.WaitUp(milliseconds(200)));
  EXPECT_FALSE(conn.up());
  EXPECT_EQ(conn.Acquire(), nullptr);
  for (int i = 0; i < 1000 && conn.connect_attempts() < 3; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_GE(conn.connect_attempts(), 3);
  conn.Stop();  // returns although never connected
}

TEST(LibvirtConnection, ReportBrokenReconnectsAndTellsTheStateListener) {
  Recorder states;
  LibvirtConnection conn({.uri = "test:///default", .initial_backoff = milliseconds(5)});
  conn.SetStateListener([&](bool up) { states.Add(up ? "up" : "down"); });
  conn.Start();
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  ASSERT_TRUE(states.WaitFor("up", seconds(10)));
  ConnectionRef first = conn.Acquire();
  conn.ReportBroken();
  ASSERT_TRUE(states.WaitFor("down", seconds(10)));
  for (int i = 0; i < 1000 && conn.connect_attempts() < 2; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(conn.WaitUp(seconds(10)));
  EXPECT_EQ(conn.connect_attempts(), 2);
  ConnectionRef second = conn.Acquire();
  ASSERT_NE(second, nullptr);
  EXPECT_NE(first.get(), second.get());
  // The old reference stays usable by whoever still holds it.
  EXPECT_GE(virConnectNumOfDomains(first.get()), 1);
  // The listener runs just after up() turns true: wait for it, not for up().
  EXPECT_TRUE(states.WaitForCount(3, seconds(10)));
  EXPECT_EQ(states.entries(), (std::vector<std::string>{"up", "down", "up"}));
}

}  // namespace
}  // namespace virtscale
