#pragma once
// The only code that changes VMs. The planner turns a scaling decision into
// Operations on named domains; an Actuator executes them one at a time.
// LibvirtActuator (autoscale/libvirt/libvirt_actuator.h) is the real one; tests use fakes.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autoscale/domain_template.h"
#include "autoscale/rules.h"
#include "collectors/snapshot.h"

namespace virtscale::autoscale {

struct Operation {
  enum class Kind {
    kStart,   // start a stopped member (warm pool)
    kCreate,  // define + start a new domain from the group's template
    kStop,    // graceful shutdown with timeout, then destroy; stays defined
    kDelete,  // kStop, then undefine and remove the volumes it created
  };
  Kind kind = Kind::kStart;
  std::string group;
  std::string domain;  // empty for kCreate: the actuator picks "{group}-{n}"
  // kCreate only: the template validated at load (an edited file takes effect
  // only after a successful reload), and its absolute path for the metadata.
  std::shared_ptr<const DomainTemplate> tmpl;
  std::string template_path;
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(60)};
};

const char* OperationKindName(Operation::Kind kind);  // "start", "create", "stop", "delete"

struct OperationResult {
  bool ok = false;
  std::string domain;  // the domain acted on (the new name for kCreate)
  std::string
      error;  // reason when !ok, e.g. "define: operation failed: domain 'web-3' already exists"
  std::string detail;  // on success, e.g. "already running", "1 volume(s) deleted"
  double duration_seconds = 0;
  bool not_run = false;  // never started (leadership not confirmed): recorded as cancelled
};

class Actuator {
 public:
  virtual ~Actuator() = default;
  // Must refuse kDelete on a domain that the group does not own (DESIGN.md
  // "Ownership": metadata naming the group AND recording the domain's own UUID).
  virtual OperationResult Execute(const Operation& op) = 0;
  // Stamps the time of the group's last scale action in `direction` on each of
  // `domains` (collectors/domain_metadata.h, ScaleStamp), so cooldowns survive a
  // restart. Best effort: returns "" or what failed.
  virtual std::string RecordScaleTime(const std::string& group, Direction direction,
                                      int64_t unix_seconds,
                                      const std::vector<std::string>& domains) {
    (void)group, (void)direction, (void)unix_seconds, (void)domains;
    return "";
  }
  // Writes the domain's lifecycle element (pause and protection, see
  // collectors/domain_metadata.h) so they survive a restart. Returns "" or what
  // failed.
  virtual std::string RecordLifecycle(const std::string& domain, const LifecycleStamp& stamp) {
    (void)domain, (void)stamp;
    return "not supported by this actuator";
  }
  // The member's first IPv4 address ({address} of health checks and hooks),
  // "" when not known. Called from health-check workers.
  virtual std::string MemberAddress(const std::string& domain) {
    (void)domain;
    return "";
  }
  // Agent shutdown: running and later Execute calls give up as soon as they
  // safely can (rolling back what they made) instead of waiting out timeouts.
  virtual void Cancel() {}
};

}  // namespace virtscale::autoscale
