#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for a bounded
# time from its seed corpus in tests/fuzz/corpus/<target>/. New inputs go to a
# scratch corpus in the build dir, never into the repository; a crash, leak or
# timeout stops that target and fails the script, leaving the input under
# build-fuzz/fuzz/artifacts/.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 20         # 20 s per target (CI)
#   FUZZ_TARGETS="config template" scripts/fuzz.sh 300
#   scripts/fuzz-long.sh       # 10 minutes per target
#
# -max_len is per target (max_len below): config files need room for a group
# name past 26k characters, a duration or a header needs little.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
jobs="${FUZZ_BUILD_JOBS:-2}"
targets="${FUZZ_TARGETS:-config exposition template prometheus_query duration web_config}"

max_len() {
  case "$1" in
    config) echo 65536 ;;
    exposition | template) echo 16384 ;;
    duration) echo 64 ;;
    web_config) echo 4096 ;;
    *) echo 8192 ;;
  esac
}

cmake -S . -B "$build" -DVIRTSCALE_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIRTSCALE_BUILD_TESTS=OFF -DVIRTSCALE_BUILD_BENCH=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j"$jobs" --target $(printf 'fuzz_%s ' $targets)

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
for t in $targets; do
  work="$build/fuzz/corpus/$t"
  artifacts="$build/fuzz/artifacts/$t/"
  mkdir -p "$work" "$artifacts"
  start=$SECONDS
  # -timeout: one input taking this long is a finding; -rss_limit_mb bounds memory.
  if "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="$artifacts" \
    "$work" "tests/fuzz/corpus/$t" >"$build/fuzz/$t.log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz/$t.log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$build/fuzz/$t.log" | tail -1 || true)
    echo "fuzz_$t: ok, $((SECONDS - start)) s, $execs runs, $cov, corpus $(ls "$work" | wc -l)"
  else
    failed=1
    echo "fuzz_$t: FAILED after $((SECONDS - start)) s; log $build/fuzz/$t.log, input in $artifacts"
    grep -E 'ERROR|SUMMARY|runtime error' "$build/fuzz/$t.log" | head -5 || true
  fi
done
exit $failed
