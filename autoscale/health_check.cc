#include "autoscale/health_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <system_error>

#include "common/http_url.h"
#include "common/placeholders.h"
#include "common/subprocess.h"
#include "common/utf8.h"

namespace virtscale::autoscale {
namespace {

using SteadyClock = std::chrono::steady_clock;

// libvirt's virDomainPausedReason values that mean the guest cannot go on.
constexpr int kPausedIoError = 5;   // VIR_DOMAIN_PAUSED_IOERROR
constexpr int kPausedCrashed = 10;  // VIR_DOMAIN_PAUSED_CRASHED (guest panic)

ProbeResult MakeResult(ProbeStatus status, std::string_view output) {
  return {status, BoundedUtf8(output, kMaxProbeOutputBytes)};
}

ProbeResult AddressUnknown() { return MakeResult(ProbeStatus::kUnknown, "address unknown"); }
ProbeResult Cancelled() { return MakeResult(ProbeStatus::kUnknown, "cancelled"); }

PlaceholderValues ValuesOf(const MemberProbeInput& in) {
  return {.domain = in.domain, .group = in.group, .address = in.address};
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// Connects `fd` (non-blocking) to `addr` by `deadline`; "" or why not.
std::string ConnectBy(int fd, const sockaddr_in& addr, SteadyClock::time_point deadline,
                      Duration timeout, const Canceller* cancel) {
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return "";
  if (errno != EINPROGRESS) return ErrnoText(errno);
  for (;;) {
    if (cancel != nullptr && cancel->cancelled()) return "cancelled";
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return "timed out after " + FormatDuration(timeout);
    pollfd fds[2] = {{fd, POLLOUT, 0}, {-1, POLLIN, 0}};
    nfds_t n = 1;
    // Without an eventfd, cancellation is seen within 100ms.
    int wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 60'000));
    if (cancel != nullptr && cancel->fd() >= 0) {
      fds[n++].fd = cancel->fd();
    } else if (cancel != nullptr) {
      wait_ms = std::min(wait_ms, 100);
    }
    const int rc = poll(fds, n, wait_ms);
    if (rc < 0 && errno != EINTR) return "poll: " + ErrnoText(errno);
    if (rc > 0 && fds[0].revents != 0) {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      return err == 0 ? "" : ErrnoText(err);
    }
  }
}

}  // namespace

const char* ProbeStatusName(ProbeStatus s) {
  switch (s) {
    case ProbeStatus::kPass:
      return "pass";
    case ProbeStatus::kFail:
      return "fail";
    case ProbeStatus::kUnknown:
      return "unknown";
  }
  return "unknown";
}

const char* MemberHealthName(MemberHealth h) {
  switch (h) {
    case MemberHealth::kGrace:
      return "grace";
    case MemberHealth::kUnknown:
      return "unknown";
    case MemberHealth::kHealthy:
      return "healthy";
    case MemberHealth::kFailing:
      return "failing";
    case MemberHealth::kUnhealthy:
      return "unhealthy";
  }
  return "unknown";
}

ProbeResult ProbeLibvirt(const MemberProbeInput& in) {
  const std::string state = DomainStateName(in.state);
  switch (in.state) {
    case DomainState::kCrashed:
      return MakeResult(ProbeStatus::kFail, state);
    case DomainState::kPaused:
      if (in.state_reason == kPausedIoError)
        return MakeResult(ProbeStatus::kFail, "paused: I/O error");
      if (in.state_reason == kPausedCrashed)
        return MakeResult(ProbeStatus::kFail, "paused: guest crashed");
      return MakeResult(ProbeStatus::kPass, state);
    case DomainState::kShutoff:
    case DomainState::kShutdown:
      return MakeResult(in.should_be_running ? ProbeStatus::kFail : ProbeStatus::kPass, state);
    default:
      return MakeResult(ProbeStatus::kPass, state);
  }
}

ProbeResult ProbeExec(const HealthCheck& check, const MemberProbeInput& in,
                      ProbeCanceller* canceller) {
  const PlaceholderValues values = ValuesOf(in);
  const bool needs_address =
      std::any_of(check.command.begin(), check.command.end(),
                  [](const auto& a) { return UsesPlaceholder(a, "address"); });
  if (in.address.empty() && needs_address) return AddressUnknown();
  const std::vector<std::string> argv = SubstituteArgv(check.command, values);
  SubprocessOptions options;
  options.timeout = check.timeout;
  options.env = PlaceholderEnvironment(values);
  options.canceller = canceller != nullptr ? &canceller->wait : nullptr;
  const SubprocessResult r = RunSubprocess(argv, options);
  const std::string line = r.FirstLines(1, kMaxProbeOutputBytes);
  if (r.ok()) return MakeResult(ProbeStatus::kPass, line);
  if (r.outcome == SubprocessOutcome::kCancelled) return Cancelled();
  return MakeResult(ProbeStatus::kFail, line.empty() ? r.Describe() : r.Describe() + ": " + line);
}

ProbeResult ProbeHttp(const HealthCheck& check, const MemberProbeInput& in,
                      ProbeCanceller* canceller) {
  if (in.address.empty() && UsesPlaceholder(check.url, "address")) return AddressUnknown();
  const std::string text = SubstitutePlaceholders(check.url, ValuesOf(in), PercentEncode);
  std::string why;
  const std::optional<HttpUrl> url = ParseHttpUrl(text, why);
  if (!url) return MakeResult(ProbeStatus::kFail, "bad URL " + text + ": " + why);
  HttpRequestOptions options;
  options.timeout = check.timeout;
  options.max_body_bytes = kMaxHealthBodyBytes;
  options.canceller = canceller != nullptr ? &canceller->http : nullptr;
  const HttpResult r = HttpGet(*url, {}, options);
  if (!r.ok()) {
    switch (r.error().kind) {
      case HttpErrorKind::kCancelled:
        return Cancelled();
      case HttpErrorKind::kHttpStatus:  // a 3xx the client did not follow
        return MakeResult(ProbeStatus::kPass, r.error().message);
      default:
        return MakeResult(ProbeStatus::kFail, r.error().message);
    }
  }
  const int status = r.value().status;
  return MakeResult(status >= 200 && status < 400 ? ProbeStatus::kPass : ProbeStatus::kFail,
                    fmt::format("HTTP {}", status));
}

ProbeResult ProbeTcp(const HealthCheck& check, const MemberProbeInput& in,
                     ProbeCanceller* canceller) {
  if (in.address.empty()) return AddressUnknown();
  const auto deadline = SteadyClock::now() + check.timeout;
  const std::string target = fmt::format("{}:{}", in.address, check.port);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(check.port));
  if (inet_pton(AF_INET, in.address.c_str(), &addr.sin_addr) != 1)
    return MakeResult(ProbeStatus::kUnknown, "not an IPv4 address: " + in.address);
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return MakeResult(ProbeStatus::kFail, "socket: " + ErrnoText(errno));
  const std::string error = ConnectBy(fd, addr, deadline, check.timeout,
                                      canceller != nullptr ? &canceller->wait : nullptr);
  close(fd);
  if (error.empty()) return MakeResult(ProbeStatus::kPass, "connected");
  if (error == "cancelled") return Cancelled();
  return MakeResult(ProbeStatus::kFail, "connect " + target + ": " + error);
}

ProbeResult RunCheck(const HealthCheck& check, const MemberProbeInput& in,
                     ProbeCanceller* canceller) {
  switch (check.type) {
    case HealthCheckType::kLibvirt:
      return ProbeLibvirt(in);
    case HealthCheckType::kExec:
      return ProbeExec(check, in, canceller);
    case HealthCheckType::kHttp:
      return ProbeHttp(check, in, canceller);
    case HealthCheckType::kTcp:
      return ProbeTcp(check, in, canceller);
  }
  return MakeResult(ProbeStatus::kUnknown, "unknown check type");
}

std::vector<ProbeResult> RunChecks(const HealthPolicy& policy, const MemberProbeInput& in,
                                   ProbeCanceller* canceller) {
  std::vector<ProbeResult> results;
  results.reserve(policy.checks.size());
  for (const HealthCheck& check : policy.checks) {
    if (canceller != nullptr && canceller->cancelled()) {
      results.push_back(Cancelled());
    } else {
      results.push_back(RunCheck(check, in, canceller));
    }
  }
  return results;
}

HealthTracker::HealthTracker(HealthPolicy policy) : policy_(std::move(policy)) {
  grace_.state = MemberHealth::kGrace;
}

bool HealthTracker::Due(const std::string& domain, MonoTime started, MonoTime now) const {
  if (InGrace(started, now)) return false;
  auto it = members_.find(domain);
  if (it == members_.end() || it->second.started != started || !it->second.status.last_round)
    return true;
  return now - *it->second.status.last_round >= policy_.interval;
}

const MemberHealthStatus& HealthTracker::Record(const std::string& domain, MonoTime started,
                                                MonoTime now,
                                                const std::vector<ProbeResult>& results) {
  if (InGrace(started, now)) return grace_;
  Entry& e = members_[domain];
  if (e.started != started) e = Entry{.started = started, .status = {}};
  MemberHealthStatus& s = e.status;
  s.last_round = now;
  s.failed_check.clear();
  s.output.clear();
  s.failed_status = ProbeStatus::kPass;
  // The first failure names the round; else the first unknown does.
  static const ProbeResult kMissing{ProbeStatus::kUnknown, "no result"};
  for (ProbeStatus wanted : {ProbeStatus::kFail, ProbeStatus::kUnknown}) {
    for (size_t i = 0; i < policy_.checks.size() && s.failed_check.empty(); ++i) {
      const ProbeResult& r = i < results.size() ? results[i] : kMissing;
      if (r.status != wanted) continue;
      s.failed_check = policy_.checks[i].Describe();
      s.failed_status = r.status;
      s.output = r.output;
    }
  }
  if (s.failed_check.empty()) {
    s.consecutive_failures = 0;
    s.state = MemberHealth::kHealthy;
  } else {
    ++s.consecutive_failures;
    s.state = s.consecutive_failures >= policy_.unhealthy_after ? MemberHealth::kUnhealthy
                                                                : MemberHealth::kFailing;
  }
  return s;
}

MemberHealthStatus HealthTracker::Status(const std::string& domain, MonoTime started,
                                         MonoTime now) const {
  if (InGrace(started, now)) return grace_;
  auto it = members_.find(domain);
  if (it == members_.end() || it->second.started != started) return MemberHealthStatus{};
  return it->second.status;
}

void HealthTracker::Retain(const std::set<std::string>& present) {
  std::erase_if(members_, [&](const auto& kv) { return !present.contains(kv.first); });
}

}  // namespace virtscale::autoscale
