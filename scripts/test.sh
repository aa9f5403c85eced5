#!/usr/bin/env bash
# Runs the whole test suite from a fresh machine: installs dependencies, starts
# libvirtd/virtlogd for the end-to-end tier, builds, runs ctest, stops services.
#   scripts/test.sh                 # everything
#   scripts/test.sh -L unit         # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIRTSCALE_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"

started_libvirtd=0
if [ -x scripts/libvirtd.sh ]; then
  if scripts/libvirtd.sh start; then started_libvirtd=1; else
    echo "test.sh: libvirtd did not start; e2e tests will skip" >&2
  fi
fi
cleanup() { [ $started_libvirtd = 1 ] && scripts/libvirtd.sh stop || true; }
trap cleanup EXIT

ctest --test-dir "$build" --output-on-failure --timeout 900 "$@"
