#pragma once
// The Actuator that changes VMs through libvirt. Each Execute() takes one
// connection from the provider for the whole operation and blocks until the
// operation has finished (kStop/kDelete wait up to op.shutdown_timeout).
//
//   kStart   virDomainCreate on a defined, stopped domain (running: ok, no-op).
//   kCreate  name "{group}-{n}" (smallest free n >= 1), render the template
//            (domain_template.h), create the annotated volumes, define, start.
//            Any failure rolls back what this call made (destroy/undefine the
//            new domain, delete its volumes). A name taken between listing and
//            defining (by a domain or a leftover volume) is retried with the next
//            free n, up to Options::max_name_attempts names.
//   kStop    virDomainShutdown, poll until shut off or op.shutdown_timeout, then
//            virDomainDestroy. Already stopped: ok, no-op.
//   kDelete  Only for a domain whose virtscale metadata names op.group; any other
//            domain is refused ("refusing to delete domain X: not created by
//            virtscale"). Stops as above, undefines (with managed-save, snapshot,
//            checkpoint and NVRAM cleanup where the driver supports the flags),
//            then deletes exactly the volumes recorded in the metadata.
//
// A provider returning nullptr fails the operation with error "libvirt down".
// Errors carry libvirt's message: "define: operation failed: domain 'web-3'
// already exists with uuid ...". Every operation logs one line.
//
//   LibvirtActuator::Options options;
//   options.on_connection_error = [&conn] { conn.ReportBroken(); };
//   LibvirtActuator actuator([&conn] { return conn.Acquire(); }, options);
//   Operation op;
//   op.kind = Operation::Kind::kCreate;
//   op.group = "web";
//   op.template_path = "/etc/virtscale/templates/web.xml";
//   OperationResult r = actuator.Execute(op);  // r.domain == "web-3"
#include <libvirt/libvirt.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>

#include "autoscale/actuator.h"
#include "autoscale/domain_template.h"
#include "collectors/libvirt_connection.h"
#include "common/duration.h"

namespace virtscale::autoscale {

struct LibvirtActuatorOptions {
  // How often the domain state is polled while waiting for a guest shutdown.
  Duration poll_interval = std::chrono::milliseconds(250);
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
  // replaces it to play a guest that ignores ACPI (the test driver always obeys).
  std::function<int(virDomainPtr dom)> request_shutdown;
};

class LibvirtActuator : public Actuator {
 public:
  using ConnectionProvider = std::function<ConnectionRef()>;

  using Options = LibvirtActuatorOptions;

  explicit LibvirtActuator(ConnectionProvider provider, Options options = {});

  OperationResult Execute(const Operation& op) override;

  // Smallest "{group}-{n}" (n >= 1) not in `used`.
  static std::string PickDomainName(const std::string& group, const std::set<std::string>& used);

 private:
  struct Outcome;  // ok + error, internal

  Outcome Start(virConnectPtr conn, const Operation& op, std::string& domain);
  Outcome Create(virConnectPtr conn, const Operation& op, std::string& domain);
  // One attempt of Create with a fixed name; `clash` tells that the name (or a
  // volume name derived from it) was taken, so the next name may succeed.
  Outcome CreateNamed(virConnectPtr conn, const DomainTemplate& tmpl, const Operation& op,
                      const std::string& name, bool& clash);
  Outcome Stop(virConnectPtr conn, const Operation& op, std::string& domain);
  Outcome Delete(virConnectPtr conn, const Operation& op, std::string& domain);

  // Shuts `dom` down gracefully within `timeout`, then destroys it. `forced` tells
  // whether the destroy was needed.
  Outcome StopDomain(virDomainPtr dom, Duration timeout, bool& forced);
  // virDomainUndefineFlags with the richest cleanup flags the driver accepts.
  Outcome UndefineDomain(virDomainPtr dom);
  // Builds "what: libvirt message" from the last libvirt error and reports
  // dead connections to Options::on_connection_error.
  std::string ErrorText(std::string_view what);

  ConnectionProvider provider_;
  Options options_;
  std::mutex random_mu_;
  RandomSource random_;  // guarded by random_mu_
};

}  // namespace virtscale::autoscale
