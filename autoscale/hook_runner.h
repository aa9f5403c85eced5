#pragma once
// Runs one lifecycle hook (`hooks.before_scale_down`, `hooks.after_scale_up`,
// decoded into Hook by rule_loader.h) for one member, and says whether the
// action may go on. Blocking for up to hook.timeout: the engine runs it on a
// worker thread; thread-safe.
//
//   Canceller shutdown;
//   HookRun run = RunHook(*group.hooks->before_scale_down,
//                         {.domain = "web-3", .group = "web", .address = "10.0.0.7"}, &shutdown);
//   if (!run.proceed) ...;   // abandon the scale-down of web-3; run.Describe() for the record:
//                            // "hook /usr/local/bin/drain: exit status 1: still 3 sessions"
//
// argv gets {domain}, {group}, {address} substituted (an unknown address is
// the empty string) and the environment VIRTSCALE_DOMAIN, VIRTSCALE_GROUP,
// VIRTSCALE_ADDRESS. A hook fails when it does not exit 0: a non-zero status,
// a signal, its timeout, or a command that cannot run. A cancelled hook
// (agent shutdown) never lets the action proceed, whatever on_failure says.
#include <string>

#include "autoscale/rules.h"
#include "common/canceller.h"
#include "common/placeholders.h"
#include "common/subprocess.h"

namespace virtscale::autoscale {

struct HookRun {
  SubprocessResult result;
  bool proceed = false;  // succeeded, or failed with on_failure: continue
  std::string command;   // argv[0] after substitution
  // "hook /bin/drain: ok: <first output lines>", "hook /bin/drain: exit status 1: <...>".
  std::string Describe() const;
};

// Whether an action may go on after its hook ended with `result`: it
// succeeded, or it failed (not cancelled) with on_failure: continue.
[[nodiscard]] bool HookProceeds(const Hook& hook, const SubprocessResult& result);

[[nodiscard]] HookRun RunHook(const Hook& hook, const PlaceholderValues& values,
                              Canceller* canceller);

}  // namespace virtscale::autoscale
