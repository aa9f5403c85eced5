#!/usr/bin/env bash
# Builds and runs the unit and integration tests under AddressSanitizer +
# UndefinedBehaviorSanitizer (preset asan) and ThreadSanitizer (preset tsan),
# and prints how long each phase took. To keep CI in budget the tsan test
# preset leaves out integration tests of single-threaded CLI paths, the browser,
# and those whose threads the others already drive (web security, queue source).
#
#   scripts/sanitizers.sh            # both
#   scripts/sanitizers.sh asan       # one
# Environment: SANITIZER_JOBS (default 2) for the build.
set -euo pipefail
cd "$(dirname "$0")/.."
presets="${*:-asan tsan}"
jobs="${SANITIZER_JOBS:-2}"
status=0
summary=""
for preset in $presets; do
  t0=$SECONDS
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j"$jobs"
  t1=$SECONDS
  if scripts/ctest-no-skips.sh --preset "$preset" --timeout 900; then result=passed; else result=FAILED; status=1; fi
  t2=$SECONDS
  summary+="$preset: build $((t1 - t0)) s, tests $((t2 - t1)) s, $result"$'\n'
done
printf '%s' "$summary"
exit $status
