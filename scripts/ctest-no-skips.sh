#!/usr/bin/env bash
# Runs ctest with the given arguments. Under CI=true (as .ci/run sets it) a
# skipped test is a failure: the test scripts already exit 1 instead of 77 there
# and GTEST_SKIP fails (tests/unit/support/ci_skips_fail.cc); this wrapper also
# fails the run when ctest still reports any test as not run (Skipped, Disabled,
# Not Run) or when the selection matched no test at all.
#   scripts/ctest-no-skips.sh --test-dir build -L unit
set -uo pipefail
ci=$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')
case "$ci" in ""|0|false|no) exec ctest "$@" ;; esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT
ctest --no-tests=error "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if grep -q "The following tests did not run:" "$log"; then
  echo "ctest-no-skips: CI=$CI and tests did not run (each is a failure here):" >&2
  sed -n '/The following tests did not run:/,/^$/p' "$log" >&2
  status=1
fi
exit "$status"
