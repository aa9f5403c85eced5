#!/usr/bin/env bash
# The long fuzzing run: every libFuzzer target of scripts/fuzz.sh for 10
# minutes (about an hour in all), from the seed corpus plus what earlier runs
# found in build-fuzz/fuzz/corpus/. Run it before a release or after changing a
# parser or decoder; CI runs the short pass (scripts/fuzz.sh 20).
#
#   scripts/fuzz-long.sh                          # every target, 600 s each
#   FUZZ_TARGETS=config scripts/fuzz-long.sh      # one target
#   FUZZ_LONG_SECONDS=1800 scripts/fuzz-long.sh   # longer
# FUZZ_BUILD_DIR and FUZZ_BUILD_JOBS are passed on to scripts/fuzz.sh.
set -euo pipefail
exec "$(dirname "$0")/fuzz.sh" "${FUZZ_LONG_SECONDS:-600}"
