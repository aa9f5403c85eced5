#pragma once
// The only code that changes VMs. The planner turns a scaling decision into
// Operations on named domains; an Actuator executes them one at a time.
// LibvirtActuator (libvirt_actuator.h) is the real one; tests use fakes.
#include <chrono>
#include <string>

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
  std::string domain;         // empty for kCreate: the actuator picks "{group}-{n}"
  std::string template_path;  // kCreate only; absolute
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(60)};
};

const char* OperationKindName(Operation::Kind kind);  // "start", "create", "stop", "delete"

struct OperationResult {
  bool ok = false;
  std::string domain;  // the domain acted on (the new name for kCreate)
  std::string
      error;  // reason when !ok, e.g. "define: operation failed: domain 'web-3' already exists"
  double duration_seconds = 0;
};

class Actuator {
 public:
  virtual ~Actuator() = default;
  // Must refuse kDelete on a domain without virtscale metadata for `group`.
  virtual OperationResult Execute(const Operation& op) = 0;
};

}  // namespace virtscale::autoscale
