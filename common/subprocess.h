#pragma once
// Runs a command (an argv, never through a shell) with a total deadline and a
// bounded copy of its output, for health checks and lifecycle hooks.
// - The child gets stdin from /dev/null, stdout and stderr on one pipe, no
//   other file descriptor, default signal dispositions, an empty signal mask,
//   and its own process group, so a timeout or cancellation reaches the
//   command's children too (`sh -c 'sleep 60 & sleep 60'`).
// - At the deadline (or on Canceller::Cancel) the group gets SIGTERM, then
//   SIGKILL after `kill_grace`; after a timeout or cancellation the group gets
//   SIGKILL once more, so no child outlives the run. A command that exits on
//   its own may leave children running (a hook may start a daemon); its
//   output is read until it exits, not until those close the pipe.
// - The first `max_output_bytes` of output are kept; the rest is counted.
// - posix_spawn (glibc: clone + exec, with closefrom), so it is safe in a
//   multi-threaded agent: nothing runs between fork and exec but the spawn's
//   own async-signal-safe steps.
//
//   SubprocessOptions options;
//   options.timeout = std::chrono::seconds(5);
//   options.env = {{"VIRTSCALE_DOMAIN", "web-1"}};
//   SubprocessResult r = RunSubprocess({"/usr/local/bin/check-web", "web-1"}, options);
//   if (!r.ok()) log(r.Describe() + ": " + r.FirstLines(1, 200));
//   // r.Describe(): "exit status 3", "timed out after 5s", "killed by signal 9",
//   // "cancelled", "exec: /nope: No such file or directory"
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "common/canceller.h"
#include "common/duration.h"

namespace virtscale {

inline constexpr size_t kMaxSubprocessOutputBytes = 64 << 10;

struct SubprocessOptions {
  // Added to the agent's environment; a name already set is replaced.
  std::vector<std::pair<std::string, std::string>> env;
  Duration timeout = std::chrono::seconds(5);     // total, from the spawn
  Duration kill_grace = std::chrono::seconds(2);  // SIGTERM to SIGKILL
  size_t max_output_bytes = kMaxSubprocessOutputBytes;
  Canceller* canceller = nullptr;  // may be null
};

enum class SubprocessOutcome {
  kExited,      // exit_code is set
  kSignaled,    // killed by `signal`, not by us
  kTimedOut,    // we stopped it at the deadline
  kCancelled,   // we stopped it on Canceller::Cancel (or it was cancelled before the spawn)
  kSpawnError,  // it never ran: `error` says why
};

// "exited", "signaled", "timed_out", "cancelled", "spawn_error".
const char* SubprocessOutcomeName(SubprocessOutcome outcome);

struct SubprocessResult {
  SubprocessOutcome outcome = SubprocessOutcome::kSpawnError;
  int exit_code = -1;  // kExited only
  int signal = 0;      // kSignaled only
  Duration timeout{0};
  std::string output;           // stdout and stderr interleaved, at most max_output_bytes
  size_t output_truncated = 0;  // bytes past the cap, counted and dropped
  std::string error;            // kSpawnError: "exec: /nope: No such file or directory"

  // Exited with status 0.
  bool ok() const { return outcome == SubprocessOutcome::kExited && exit_code == 0; }
  // "exit status 3", "killed by signal 9", "timed out after 5s", "cancelled", or `error`.
  std::string Describe() const;
  // At most `max_lines` lines of `output` (without their newlines, joined by
  // "\n"), cut to `max_bytes` and made valid UTF-8 (BoundedUtf8).
  std::string FirstLines(size_t max_lines, size_t max_bytes) const;
};

// Runs `argv` (argv[0] without a '/' is looked up in PATH) and waits for it.
// Blocking; never throws. An empty argv is a kSpawnError. Thread-safe, but it
// copies `environ`: no thread may setenv meanwhile (the agent never does).
[[nodiscard]] SubprocessResult RunSubprocess(const std::vector<std::string>& argv,
                                             const SubprocessOptions& options);

}  // namespace virtscale
