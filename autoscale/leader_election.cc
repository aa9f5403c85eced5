#include "autoscale/leader_election.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <utility>

#include "common/log.h"
#include "common/metric_families.h"
#include "common/utf8.h"

namespace virtscale::autoscale {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// What etcd or another client wrote is shown at most this long.
constexpr size_t kMaxShownIdentity = 256;
constexpr size_t kMaxShownError = 512;

using Steady = std::chrono::steady_clock;

// etcd's gRPC status code for a lease (or key) that does not exist.
constexpr int kGrpcNotFound = 5;
// Responses are a few hundred bytes; a key read holds one value.
constexpr size_t kMaxResponseBytes = 1 << 20;

// The gateway carries keys and values as base64 (proto3 JSON for bytes).
std::string Base64Encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t n = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8 |
                       static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t n = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

// std::nullopt for anything but standard base64 (padding optional).
std::optional<std::string> Base64Decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else {
      return std::nullopt;
    }
    bits = bits << 6 | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

// The gateway writes int64 fields as JSON strings (proto3 JSON); accept
// numbers too. 0 when absent: proto3 leaves zero values out.
int64_t JsonInt(const json& object, const char* name) {
  if (!object.is_object()) return 0;
  auto it = object.find(name);
  if (it == object.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (!it->is_string()) return 0;
  const std::string& s = it->get_ref<const std::string&>();
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') return 0;
  return n;
}

std::string JsonString(const json& object, const char* name) {
  if (!object.is_object()) return "";
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The first key-value of a range response, or null when the key is absent.
const json* FirstKv(const json& range) {
  auto it = range.find("kvs");
  if (it == range.end() || !it->is_array() || it->empty() || !(*it)[0].is_object()) return nullptr;
  return &(*it)[0];
}

struct KeyOwner {
  bool exists = false;
  std::string identity;
  int64_t lease = 0;
};

KeyOwner OwnerOf(const json* kv) {
  KeyOwner owner;
  if (!kv) return owner;
  owner.exists = true;
  owner.identity = Base64Decode(JsonString(*kv, "value")).value_or("");
  owner.lease = JsonInt(*kv, "lease");
  return owner;
}

Duration Clamp(Duration d, Duration lo, Duration hi) { return std::min(std::max(d, lo), hi); }

}  // namespace

std::optional<std::string> ValidateLeaderElectionConfig(const LeaderElectionConfig& config) {
  if (config.endpoints.empty()) {
    return "endpoints is empty: give at least one etcd client URL, e.g. http://127.0.0.1:2379";
  }
  for (size_t i = 0; i < config.endpoints.size(); ++i) {
    const std::string& text = config.endpoints[i];
    const std::string where = "endpoints[" + std::to_string(i) + "] \"" + text + "\"";
    std::string why;
    auto url = ParseHttpUrl(text, why);
    if (!url) return where + ": " + why;
    if (url->path.find('?') != std::string::npos) return where + ": must not have a query";
  }
  if (config.key.empty()) return "key is empty";
  const Duration ttl = config.lease_ttl;
  if (ttl % std::chrono::seconds(1) != Duration::zero() || ttl < kMinLeaseTtl ||
      ttl > kMaxLeaseTtl) {
    return "lease_ttl " + FormatDuration(ttl) +
           ": must be whole seconds (etcd's unit), from 2s to 1h";
  }
  return std::nullopt;
}

std::string DefaultLeaderIdentity(int port) {
  std::array<char, HOST_NAME_MAX + 1> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  return std::string(host.data()) + ":" + std::to_string(port) + "-" + std::to_string(getpid());
}

const char* LeaderRoleName(LeaderRole role) {
  switch (role) {
    case LeaderRole::kLeader:
      return "leader";
    case LeaderRole::kFollower:
      return "follower";
    case LeaderRole::kUnknown:
      break;
  }
  return "unknown";
}

LeaderElection::LeaderElection(LeaderElectionConfig config, std::string identity,
                               const Clock& clock)
    : config_(std::move(config)),
      identity_(identity.empty() ? DefaultLeaderIdentity(0) : std::move(identity)),
      clock_(clock),
      period_(Clamp(config_.lease_ttl / 3, std::chrono::milliseconds(100), kMaxLeaseTtl)),
      call_timeout_(
          Clamp(config_.lease_ttl / 3, std::chrono::milliseconds(100), std::chrono::seconds(2))) {
  for (const std::string& text : config_.endpoints) {
    std::string why;
    auto url = ParseHttpUrl(text, why);
    if (!url) continue;
    // Keep only a path prefix (a proxy's); requests append /v3/...
    url->path = url->path.substr(0, url->path.find('?'));
    while (!url->path.empty() && url->path.back() == '/') url->path.pop_back();
    endpoints_.push_back(std::move(*url));
  }
}

LeaderElection::~LeaderElection() { Stop(); }

void LeaderElection::Start() {
  std::lock_guard lock(mu_);
  if (started_ || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void LeaderElection::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
    if (leader_) {
      leader_ = false;
      ++transitions_;
      LogInfo(
          "leader election: stopped leading",
          {{"key", config_.key},
           {"identity", identity_},
           {"lease_id", lease_id_},
           {"reason", clock_.Now().mono < deadline_ ? "shutdown" : "lease not renewed in time"}});
    }
  }
  cv_.notify_all();
  campaign_canceller_.Cancel();
  confirm_canceller_.Cancel();
  if (thread_.joinable()) thread_.join();
  int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    lease = std::exchange(lease_id_, 0);
  }
  if (lease == 0) return;
  // Without the revoke the key would stay until the TTL runs out.
  CallResult r = Call("/v3/lease/revoke", {{"ID", std::to_string(lease)}}, nullptr,
                      Steady::now() + call_timeout_);
  if (!r.ok() && r.error().kind != EtcdError::kNotFound) {
    LogWarn("leader election: cannot revoke the lease; others take over when it expires",
            {{"lease_id", lease}, {"error", r.error().message}});
  }
}

bool LeaderElection::IsLeaderLocked(MonoTime now) const {
  return leader_ && !stop_ && lease_id_ != 0 && now < deadline_;
}

bool LeaderElection::IsLeader() const {
  const MonoTime now = clock_.Now().mono;
  std::lock_guard lock(mu_);
  return IsLeaderLocked(now);
}

LeaderElection::Status LeaderElection::status() const {
  const MonoTime now = clock_.Now().mono;
  std::lock_guard lock(mu_);
  Status s;
  s.role = IsLeaderLocked(now) ? LeaderRole::kLeader
           : reachable_        ? LeaderRole::kFollower
                               : LeaderRole::kUnknown;
  if (s.role != LeaderRole::kUnknown) s.leader_identity = leader_identity_;
  s.lease_id = lease_id_;
  s.transitions = transitions_;
  s.last_error = last_error_;
  if (!endpoints_.empty()) s.endpoint = endpoints_[endpoint_index_].SchemeHostPort();
  return s;
}

std::string LeaderElection::WhyNotLeader() const {
  const Status s = status();
  switch (s.role) {
    case LeaderRole::kLeader:
      return "this controller is the leader";
    case LeaderRole::kFollower:
      return s.leader_identity.empty() ? "no leader is known yet"
                                       : "the leader is " + s.leader_identity;
    case LeaderRole::kUnknown:
      break;
  }
  return s.last_error.empty() ? "etcd has not answered yet"
                              : "etcd is unreachable: " + s.last_error;
}

std::vector<prometheus::MetricFamily> LeaderElection::Collect() const {
  using prometheus::MetricType;
  const Status s = status();
  MetricFamilies f;
  f.Gauge("virtscale_leader_election_is_leader",
          "1 while this controller holds the etcd lease and acts (leader_election); 0 while it "
          "decides as a dry run.",
          {}, s.role == LeaderRole::kLeader ? 1 : 0);
  auto role = f.Family("virtscale_leader_election_role",
                       "1 for this controller's role: leader, follower, or unknown (etcd did not "
                       "answer).",
                       MetricType::Gauge);
  for (LeaderRole r : {LeaderRole::kLeader, LeaderRole::kFollower, LeaderRole::kUnknown})
    f.Add(role, {{"role", LeaderRoleName(r)}}, s.role == r ? 1 : 0);
  f.Counter("virtscale_leader_election_transitions_total",
            "Times this controller became or stopped being the leader.", {},
            static_cast<double>(s.transitions));
  f.Gauge("virtscale_leader_election_info",
          "This controller's identity and the leader's, as the election key last read said "
          "(leader empty when none is known).",
          {{"identity", identity_}, {"leader", s.leader_identity}}, 1);
  return f.Take();
}

MonoTime LeaderElection::DeadlineFrom(MonoTime sent, int64_t ttl_seconds) const {
  // etcd counts the TTL from when it handles the request, which is after
  // `sent`; the margin covers the two clocks' rates and a renewal in flight.
  const Duration ttl = std::chrono::seconds(ttl_seconds);
  return sent + ttl - std::min<Duration>(ttl / 4, std::chrono::seconds(1));
}

LeaderElection::CallResult LeaderElection::Call(const std::string& path, const json& body,
                                                RequestCanceller* canceller,
                                                Steady::time_point end) {
  if (endpoints_.empty()) return EtcdError{EtcdError::kUnavailable, "no valid endpoint"};
  const std::string text = body.dump();
  size_t first = 0;
  {
    std::lock_guard lock(mu_);
    first = endpoint_index_;
  }
  std::string last = "no endpoint tried within the deadline";
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    const auto remaining = std::chrono::ceil<Duration>(end - Steady::now());
    if (remaining <= Duration::zero()) break;
    const size_t index = (first + i) % endpoints_.size();
    HttpUrl url = endpoints_[index];
    url.path += path;
    HttpRequestOptions options;
    options.timeout = remaining;
    options.max_body_bytes = kMaxResponseBytes;
    options.canceller = canceller;
    HttpResult r =
        HttpPost(url, {{"Accept", "application/json"}}, text, "application/json", options);
    if (!r.ok()) {
      if (r.error().kind == HttpErrorKind::kCancelled) {
        return EtcdError{EtcdError::kUnavailable, "cancelled"};
      }
      last = r.error().ToString();
      continue;
    }
    const HttpClientResponse& response = r.value();
    json parsed = json::parse(response.body, nullptr, false);
    const std::string where = url.SchemeHostPort() + path;
    if (parsed.is_discarded() || !parsed.is_object()) {
      last = where + ": HTTP " + std::to_string(response.status) + " with a body that is not JSON";
      continue;
    }
    // A streaming method (keepalive) wraps its answer, or its error, in one
    // more object.
    if (auto it = parsed.find("result"); it != parsed.end() && it->is_object()) {
      json inner = std::move(*it);
      parsed = std::move(inner);
    }
    json error;
    if (auto it = parsed.find("error"); it != parsed.end()) {
      error = it->is_object() ? *it : parsed;
    }
    if (response.status == 200 && error.is_null()) {
      std::lock_guard lock(mu_);
      endpoint_index_ = index;
      return parsed;
    }
    const int64_t code = error.is_object() && error.contains("grpc_code")
                             ? JsonInt(error, "grpc_code")
                             : JsonInt(error.is_object() ? error : parsed, "code");
    std::string message = JsonString(error.is_object() ? error : parsed, "message");
    if (message.empty()) message = "HTTP " + std::to_string(response.status);
    // 5xx: this member has no leader, is shutting down or timed out: another may answer.
    if (response.status >= 500) {
      last = where + ": " + message;
      continue;
    }
    {
      std::lock_guard lock(mu_);
      endpoint_index_ = index;
    }
    if (code == kGrpcNotFound) return EtcdError{EtcdError::kNotFound, where + ": " + message};
    return EtcdError{EtcdError::kRejected, where + ": " + message};
  }
  return EtcdError{EtcdError::kUnavailable, last};
}

void LeaderElection::NoteResult(const CallResult& r) {
  std::lock_guard lock(mu_);
  if (stop_) return;
  if (r.ok()) {
    if (reach_known_ && !reachable_) {
      LogInfo("leader election: etcd reachable again", {{"key", config_.key}});
    }
    reachable_ = reach_known_ = true;
    last_error_.clear();
    return;
  }
  last_error_ = BoundedUtf8(r.error().message, kMaxShownError);
  if (r.error().kind != EtcdError::kUnavailable) {
    reachable_ = reach_known_ = true;  // etcd answered, if only to refuse
    return;
  }
  if (reachable_ || !reach_known_) {
    LogWarn("leader election: etcd unreachable",
            {{"key", config_.key}, {"error", r.error().message}});
  }
  reachable_ = false;
  reach_known_ = true;
}

void LeaderElection::BecomeLeader(int64_t lease_id) {
  const MonoTime now = clock_.Now().mono;
  std::lock_guard lock(mu_);
  // Past the deadline (paused while the transaction was in flight) the key
  // may be gone already: the next round renews first.
  if (stop_ || lease_id_ != lease_id || now >= deadline_) return;
  leader_identity_ = identity_;
  if (leader_) return;
  leader_ = true;
  ++transitions_;
  LogInfo("leader election: leading",
          {{"key", config_.key}, {"identity", identity_}, {"lease_id", lease_id}});
}

void LeaderElection::BecomeFollower(int64_t lease_id, const std::string& leader, const char* why) {
  std::lock_guard lock(mu_);
  if (stop_ || lease_id_ != lease_id) return;
  // The key's value is whatever a client wrote: shown in JSON and as a label,
  // so bounded and made valid UTF-8.
  const std::string shown = BoundedUtf8(leader, kMaxShownIdentity);
  const bool changed = leader_identity_ != shown;
  leader_identity_ = shown;
  if (leader_) {
    leader_ = false;
    ++transitions_;
    LogInfo("leader election: stopped leading",
            {{"key", config_.key}, {"identity", identity_}, {"leader", shown}, {"reason", why}});
  } else if (changed) {
    LogInfo("leader election: following",
            {{"key", config_.key}, {"identity", identity_}, {"leader", shown}});
  }
}

void LeaderElection::LoseLease(int64_t lease_id, const char* why) {
  std::lock_guard lock(mu_);
  if (lease_id_ != lease_id) return;
  lease_id_ = 0;
  deadline_ = {};
  if (leader_ && !stop_) {
    leader_ = false;
    ++transitions_;
    LogInfo(
        "leader election: stopped leading",
        {{"key", config_.key}, {"identity", identity_}, {"lease_id", lease_id}, {"reason", why}});
  }
}

void LeaderElection::Run() {
  auto next = Steady::now();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next, [&] { return stop_; });
      if (stop_) return;
    }
    next = Steady::now() + period_;
    // A lost lease is replaced at once rather than a period later, once per
    // period so that a misbehaving server cannot make this spin.
    if (Round()) Round();
  }
}

bool LeaderElection::Round() {
  int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    if (leader_ && clock_.Now().mono >= deadline_) {
      // Typically a pause (SIGSTOP, a stalled VM) or etcd out of reach for
      // longer than the lease: another candidate may lead by now.
      leader_ = false;
      ++transitions_;
      LogInfo("leader election: stopped leading", {{"key", config_.key},
                                                   {"identity", identity_},
                                                   {"lease_id", lease_id_},
                                                   {"reason", "lease not renewed in time"}});
    }
    lease = lease_id_;
  }
  const auto end = Steady::now() + call_timeout_;
  const MonoTime sent = clock_.Now().mono;
  if (lease == 0) {
    CallResult r = Call("/v3/lease/grant", {{"TTL", std::to_string(config_.lease_ttl / 1s)}},
                        &campaign_canceller_, end);
    NoteResult(r);
    if (!r.ok()) return false;
    const int64_t id = JsonInt(r.value(), "ID");
    const int64_t ttl = JsonInt(r.value(), "TTL");
    if (id == 0 || ttl <= 0) {
      std::lock_guard lock(mu_);
      last_error_ =
          BoundedUtf8("lease grant answered without a lease: " + r.value().dump(), kMaxShownError);
      return false;
    }
    std::lock_guard lock(mu_);
    lease = lease_id_ = id;
    deadline_ = DeadlineFrom(sent, ttl);
  } else {
    CallResult r =
        Call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}, &campaign_canceller_, end);
    NoteResult(r);
    if (!r.ok()) {
      if (r.error().kind != EtcdError::kNotFound) return false;
      LoseLease(lease, "lease not found");
      return true;
    }
    const int64_t ttl = JsonInt(r.value(), "TTL");
    if (ttl <= 0) {  // etcd's answer for a lease that expired or was revoked
      LoseLease(lease, "lease expired");
      return true;
    }
    std::lock_guard lock(mu_);
    if (lease_id_ != lease) return false;
    deadline_ = std::max(deadline_, DeadlineFrom(sent, ttl));
  }
  {
    std::lock_guard lock(mu_);
    // The renewal's answer came back too late to count (a pause mid-request):
    // renew again next round before trusting the lease.
    if (clock_.Now().mono >= deadline_) return false;
  }

  const std::string key = Base64Encode(config_.key);
  const json txn = {
      {"compare", json::array({{{"target", "CREATE"}, {"key", key}, {"create_revision", "0"}}})},
      {"success", json::array({{{"request_put",
                                 {{"key", key},
                                  {"value", Base64Encode(identity_)},
                                  {"lease", std::to_string(lease)}}}}})},
      {"failure", json::array({{{"request_range", {{"key", key}}}}})}};
  CallResult r = Call("/v3/kv/txn", txn, &campaign_canceller_, Steady::now() + call_timeout_);
  NoteResult(r);
  if (!r.ok()) {
    if (r.error().kind != EtcdError::kNotFound) return false;
    LoseLease(lease, "lease not found");  // the put named a lease that is gone
    return true;
  }
  if (r.value().value("succeeded", false)) {
    BecomeLeader(lease);
    return false;
  }
  const json* kv = nullptr;
  if (auto it = r.value().find("responses");
      it != r.value().end() && it->is_array() && !it->empty() && (*it)[0].is_object()) {
    if (auto range = (*it)[0].find("response_range"); range != (*it)[0].end()) {
      kv = FirstKv(*range);
    }
  }
  const KeyOwner owner = OwnerOf(kv);
  if (owner.exists && owner.identity == identity_ && owner.lease == lease) {
    BecomeLeader(lease);
  } else {
    BecomeFollower(lease, owner.identity, "the key names another candidate");
  }
  return false;
}

bool LeaderElection::ConfirmLeadership() {
  std::lock_guard confirm_lock(confirm_mu_);
  int64_t lease = 0;
  {
    const MonoTime now = clock_.Now().mono;
    std::lock_guard lock(mu_);
    if (!IsLeaderLocked(now)) return false;
    lease = lease_id_;
  }
  const auto end = Steady::now() + call_timeout_;
  // The key first, then the lease: a lease alive after the key was read
  // still holds the key (etcd deletes the key only with the lease).
  CallResult range =
      Call("/v3/kv/range", {{"key", Base64Encode(config_.key)}}, &confirm_canceller_, end);
  NoteResult(range);
  if (!range.ok()) return false;
  const KeyOwner owner = OwnerOf(FirstKv(range.value()));
  if (!owner.exists || owner.identity != identity_ || owner.lease != lease) {
    BecomeFollower(lease, owner.identity, "the key no longer names this candidate");
    return false;
  }
  CallResult ttl =
      Call("/v3/lease/timetolive", {{"ID", std::to_string(lease)}}, &confirm_canceller_, end);
  NoteResult(ttl);
  if (!ttl.ok()) {
    if (ttl.error().kind == EtcdError::kNotFound) LoseLease(lease, "lease not found");
    return false;
  }
  // etcd rounds the time left down to whole seconds: 1 means at least a
  // second left when it answered.
  if (JsonInt(ttl.value(), "TTL") < 1) {
    LoseLease(lease, "lease expired");
    return false;
  }
  const MonoTime now = clock_.Now().mono;
  std::lock_guard lock(mu_);
  return IsLeaderLocked(now) && lease_id_ == lease;
}

}  // namespace virtscale::autoscale
