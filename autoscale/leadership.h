#pragma once
// What the engine asks of the controller election (leader_election:): may
// this controller act now, and if not, why. LeaderElection is the real one;
// tests and simulations pass their own.
#include <string>

namespace virtscale::autoscale {

class Leadership {
 public:
  virtual ~Leadership() = default;
  // Whether this controller acts now. Cheap and without I/O: every
  // evaluation asks.
  virtual bool IsLeader() const = 0;
  // For a follower's decisions: who acts instead, or why nobody is known to,
  // e.g. "the leader is hv2:9177-812" or "no leader is known: etcd: ...".
  virtual std::string WhyNotLeader() const = 0;
  // Asked right before every action, and the action runs only on true:
  // blocking (bounded), false on any doubt.
  virtual bool ConfirmLeadership() = 0;
};

}  // namespace virtscale::autoscale
