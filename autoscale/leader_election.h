#pragma once
// Leader election among several controllers of one fleet, over etcd's v3
// HTTP/JSON gateway (etcd 3.4+: POST /v3/lease/..., /v3/kv/...). Only the
// leader acts; the others evaluate as a dry run.
//
// Each candidate holds an etcd lease of `lease_ttl` and, on its own thread,
// every lease_ttl/3: renews the lease (or grants a new one), then runs one
// transaction: "if `key` does not exist, put key = identity with the lease,
// else read the key". The candidate whose identity and lease the key carries
// leads; etcd deletes the key when the lease expires or is revoked, and the
// next candidate's transaction takes it. A leader killed with -9 is replaced
// within lease_ttl + lease_ttl/3; one that calls Stop() revokes its lease, so
// the next round of another candidate takes over.
//
// Leadership is never trusted past the lease: the local deadline is the send
// time of the last renewal etcd confirmed plus the TTL it granted, minus a
// margin, on the monotonic clock. A process paused (SIGSTOP) or cut off from
// etcd past that deadline stops being the leader the moment it resumes or the
// deadline passes, before any network call, and leads again only after a new
// renewal and transaction show that it holds the key.
//
// IsLeader() is that cached, local answer, cheap enough for every
// evaluation. Before each action the caller must also call
// ConfirmLeadership(), which asks etcd (the key still names this candidate
// and its lease, and the lease has time left) within a short deadline and
// answers false on any doubt.
//
//   LeaderElection election(config, DefaultLeaderIdentity(9177));
//   election.Start();
//   bool dry_run = !election.IsLeader();                // each evaluation
//   if (!dry_run && election.ConfirmLeadership()) Act();  // right before acting
//   election.Stop();                                    // revokes the lease: fast handover
//
// Every request is bounded by min(2s, lease_ttl/3) and tries the endpoints in
// order from the last one that answered. Role changes are logged at info.
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "autoscale/leadership.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/http_client.h"
#include "common/http_url.h"
#include "common/result.h"

namespace virtscale::autoscale {

// leader_election.etcd in the config.
struct LeaderElectionConfig {
  std::vector<std::string> endpoints;  // "http://127.0.0.1:2379"; https uses the system CAs
  std::string key = "/virtscale/leader";
  Duration lease_ttl = std::chrono::seconds(10);
  bool operator==(const LeaderElectionConfig&) const = default;
};

inline constexpr Duration kMinLeaseTtl = std::chrono::seconds(2);
inline constexpr Duration kMaxLeaseTtl = std::chrono::hours(1);

// The first problem with `config`, for the config loader to report (the text
// starts with the key it is about: "lease_ttl 1s: ..."), or
// std::nullopt: no endpoint, an endpoint that is not an http(s) URL (or has a
// query), an empty key, a lease_ttl that is not whole seconds (etcd's unit)
// or outside [2s, 1h].
std::optional<std::string> ValidateLeaderElectionConfig(const LeaderElectionConfig& config);

// "<hostname>:<port>-<pid>": unique per running agent, and says where it runs.
std::string DefaultLeaderIdentity(int port);

enum class LeaderRole {
  kUnknown,   // no endpoint answered the last request (and not the leader)
  kFollower,  // etcd answered; another candidate (or nobody yet) holds the key
  kLeader,    // IsLeader()
};

// "unknown", "follower", "leader".
const char* LeaderRoleName(LeaderRole role);

class LeaderElection : public Leadership, public prometheus::Collectable {
 public:
  struct Status {
    LeaderRole role = LeaderRole::kUnknown;
    std::string leader_identity;  // as the key last read says; empty when none or unknown
    int64_t lease_id = 0;         // this candidate's lease, 0 when none
    // Times this candidate became or stopped being the leader, as its thread
    // noticed (IsLeader() turns false at the deadline, the count a little later).
    int64_t transitions = 0;
    std::string last_error;  // of the last failed request, cleared by a success
    std::string endpoint;    // the endpoint requests go to first
  };

  // `config` should pass ValidateLeaderElectionConfig (endpoints that do not
  // parse are skipped). `identity` must be unique among the candidates (empty:
  // DefaultLeaderIdentity(0)).
  // `clock` gives the monotonic time of the lease deadline (tests pass a
  // FakeClock to jump past it).
  LeaderElection(LeaderElectionConfig config, std::string identity,
                 const Clock& clock = SystemClock());
  ~LeaderElection() override;  // Stop()
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Starts campaigning on a thread. Once only: after Stop() it does nothing.
  void Start();
  // Stops being the leader at once, cancels the requests in flight, joins the
  // thread, then revokes the lease (one bounded request) so another candidate
  // takes over without waiting for the TTL. Idempotent.
  void Stop();

  // Holds the key and the local lease deadline has not passed. No I/O.
  bool IsLeader() const override;
  // From status(): "the leader is <identity>", "no leader is known yet", or
  // "etcd is unreachable: <error>".
  std::string WhyNotLeader() const override;
  // IsLeader(), and etcd says, within min(2s, lease_ttl/3), that the key holds
  // this identity with this lease and that the lease has at least a second
  // left. False on any error; a lost lease or key also ends the leadership.
  // Blocking; concurrent calls are serialized.
  bool ConfirmLeadership() override;

  Status status() const;
  const std::string& identity() const { return identity_; }
  const LeaderElectionConfig& config() const { return config_; }

  // virtscale_leader_election_is_leader, _role{role} (1 for the current one),
  // _transitions_total and _info{identity, leader}.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct EtcdError {
    enum Kind {
      kUnavailable,  // no endpoint answered in time (or cancelled): nothing is known
      kNotFound,     // etcd says the lease does not exist (expired or revoked)
      kRejected,     // any other answer etcd gives as an error
    } kind;
    std::string message;
  };
  using CallResult = Result<nlohmann::json, EtcdError>;

  void Run();
  // One renewal (or grant) and one transaction; true when the lease turned
  // out lost and a new one should be granted right away.
  bool Round();
  // POSTs `body` to `path` on the endpoints in turn until `end`; the parsed
  // JSON of a 200.
  CallResult Call(const std::string& path, const nlohmann::json& body, RequestCanceller* canceller,
                  std::chrono::steady_clock::time_point end);
  void NoteResult(const CallResult& r);
  // Each does nothing unless `lease_id` is still the current lease.
  void BecomeLeader(int64_t lease_id);
  void BecomeFollower(int64_t lease_id, const std::string& leader, const char* why);
  void LoseLease(int64_t lease_id, const char* why);
  bool IsLeaderLocked(MonoTime now) const;
  // From the request's send time and the TTL etcd granted.
  MonoTime DeadlineFrom(MonoTime sent, int64_t ttl_seconds) const;

  const LeaderElectionConfig config_;
  const std::string identity_;
  const Clock& clock_;
  std::vector<HttpUrl> endpoints_;
  const Duration period_;        // between rounds: lease_ttl / 3
  const Duration call_timeout_;  // min(2s, lease_ttl / 3)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  bool stop_ = false;
  bool leader_ = false;
  bool reachable_ = false;
  bool reach_known_ = false;  // some request has finished, so reachable_ means something
  int64_t lease_id_ = 0;
  MonoTime deadline_{};  // the lease is trusted until then
  std::string leader_identity_;
  int64_t transitions_ = 0;
  std::string last_error_;
  size_t endpoint_index_ = 0;

  std::mutex confirm_mu_;                // one ConfirmLeadership at a time
  RequestCanceller campaign_canceller_;  // the campaign thread's requests
  RequestCanceller confirm_canceller_;   // ConfirmLeadership's requests
  std::thread thread_;
};

}  // namespace virtscale::autoscale
