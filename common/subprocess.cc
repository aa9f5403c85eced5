#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <system_error>

#include "common/utf8.h"

extern char** environ;

namespace virtscale {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Without a pidfd (kernels before 5.3, or a seccomp filter) the wait polls
// waitpid at this period.
constexpr int kFallbackPollMs = 10;
// After the command exits, output still in the pipe is read up to this much
// more, so a child that keeps the pipe open and writing cannot hold the run.
constexpr size_t kMaxDrainBytes = 1 << 20;

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// The agent's environment with `extra` added; a name in `extra` replaces it.
std::vector<std::string> BuildEnvironment(
    const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    const bool replaced =
        std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == name; });
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> CPointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int OpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

int MillisUntil(SteadyClock::time_point t) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(t - SteadyClock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
}

// Appends what the pipe has now to `r`, within the cap; false at end of file
// or on error (the pipe is then done).
bool ReadAvailable(int fd, size_t cap, SubprocessResult& r, size_t limit = SIZE_MAX) {
  char buf[4096];
  size_t total = 0;
  while (total < limit) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      const size_t keep = std::min(static_cast<size_t>(n), cap - std::min(cap, r.output.size()));
      r.output.append(buf, keep);
      r.output_truncated += static_cast<size_t>(n) - keep;
      total += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

class SpawnAttributes {
 public:
  SpawnAttributes() {
    posix_spawn_file_actions_init(&actions_);
    posix_spawnattr_init(&attr_);
  }
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;

  // stdin /dev/null, stdout and stderr to `out`, nothing else open; its own
  // process group; default signals (the agent ignores SIGPIPE, for one).
  int Set(int out) {
    int rc = posix_spawn_file_actions_addopen(&actions_, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions_, out, 1);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions_, out, 2);
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 34)
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions_, 3);
#endif
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attr_, 0);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr_, &none);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr_, &all);
    if (rc == 0)
      rc = posix_spawnattr_setflags(
          &attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    return rc;
  }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attr() const { return &attr_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attr_;
};

SubprocessResult SpawnError(std::string message) {
  SubprocessResult r;
  r.outcome = SubprocessOutcome::kSpawnError;
  r.error = std::move(message);
  return r;
}

}  // namespace

const char* SubprocessOutcomeName(SubprocessOutcome outcome) {
  switch (outcome) {
    case SubprocessOutcome::kExited:
      return "exited";
    case SubprocessOutcome::kSignaled:
      return "signaled";
    case SubprocessOutcome::kTimedOut:
      return "timed_out";
    case SubprocessOutcome::kCancelled:
      return "cancelled";
    case SubprocessOutcome::kSpawnError:
      return "spawn_error";
  }
  return "unknown";
}

std::string SubprocessResult::Describe() const {
  switch (outcome) {
    case SubprocessOutcome::kExited:
      return "exit status " + std::to_string(exit_code);
    case SubprocessOutcome::kSignaled:
      return "killed by signal " + std::to_string(signal);
    case SubprocessOutcome::kTimedOut:
      return "timed out after " + FormatDuration(timeout);
    case SubprocessOutcome::kCancelled:
      return "cancelled";
    case SubprocessOutcome::kSpawnError:
      return error;
  }
  return error;
}

std::string SubprocessResult::FirstLines(size_t max_lines, size_t max_bytes) const {
  size_t end = 0;
  for (size_t lines = 0; lines < max_lines && end < output.size(); ++lines) {
    const size_t nl = output.find('\n', end);
    end = nl == std::string::npos ? output.size() : nl + 1;
  }
  std::string_view text(output.data(), end);
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  return BoundedUtf8(text, max_bytes);
}

SubprocessResult RunSubprocess(const std::vector<std::string>& argv,
                               const SubprocessOptions& options) {
  if (argv.empty() || argv[0].empty()) return SpawnError("exec: empty command");
  if (options.canceller != nullptr && options.canceller->cancelled()) {
    SubprocessResult r;
    r.outcome = SubprocessOutcome::kCancelled;
    return r;
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return SpawnError("exec: pipe: " + ErrnoText(errno));
  const int out_r = pipe_fds[0];
  const int out_w = pipe_fds[1];
  fcntl(out_r, F_SETFL, O_NONBLOCK);

  std::vector<std::string> args(argv);
  std::vector<std::string> env = BuildEnvironment(options.env);
  std::vector<char*> c_args = CPointers(args);
  std::vector<char*> c_env = CPointers(env);
  SpawnAttributes spawn;
  pid_t pid = -1;
  int rc = spawn.Set(out_w);
  if (rc == 0)
    rc = posix_spawnp(&pid, c_args[0], spawn.actions(), spawn.attr(), c_args.data(), c_env.data());
  close(out_w);
  if (rc != 0) {
    close(out_r);
    return SpawnError("exec: " + argv[0] + ": " + ErrnoText(rc));
  }

  SubprocessResult r;
  r.timeout = options.timeout;
  const int pidfd = OpenPidfd(pid);
  const int cancel_fd = options.canceller != nullptr ? options.canceller->fd() : -1;
  const bool can_sleep = pidfd >= 0 && (options.canceller == nullptr || cancel_fd >= 0);
  const auto deadline = SteadyClock::now() + options.timeout;
  auto kill_at = SteadyClock::time_point::max();
  bool pipe_open = true;
  bool stopping = false;  // we sent SIGTERM: the outcome is ours
  bool killed = false;
  int status = 0;
  std::string lost;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      // Someone else reaped it (SIGCHLD ignored): the status is lost, and
      // the group id may be free for reuse, so it gets no more signals.
      lost = ErrnoText(errno);
      break;
    }
    if (!stopping) {
      const bool cancelled = options.canceller != nullptr && options.canceller->cancelled();
      if (cancelled || SteadyClock::now() >= deadline) {
        r.outcome = cancelled ? SubprocessOutcome::kCancelled : SubprocessOutcome::kTimedOut;
        stopping = true;
        kill(-pid, SIGTERM);
        kill_at = SteadyClock::now() + options.kill_grace;
      }
    }
    if (stopping && !killed && SteadyClock::now() >= kill_at) {
      kill(-pid, SIGKILL);
      killed = true;
    }
    pollfd fds[3];
    nfds_t n = 0;
    if (pidfd >= 0) fds[n++] = {pidfd, POLLIN, 0};
    const nfds_t pipe_index = n;
    if (pipe_open) fds[n++] = {out_r, POLLIN, 0};
    if (!stopping && cancel_fd >= 0) fds[n++] = {cancel_fd, POLLIN, 0};
    int wait_ms = MillisUntil(stopping ? kill_at : deadline);
    if (killed) wait_ms = 60'000;
    if (!can_sleep) wait_ms = std::min(wait_ms, kFallbackPollMs);
    if (poll(fds, n, wait_ms) > 0 && pipe_open && fds[pipe_index].revents != 0)
      pipe_open = ReadAvailable(out_r, options.max_output_bytes, r);
  }
  if (pipe_open) ReadAvailable(out_r, options.max_output_bytes, r, kMaxDrainBytes);
  close(out_r);
  if (pidfd >= 0) close(pidfd);
  // The leader is gone; its children may not be. The group's id is not
  // reused while any member lives, so this reaches only them.
  if (!lost.empty()) {
    SubprocessResult e = SpawnError("wait: " + argv[0] + ": " + lost);
    e.output = std::move(r.output);
    return e;
  }
  if (stopping) kill(-pid, SIGKILL);
  if (!stopping) {
    if (WIFEXITED(status)) {
      r.outcome = SubprocessOutcome::kExited;
      r.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      r.outcome = SubprocessOutcome::kSignaled;
      r.signal = WTERMSIG(status);
    }
  }
  return r;
}

}  // namespace virtscale
