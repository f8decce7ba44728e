#!/usr/bin/env bash
# scripts/fuzz.sh: build the libFuzzer targets (tests/fuzz, ASan + UBSan, clang), seed their
# corpora from the golden cases and run each for a bounded time. CI runs it from scripts/test.sh.
#
#   scripts/fuzz.sh [--seconds S] [--build-dir DIR] [--jobs N] [--golden DIR]
#     --seconds S     fuzzing time per target (default 60)
#     --build-dir DIR the ASan build (default build-asan, shared with scripts/sanitize.sh asan)
#     --golden DIR    golden cases for the seeds (default $HBSA_GOLDEN_DIR or tests/golden/cases)
# Targets: hbsa_fuzz_translate (AttendRequest bytes -> translation -> compile/compute) and
# hbsa_fuzz_mask (the mask converters and compiler, three forms). The corpora grow under
# DIR/fuzz-corpus/<target> (kept between runs of the same build folder); the seeds are rewritten
# each run (DIR/fuzz-seeds). A crash stops the script with exit 1 and names the input file: turn
# it into a regression (copy it to tests/fuzz/regressions/<target>/, and add a unit test naming
# the rule it broke), fix, rerun.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=60
build="$root/build-asan"
jobs=${HBSA_JOBS:-$(nproc)}
golden=${HBSA_GOLDEN_DIR:-$root/tests/golden/cases}
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?}; shift 2 ;;
    --build-dir) build=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --golden) golden=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$build" in /*) ;; *) build="$root/$build" ;; esac
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHBSA_WITH_CUDA=OFF -DHBSA_SANITIZE=address,undefined -DHBSA_BUILD_FUZZ=ON \
    -DHBSA_BUILD_TESTS=OFF -DHBSA_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$build" -j "$jobs" --target hbsa_fuzz_translate hbsa_fuzz_mask hbsa_fuzz_seeds >/dev/null
rm -rf "$build/fuzz-seeds"
"$build/tests/fuzz/hbsa_fuzz_seeds" "$golden" "$build/fuzz-seeds"
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
for t in translate mask; do
  corpus="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  log="$build/fuzz-$t.log"
  max_len=1048576
  [ "$t" = mask ] && max_len=65536
  echo "fuzz.sh: $t for $seconds s (corpus $corpus, seeds $build/fuzz-seeds/$t)"
  set +e
  "$build/tests/fuzz/hbsa_fuzz_$t" -max_total_time="$seconds" -max_len="$max_len" -timeout=20 \
    -rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" "$build/fuzz-seeds/$t" "$root/tests/fuzz/regressions/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  if [ $rc -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: $t FAILED (exit $rc); the input is in $artifacts (see --help)" >&2
    exit 1
  fi
  echo "fuzz.sh: $t ok: ${execs:-?} executions (${rate:-?}/s), coverage ${cov:-?} edges, $(ls "$corpus" | wc -l) corpus units"
done
