#include "autoscale/actuator.h"

namespace virtscale::autoscale {

const char* OperationKindName(Operation::Kind kind) {
  switch (kind) {
    case Operation::Kind::kStart:
      return "start";
    case Operation::Kind::kCreate:
      return "create";
    case Operation::Kind::kStop:
      return "stop";
    case Operation::Kind::kDelete:
      return "delete";
  }
  return "unknown";
}

}  // namespace virtscale::autoscale
