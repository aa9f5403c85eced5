#pragma once
// The agent's one persistent libvirt connection. It runs libvirt's default event
// loop on its own thread (keepalive, close callback and lifecycle events need it),
// reconnects with exponential backoff when the connection closes or the first
// open fails, and never blocks callers while it is down.
//
//   LibvirtConnection conn({.uri = "test:///default"});
//   conn.Start();
//   if (auto c = conn.Acquire()) virConnectNumOfDomains(c.get());
#include <libvirt/libvirt.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/duration.h"

namespace virtscale {

// A connection reference: holds virConnectRef, releases with virConnectClose.
using ConnectionRef = std::shared_ptr<virConnect>;

// Lifecycle event name ("defined", "undefined", "started", "suspended",
// "resumed", "stopped", "shutdown", "pmsuspended", "crashed") and domain name.
using DomainEventListener =
    std::function<void(const std::string& event, const std::string& domain)>;
// Called with true on every (re)connect and false on every loss.
using ConnectionStateListener = std::function<void(bool up)>;

class LibvirtConnection {
 public:
  struct Options {
    std::string uri = "qemu:///system";
    bool read_only = false;
    Duration keepalive_interval = std::chrono::seconds(5);
    int keepalive_count = 3;
    Duration initial_backoff = std::chrono::milliseconds(500);
    Duration max_backoff = std::chrono::seconds(30);
  };

  explicit LibvirtConnection(Options options);
  ~LibvirtConnection();  // Stop()
  LibvirtConnection(const LibvirtConnection&) = delete;
  LibvirtConnection& operator=(const LibvirtConnection&) = delete;

  // Listeners must be set before Start(). The event listener runs on the
  // event-loop thread, the state listener on the connect thread: keep both short.
  void SetDomainEventListener(DomainEventListener listener);
  void SetStateListener(ConnectionStateListener listener);

  void Start();  // returns at once; connects in the background
  void Stop();

  // The live connection, or nullptr while down. Hold it for one operation only.
  ConnectionRef Acquire() const;
  bool up() const { return up_.load(); }
  const std::string& uri() const { return options_.uri; }
  // Connection attempts made so far (first open included); for tests and logs.
  int connect_attempts() const { return connect_attempts_.load(); }
  // Successful opens so far: a snapshot taken under an older generation
  // predates the latest reconnect (the daemon may have restarted since).
  uint64_t generation() const { return generation_.load(); }
  // Blocks until connected or `timeout` passes; returns up().
  bool WaitUp(Duration timeout) const;
  // Reports that a call failed in a way that suggests the connection is dead
  // (VIR_ERR_SYSTEM_ERROR, VIR_ERR_RPC, VIR_ERR_NO_CONNECT): triggers reconnect.
  void ReportBroken();

 private:
  void ConnectLoop();
  bool TryOpen(bool log_failure);  // opens and registers callbacks; mu_ unlocked
  void DropLocked(std::unique_lock<std::mutex>& lock);  // unregisters and releases conn_
  static void CloseCallback(virConnectPtr conn, int reason, void* opaque);
  static int LifecycleCallback(virConnectPtr conn, virDomainPtr dom, int event, int detail,
                               void* opaque);

  // Handed to libvirt as callback opaque; libvirt frees it when the callback is
  // gone, and Drop clears `self` first so an in-flight callback never outlives us.
  struct CallbackGuard;

  Options options_;
  DomainEventListener event_listener_;
  ConnectionStateListener state_listener_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  ConnectionRef conn_;  // guarded by mu_
  int lifecycle_callback_id_ = -1;
  CallbackGuard* lifecycle_guard_ = nullptr;  // owned by libvirt once registered
  CallbackGuard* close_guard_ = nullptr;      // ours; null when no close callback is registered
  bool stopping_ = false;
  bool broken_ = false;
  std::atomic<bool> up_{false};
  std::atomic<int> connect_attempts_{0};
  std::atomic<uint64_t> generation_{0};
  std::thread connect_thread_;
};

// Registers libvirt's default event implementation and runs it on a detached
// thread; idempotent. Must happen before the first virConnectOpen.
void EnsureLibvirtEventLoop();

}  // namespace virtscale
