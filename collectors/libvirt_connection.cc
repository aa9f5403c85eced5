#include "collectors/libvirt_connection.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <utility>

#include "collectors/libvirt_error.h"
#include "common/log.h"

namespace virtscale {
namespace {

const char* LifecycleEventName(int event) {
  switch (event) {
    case VIR_DOMAIN_EVENT_DEFINED:
      return "defined";
    case VIR_DOMAIN_EVENT_UNDEFINED:
      return "undefined";
    case VIR_DOMAIN_EVENT_STARTED:
      return "started";
    case VIR_DOMAIN_EVENT_SUSPENDED:
      return "suspended";
    case VIR_DOMAIN_EVENT_RESUMED:
      return "resumed";
    case VIR_DOMAIN_EVENT_STOPPED:
      return "stopped";
    case VIR_DOMAIN_EVENT_SHUTDOWN:
      return "shutdown";
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      return "pmsuspended";
    case VIR_DOMAIN_EVENT_CRASHED:
      return "crashed";
    default:
      return nullptr;
  }
}

}  // namespace

struct LibvirtConnection::CallbackGuard {
  std::mutex mu;
  LibvirtConnection* self = nullptr;  // null once the connection dropped the callback

  static CallbackGuard* New(LibvirtConnection* self) {
    auto* guard = new CallbackGuard;
    guard->self = self;
    return guard;
  }
  static void Free(void* opaque) { delete static_cast<CallbackGuard*>(opaque); }
  // Clears `self`, waiting for a callback that is running right now.
  void Disarm() {
    std::lock_guard lock(mu);
    self = nullptr;
  }
};

void EnsureLibvirtEventLoop() {
  static std::once_flag once;
  std::call_once(once, [] {
    InstallLibvirtErrorHandler();
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
      LogError("libvirt event loop registration failed", {{"error", LastLibvirtError().message}});
      return;
    }
    // Runs for the life of the process: libvirt offers no way to unregister the
    // default implementation, so there is nothing to join.
    std::thread([] {
      while (true) {
        if (virEventRunDefaultImpl() < 0) {
          LogWarn("libvirt event loop iteration failed", {{"error", LastLibvirtError().message}});
        }
      }
    }).detach();
  });
}

LibvirtConnection::LibvirtConnection(Options options) : options_(std::move(options)) {}

LibvirtConnection::~LibvirtConnection() { Stop(); }

void LibvirtConnection::SetDomainEventListener(DomainEventListener listener) {
  event_listener_ = std::move(listener);
}

void LibvirtConnection::SetStateListener(ConnectionStateListener listener) {
  state_listener_ = std::move(listener);
}

void LibvirtConnection::Start() {
  EnsureLibvirtEventLoop();
  std::lock_guard lock(mu_);
  if (connect_thread_.joinable()) return;
  stopping_ = false;
  connect_thread_ = std::thread([this] { ConnectLoop(); });
}

void LibvirtConnection::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (connect_thread_.joinable()) connect_thread_.join();
}

ConnectionRef LibvirtConnection::Acquire() const {
  std::lock_guard lock(mu_);
  if (broken_) return nullptr;
  return conn_;
}

bool LibvirtConnection::WaitUp(Duration timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return up_.load() || stopping_; });
  return up_.load();
}

void LibvirtConnection::ReportBroken() {
  {
    std::lock_guard lock(mu_);
    if (conn_ == nullptr || broken_) return;
    broken_ = true;
  }
  cv_.notify_all();
}

void LibvirtConnection::CloseCallback(virConnectPtr /*conn*/, int reason, void* opaque) {
  auto* guard = static_cast<CallbackGuard*>(opaque);
  std::lock_guard lock(guard->mu);
  LibvirtConnection* self = guard->self;
  if (self == nullptr) return;
  LogWarn("libvirt connection closed", {{"uri", self->options_.uri}, {"reason", reason}});
  // Runs on the event-loop thread: only flag it; the connect thread reopens.
  self->ReportBroken();
}

int LibvirtConnection::LifecycleCallback(virConnectPtr /*conn*/, virDomainPtr dom, int event,
                                         int /*detail*/, void* opaque) {
  auto* guard = static_cast<CallbackGuard*>(opaque);
  std::lock_guard lock(guard->mu);
  LibvirtConnection* self = guard->self;
  if (self == nullptr) return 0;
  const char* name = LifecycleEventName(event);
  if (name == nullptr || !self->event_listener_) return 0;
  const char* domain = virDomainGetName(dom);
  self->event_listener_(name, domain ? domain : "");
  return 0;
}

bool LibvirtConnection::TryOpen(bool log_failure) {
  connect_attempts_.fetch_add(1);
  const unsigned flags = options_.read_only ? VIR_CONNECT_RO : 0;
  virConnectPtr raw = virConnectOpenAuth(options_.uri.c_str(), virConnectAuthPtrDefault, flags);
  if (raw == nullptr) {
    Log(log_failure ? spdlog::level::warn : spdlog::level::debug, "libvirt connect failed",
        {{"uri", options_.uri}, {"error", LastLibvirtError().message}});
    return false;
  }
  ConnectionRef conn(raw, [](virConnectPtr c) { virConnectClose(c); });
  const int interval_s = std::max(
      1,
      static_cast<int>(
          std::chrono::duration_cast<std::chrono::seconds>(options_.keepalive_interval).count()));
  // Local drivers (test://, qemu:///embed) have no keepalive: not an error.
  if (virConnectSetKeepAlive(raw, interval_s, static_cast<unsigned>(options_.keepalive_count)) <
      0) {
    LogDebug("libvirt keepalive not available", {{"uri", options_.uri}});
  }
  // The close guard stays ours (no freecb): drivers without close callbacks
  // accept the registration as a no-op and would never free it. Unregistering
  // waits for a running callback, so deleting after it is safe.
  auto* close_guard = CallbackGuard::New(this);
  if (virConnectRegisterCloseCallback(raw, CloseCallback, close_guard, nullptr) < 0) {
    delete close_guard;
    close_guard = nullptr;
  }
  // If this registration fails libvirt never owns the guard: free it here.
  auto* lifecycle_guard = CallbackGuard::New(this);
  int lifecycle_id = virConnectDomainEventRegisterAny(raw, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                      VIR_DOMAIN_EVENT_CALLBACK(LifecycleCallback),
                                                      lifecycle_guard, CallbackGuard::Free);
  if (lifecycle_id < 0) {
    delete lifecycle_guard;
    lifecycle_guard = nullptr;
    LogWarn("libvirt lifecycle events unavailable",
            {{"uri", options_.uri}, {"error", LastLibvirtError().message}});
  }
  {
    std::lock_guard lock(mu_);
    conn_ = std::move(conn);
    close_guard_ = close_guard;
    lifecycle_guard_ = lifecycle_guard;
    lifecycle_callback_id_ = lifecycle_id;
    broken_ = false;
    generation_.fetch_add(1);
    up_.store(true);
  }
  cv_.notify_all();
  LogInfo("libvirt connected", {{"uri", options_.uri}});
  return true;
}

void LibvirtConnection::DropLocked(std::unique_lock<std::mutex>& lock) {
  ConnectionRef conn = std::move(conn_);
  conn_ = nullptr;
  int lifecycle_id = std::exchange(lifecycle_callback_id_, -1);
  CallbackGuard* lifecycle_guard = std::exchange(lifecycle_guard_, nullptr);
  CallbackGuard* close_guard = std::exchange(close_guard_, nullptr);
  up_.store(false);
  lock.unlock();
  // Disarm before unregistering: after that libvirt may free the guards.
  if (lifecycle_guard != nullptr) lifecycle_guard->Disarm();
  if (close_guard != nullptr) close_guard->Disarm();
  if (conn != nullptr) {
    // Unregistering on a dead connection fails harmlessly; it must still be
    // tried so a live one stops calling back.
    if (lifecycle_id >= 0) virConnectDomainEventDeregisterAny(conn.get(), lifecycle_id);
    if (close_guard != nullptr) virConnectUnregisterCloseCallback(conn.get(), CloseCallback);
  }
  delete close_guard;
  conn.reset();  // closes once callers holding an Acquire()d ref are done
  lock.lock();
}

void LibvirtConnection::ConnectLoop() {
  Duration backoff = options_.initial_backoff;
  int failures = 0;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (conn_ != nullptr && !broken_) {
      cv_.wait(lock, [this] { return stopping_ || broken_; });
      continue;
    }
    if (conn_ != nullptr) {  // broken: drop it, tell listeners, reopen at once
      DropLocked(lock);
      LogWarn("libvirt connection lost; reconnecting", {{"uri", options_.uri}});
      if (state_listener_) {
        lock.unlock();
        state_listener_(false);
        lock.lock();
      }
      backoff = options_.initial_backoff;
      continue;
    }
    lock.unlock();
    // Warn on the first failure of a streak and every tenth; the rest go to debug.
    bool ok = TryOpen(failures % 10 == 0);
    failures = ok ? 0 : failures + 1;
    if (ok && state_listener_) state_listener_(true);
    lock.lock();
    if (ok) {
      backoff = options_.initial_backoff;
      continue;
    }
    cv_.wait_for(lock, backoff, [this] { return stopping_; });
    backoff = std::min<Duration>(backoff * 2, options_.max_backoff);
  }
  DropLocked(lock);
  broken_ = false;
}

}  // namespace virtscale
