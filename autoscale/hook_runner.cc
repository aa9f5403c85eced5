#include "autoscale/hook_runner.h"

namespace virtscale::autoscale {

// Enough of the hook's output to say why it failed in one decision record.
constexpr size_t kMaxHookOutputBytes = 256;

std::string HookRun::Describe() const {
  // The first output lines, also of a hook that passed: drains say what they did.
  const std::string lines = result.FirstLines(3, kMaxHookOutputBytes);
  return "hook " + command + ": " + (result.ok() ? "ok" : result.Describe()) +
         (lines.empty() ? "" : ": " + lines);
}

bool HookProceeds(const Hook& hook, const SubprocessResult& result) {
  return result.ok() || (result.outcome != SubprocessOutcome::kCancelled &&
                         hook.on_failure == HookFailure::kContinue);
}

HookRun RunHook(const Hook& hook, const PlaceholderValues& values, Canceller* canceller) {
  const std::vector<std::string> argv = SubstituteArgv(hook.command, values);
  SubprocessOptions options;
  options.timeout = hook.timeout;
  options.env = PlaceholderEnvironment(values);
  options.canceller = canceller;
  HookRun run;
  run.command = argv.empty() ? "" : argv[0];
  run.result = RunSubprocess(argv, options);
  run.proceed = HookProceeds(hook, run.result);
  return run;
}

}  // namespace virtscale::autoscale
