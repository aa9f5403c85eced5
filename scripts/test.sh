#!/usr/bin/env bash
# Runs the whole test suite from a fresh machine: installs dependencies, starts
# libvirtd/virtlogd for the end-to-end tier, builds, runs ctest, stops services.
#   scripts/test.sh                 # everything
#   scripts/test.sh -L unit         # extra arguments go to ctest
#   CI=true scripts/test.sh         # as .ci/run: any skipped test fails the run
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIRTSCALE_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"

# Under CI=true (.ci/run) nothing may skip: no libvirtd is a failure, not a skip.
case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" in ""|0|false|no) ci=0 ;; *) ci=1 ;; esac
started_libvirtd=0
if scripts/libvirtd.sh start; then started_libvirtd=1; else
  if [ $ci = 1 ]; then
    echo "test.sh: libvirtd did not start and CI=$CI: the e2e tier cannot run" >&2
    exit 1
  fi
  echo "test.sh: libvirtd did not start; e2e tests will be reported as skipped" >&2
fi
cleanup() { [ $started_libvirtd = 1 ] && scripts/libvirtd.sh stop || true; }
trap cleanup EXIT

scripts/ctest-no-skips.sh --test-dir "$build" --output-on-failure --timeout 900 "$@"
