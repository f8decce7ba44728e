#!/usr/bin/env bash
# scripts/gpu/run_device.sh BUNDLE STEP...: everything one GPU-machine call does, in the order
# given; logs under $OUT (at most 8 files come back). BUNDLE is made by scripts/gpu/bundle.sh.
#   info       GPU, driver, torch/triton versions; cuobjdump's resource usage of the kernels
#              (registers, local memory) -> info.txt
#   tests      every GPU test binary (each runs every kernel that can run its problems) -> tests.log
#   sanitizer  compute-sanitizer (tools HBSA_SAN_TOOLS, default "memcheck racecheck") on the
#              poisoned-key-row, cross-sequence (8 configurations) and, with HBSA_SAN_FULL=1, the
#              wgmma and golden tests -> sanitizer.log
#   warm       compiles the upstream kernel's autotune configurations for every bench row, in
#              parallel processes, into the Triton cache (bench.py --warm-upstream)
#   bench      bench.py: grids HBSA_BENCH_GRID (default "anchors users"), N HBSA_BENCH_N (default
#              "4096 16384"), FlexAttention unless HBSA_BENCH_NO_FLEX=1, upstream unless
#              HBSA_BENCH_NO_UPSTREAM=1, the previous library and variant builds when bundled
#              -> bench.jsonl, bench.log
#   cache      the Triton cache as triton_cache.tgz (bundle.sh keeps it for the next call)
# The Triton cache is TRITON_CACHE_DIR=/tmp/triton_cache, filled from BUNDLE/triton_cache.tgz.
# Time limits (s): HBSA_BENCH_TIMEOUT (420), HBSA_WARM_TIMEOUT (150), HBSA_SAN_TIMEOUT (90, per
# sanitizer run); HBSA_XSEQ_SAN: cross-sequence configurations under the sanitizers (8).
# Run 11b (docs/BENCHMARKS.md): HBSA_BENCH_TIMEOUT=250 HBSA_WARM_TIMEOUT=120 HBSA_SAN_TIMEOUT=50
# HBSA_XSEQ_SAN=4 ... info tests sanitizer warm bench (353 s on an H200).
# What comes back is evidence, not a test: keep the latest log of each kind in docs/evidence/
# (replacing the one it supersedes) with its line in docs/evidence/INDEX.md.
set -uo pipefail
bundle=$(cd "$1" && pwd); shift
source "$bundle/env.sh"
# The GPU tests read the repository's golden cases from this copy of the checkout (the default
# path compiled into them is the build machine's).
export HBSA_GOLDEN_DIR=${HBSA_GOLDEN_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/golden/cases}
out=${OUT:-/tmp/out}
mkdir -p "$out"
export TRITON_CACHE_DIR=/tmp/triton_cache
mkdir -p "$TRITON_CACHE_DIR"
[ -f "$bundle/triton_cache.tgz" ] && tar -xzf "$bundle/triton_cache.tgz" -C "$TRITON_CACHE_DIR"
prev=""; [ -f "$bundle/bin/libhbsa_bench_capi_prev.so" ] && prev="--prev-lib $bundle/bin/libhbsa_bench_capi_prev.so"
for lib in "$bundle"/bin/libhbsa_bench_capi_*.so; do  # variant builds (bundle.sh HBSA_EXTRA_LIBS)
  name=$(basename "$lib" .so); name=${name#libhbsa_bench_capi_}
  [ "$name" = prev ] || [ ! -f "$lib" ] || prev="$prev --extra-lib $name=$lib"
done
up=""; [ -d "$bundle/upstream/hbsattn" ] && [ "${HBSA_BENCH_NO_UPSTREAM:-0}" != 1 ] && up="--upstream $bundle/upstream"
grid=${HBSA_BENCH_GRID:-anchors users}
ns=${HBSA_BENCH_N:-4096 16384}
t_start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t_start )) s] $*"; }

run_test() {  # run_test LOG LIMIT_S BINARY [ARGS...]: one test binary, its exit code logged
  local log=$1 limit=$2 bin=$3; shift 3
  echo "== $(basename "$bin") $*" >> "$out/$log"
  timeout "$limit" "$bundle/bin/$bin" "$@" >> "$out/$log" 2>&1
  local rc=$?
  echo "exit $rc" >> "$out/$log"
  stamp "$bin $*: exit $rc"
}

for step in "$@"; do
  case $step in
    info)
      { date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
        python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'
        cuobjdump --dump-resource-usage "$bundle/bin/libhbsa_bench_capi.so" 2>&1 |
          grep -E "Function|REG|STACK|LOCAL" | sed 's/^ *//' | paste - - | grep -E "Wgmma|TcAttention|Plan|Simt" |
          sed -E 's/_ZN4hbsa13cuda_internal//' | cut -c1-220
      } > "$out/info.txt" 2>&1
      cat "$out/info.txt" | head -40 ;;
    tests)
      run_test tests.log 60 wgmma_selftest
      run_test tests.log 120 wgmma_cuda_test
      run_test tests.log 120 golden_cuda_test
      run_test tests.log 200 small_blocks_cuda_test
      run_test tests.log 150 property_cuda_test
      run_test tests.log 120 cross_sequence_cuda_test
      run_test tests.log 150 large_offset_cuda_test
      grep -E "^\[  (PASSED|FAILED) |^exit|XSEQ configs|EXCLUDED configs|WGMMA_PATH" "$out/tests.log"
      echo "FAIL lines: $(grep -c ' FAIL$' "$out/tests.log")" ;;
    sanitizer)
      specs=("small_blocks_cuda_test --gtest_filter=*Excluded*")
      [ "${HBSA_SAN_FULL:-0}" = 1 ] && specs+=("wgmma_cuda_test --gtest_filter=*BlockShapes*" "golden_cuda_test")
      for tool in ${HBSA_SAN_TOOLS:-memcheck racecheck}; do
        for spec in "${specs[@]}"; do
          set -- $spec
          echo "== $tool $spec" >> "$out/sanitizer.log"
          timeout ${HBSA_SAN_TIMEOUT:-90} compute-sanitizer --tool $tool --error-exitcode 9 \
            "$bundle/bin/$1" "${@:2}" > "$out/san_tmp.log" 2>&1
          rc=$?
          grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Hazard|Invalid|PASSED|FAILED" "$out/san_tmp.log" |
            head -20 >> "$out/sanitizer.log"
          echo "exit $rc" >> "$out/sanitizer.log"
          stamp "$tool $spec: exit $rc"
        done
        echo "== $tool cross_sequence_cuda_test (${HBSA_XSEQ_SAN:-8} configs)" >> "$out/sanitizer.log"
        HBSA_XSEQ_CONFIGS=${HBSA_XSEQ_SAN:-8} timeout ${HBSA_SAN_TIMEOUT:-90} compute-sanitizer --tool $tool --error-exitcode 9 \
          "$bundle/bin/cross_sequence_cuda_test" > "$out/san_tmp.log" 2>&1
        rc=$?
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Hazard|Invalid|XSEQ configs" "$out/san_tmp.log" |
          head -20 >> "$out/sanitizer.log"
        echo "exit $rc" >> "$out/sanitizer.log"
        stamp "$tool cross_sequence: exit $rc"
      done
      rm -f "$out/san_tmp.log"
      grep -E "SUMMARY|^exit" "$out/sanitizer.log" | sort | uniq -c ;;
    warm)
      [ -n "$up" ] || { echo "warm: no upstream in the bundle"; continue; }
      # N = 4096 is enough: the kernel's specialisations do not depend on N (strides stay
      # multiples of 16), so the N = 16384 rows find these compilations in the cache.
      PYTHONUNBUFFERED=1 timeout ${HBSA_WARM_TIMEOUT:-150} python3 "$bundle/bench.py" --warm-upstream 12 $up \
        --grid $grid --n ${HBSA_WARM_N:-4096} > "$out/warm.log" 2>&1
      stamp "warm: exit $? ($(grep -c '^warm ' "$out/warm.log") rows)"
      grep -vE "^warm .*: [0-9.]+ s$" "$out/warm.log" | tail -5 ;;
    bench)
      extra=""; [ "${HBSA_BENCH_NO_FLEX:-0}" = 1 ] && extra="--no-flex"
      PYTHONUNBUFFERED=1 timeout "${HBSA_BENCH_TIMEOUT:-420}" python3 "$bundle/bench.py" \
        --lib "$bundle/bin/libhbsa_bench_capi.so" $prev $up --out "$out/bench.jsonl" \
        --grid $grid --n $ns $extra > "$out/bench.log" 2>&1
      stamp "bench: exit $? ($(wc -l < "$out/bench.jsonl") rows)"
      grep -vE '^\{' "$out/bench.log" | tail -5
      python3 "$bundle/summarize_bench.py" --brief "$out/bench.jsonl" ;;
    cache)
      tar -czf "$out/triton_cache.tgz" -C "$TRITON_CACHE_DIR" . && ls -la "$out/triton_cache.tgz" ;;
  esac
done
stamp done
