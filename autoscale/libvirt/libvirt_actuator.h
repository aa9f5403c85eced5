#pragma once
// The Actuator that changes VMs through libvirt. Each Execute() takes one
// connection from the provider for the whole operation and blocks until the
// operation has finished (kStop/kDelete wait up to op.shutdown_timeout).
// Execute may be called from several threads at once (a job's operations run
// in parallel); the actuator keeps concurrent creates of one group on distinct
// names.
//
//   kStart   virDomainCreate on a defined, stopped domain (running: ok, no-op).
//   kCreate  name "{group}-{n}" (smallest free n >= 1, not reserved by a create
//            still running in this process), render op.tmpl, the template
//            validated at load (domain_template.h; never re-read from disk),
//            create the annotated volumes, define, start. Any failure or a
//            cancel rolls back what this call made (destroy/undefine the new
//            domain, delete its volumes). A name taken between listing and
//            defining (by a domain or a leftover volume) is retried with the
//            next free n, up to Options::max_name_attempts names.
//   kStop    virDomainShutdown, poll until shut off or op.shutdown_timeout, then
//            virDomainDestroy. Already stopped: ok, no-op.
//   kDelete  Only for a domain the group OWNS (DESIGN.md "Ownership"): its
//            virtscale metadata names op.group AND records the domain's own UUID
//            (compared case-insensitively). Everything else is refused before
//            anything is touched: no metadata ("not created by virtscale"),
//            another group, a copy ("its ownership record names UUID A, the
//            domain is B (a copy?)"), a 0.1.0 member without a recorded UUID.
//            Stops as above, undefines (with managed-save, snapshot, checkpoint
//            and NVRAM cleanup where the driver supports the flags), then deletes
//            each volume recorded in the metadata only when it is a disk of this
//            domain and no disk or backing file of any other defined domain;
//            volumes kept are named in the logged detail.
//
// Every libvirt call runs under Options::call_timeout (volume creation under
// Options::volume_timeout): a call that does not return fails the operation
// with "X timed out after 10s" and is abandoned. Cancel() makes running and
// later operations give up within about a second with "cancelled (agent
// stopping)", rolling back a half-made create.
//
// A provider returning nullptr fails the operation with error "libvirt down".
// Errors carry libvirt's message: "define: operation failed: domain 'web-3'
// already exists with uuid ...". The engine logs each operation once, with OperationResult::detail.
//
//   LibvirtActuator::Options options;
//   options.call_timeout = config.libvirt.call_timeout;
//   options.on_connection_error = [&conn] { conn.ReportBroken(); };
//   LibvirtActuator actuator([&conn] { return conn.Acquire(); }, options);
//   Operation op;
//   op.kind = Operation::Kind::kCreate;
//   op.group = "web";
//   op.tmpl = rule.template_doc;
//   op.template_path = rule.template_path;
//   OperationResult r = actuator.Execute(op);  // r.domain == "web-3"
#include <libvirt/libvirt.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "autoscale/actuator.h"
#include "autoscale/domain_template.h"
#include "autoscale/libvirt/deadline_call.h"
#include "autoscale/rules.h"
#include "collectors/deadline_runner.h"
#include "collectors/libvirt_connection.h"
#include "common/duration.h"

namespace virtscale::autoscale {

struct LibvirtActuatorOptions {
  // How often the domain state is polled while waiting for a guest shutdown.
  Duration poll_interval = std::chrono::milliseconds(250);
  // Deadline of every libvirt call (the agent passes libvirt.call_timeout).
  Duration call_timeout = std::chrono::seconds(10);
  // Deadline of creating one volume: a clone copies the whole base volume.
  Duration volume_timeout = std::chrono::minutes(10);
  // After Cancel(), how long a libvirt call still running is waited for.
  Duration cancel_grace = std::chrono::seconds(1);
  // Names tried by one kCreate when defining clashes with a concurrent definer.
  int max_name_attempts = 5;
  // Unix seconds recorded as created-at; defaults to the system clock.
  std::function<int64_t()> now_unix;
  // Called when a libvirt call fails with an error that suggests a dead
  // connection (system/RPC/no-connect); wire to LibvirtConnection::ReportBroken.
  std::function<void()> on_connection_error;

  // Test seams, empty in production: run just before virDomainDefineXML (a
  // test defines a clashing domain here) and just before virDomainCreate of a
  // new domain (a test makes the start fail here).
  std::function<void(virConnectPtr conn, const std::string& name)> before_define;
  std::function<void(virDomainPtr dom)> before_start;
  // The graceful-shutdown request, virDomainShutdown when empty; a test
  // replaces it to play a guest that ignores ACPI (the test driver always obeys),
  // or a call that hangs. It runs on the call's worker thread.
  std::function<int(virDomainPtr dom)> request_shutdown;
};

// What CleanupLeftovers did.
struct LeftoverCleanup {
  std::vector<std::string> deleted;  // "pool/volume", each also logged
  std::string error;                 // empty when every check and delete worked
};

class LibvirtActuator : public Actuator {
 public:
  using ConnectionProvider = std::function<ConnectionRef()>;

  using Options = LibvirtActuatorOptions;

  explicit LibvirtActuator(ConnectionProvider provider, Options options = {});

  OperationResult Execute(const Operation& op) override;

  // Sets `direction` of each domain's scale stamp (collectors/domain_metadata.h)
  // to the later of its current value and `unix_seconds`, keeping the other
  // direction; written to the persistent config (and the live definition of a
  // running domain; transient domains: live only). Returns "" or what failed.
  std::string RecordScaleTime(const std::string& group, Direction direction, int64_t unix_seconds,
                              const std::vector<std::string>& domains) override;

  // Lease, then guest agent, then ARP (DESIGN.md "Lifecycle keys").
  std::string MemberAddress(const std::string& domain) override;

  // Writes `stamp` as the domain's lifecycle element, in the same places.
  std::string RecordLifecycle(const std::string& domain, const LifecycleStamp& stamp) override;

  // Idempotent; see the top of this file.
  void Cancel() override;

  // Start-up cleanup after a crash in the middle of a create: for every group of
  // `rules` (dry-run groups excepted) whose template creates volumes, deletes the
  // volumes in those pools named like a member's ("{group}-{n}-{target}.{format}",
  // VolumeAnnotation::VolumeName) that are no disk or backing file of any defined
  // domain and belong to no create running in this process. Defined domains are
  // never touched: one defined but never started is a complete stopped member.
  // Call only on a read-write connection and never in dry run.
  LeftoverCleanup CleanupLeftovers(const RuleSet& rules);

  // libvirt calls abandoned at their deadline that have not returned yet.
  size_t stuck_calls() const { return stuck_->size(); }

  // Smallest "{group}-{n}" (n >= 1) not in `used`.
  static std::string PickDomainName(const std::string& group, const std::set<std::string>& used);

 private:
  class Run;  // one operation's libvirt calls (libvirt_actuator.cc)
  friend class Run;

  // Picks and reserves a free name; ReleaseName when the create has finished.
  std::string ReserveName(const std::string& group, const std::set<std::string>& used);
  void ReleaseName(const std::string& name);
  // True when a create of `name` runs now or ran since the current cleanup began.
  bool NameBusy(const std::string& name);

  ConnectionProvider provider_;
  Options options_;
  std::shared_ptr<CancelFlag> cancel_ = std::make_shared<CancelFlag>();
  std::shared_ptr<StuckCalls> stuck_ = std::make_shared<StuckCalls>();
  std::mutex random_mu_;
  RandomSource random_;  // guarded by random_mu_
  std::mutex names_mu_;
  std::set<std::string> reserved_names_;  // guarded by names_mu_
  int cleanups_running_ = 0;              // guarded by names_mu_
  std::set<std::string> names_seen_;      // reserved while a cleanup runs; names_mu_
  std::mutex stamp_mu_;                   // one read-modify-write of stamps at a time
  std::mutex cleanup_mu_;                 // one cleanup at a time
};

}  // namespace virtscale::autoscale
