#!/usr/bin/env bash
# scripts/gpu/run_device.sh: everything one GPU-machine call does, logs under $OUT.
#   run_device.sh BUNDLE [tests] [tests_simple] [sanitizer] [bench] [flex] [bench_simple] [bench_mmasync]
#                        [xseq] [xseq_sanitizer] [bench_quick]
# BUNDLE is a ../shared/tools/device-bundle folder holding golden_cuda_test, property_cuda_test,
# large_offset_cuda_test and libhbsa_bench_capi.so (made by scripts/gpu/bundle.sh). Steps run
# in the order given; each appends to its own log so a partial run still reports.
# Environment: HBSA_BIN_SUFFIX picks a second build's binaries bundled beside the first (e.g. _b:
# golden_cuda_test_b, libhbsa_bench_capi_b.so) for tests/xseq/xseq_sanitizer/bench steps;
# HBSA_XSEQ_KERNELS limits xseq's kernels; HBSA_BENCH_LIBS sets bench_quick's libraries;
# HBSA_BENCH_TIMEOUT the full bench's time limit (s).
# What comes back is evidence, not a test: keep the latest log of each kind in docs/evidence/
# (replacing the one it supersedes) with its line in docs/evidence/INDEX.md.
set -uo pipefail
bundle=$1; shift
source "$bundle/env.sh"
# The GPU tests read the repository's golden cases from this copy of the checkout (the default
# path compiled into them is the build machine's).
export HBSA_GOLDEN_DIR=${HBSA_GOLDEN_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/golden/cases}
out=${OUT:-/tmp/out}
sfx=${HBSA_BIN_SUFFIX:-}
mkdir -p "$out"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv;
  python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'; } \
  > "$out/info.txt" 2>&1
cat "$out/info.txt"
for step in "$@"; do
  case $step in
    tests|tests_simple)
      # tests_simple: the v1 wgmma kernel (HBSA_HOPPER_KERNEL=simple) on the quick tests.
      list="wgmma_selftest hopper_cuda_test golden_cuda_test property_cuda_test large_offset_cuda_test"
      if [ "$step" = tests_simple ]; then export HBSA_HOPPER_KERNEL=simple; list="hopper_cuda_test golden_cuda_test property_cuda_test"; else unset HBSA_HOPPER_KERNEL; fi
      for t in $list; do
        [ -x "$bundle/bin/$t$sfx" ] || { echo "== $t$sfx not in bundle" | tee -a "$out/tests.log"; continue; }
        echo "== $t$sfx" | tee -a "$out/tests.log"
        timeout 300 "$bundle/bin/$t$sfx" 2>&1 | tee -a "$out/tests.log" | grep -E "^(GOLDEN|LARGE|WGMMA|HOPPER_PATH|\[  )|FAIL|Failure|S\[|O\[" | tail -40
        echo "exit ${PIPESTATUS[0]}" | tee -a "$out/tests.log"
      done ;;
    xseq)
      # Poisoned neighbours (cross_sequence_cuda_test) under the three kernels; a
      # cross_sequence_cuda_test_prefix binary in the bundle (the build before a fix) runs first.
      for k in ${HBSA_XSEQ_KERNELS:-prefix default simple mmasync}; do
        bin="$bundle/bin/cross_sequence_cuda_test$sfx"; [ $k = prefix ] && bin="${bin%$sfx}_prefix"
        [ -x "$bin" ] || continue
        echo "== xseq $k" | tee -a "$out/xseq.log"
        ( unset HBSA_HOPPER_KERNEL HBSA_CUDA_NO_WGMMA
          [ $k = simple ] && export HBSA_HOPPER_KERNEL=simple
          [ $k = mmasync ] && export HBSA_CUDA_NO_WGMMA=1
          timeout 120 "$bin" ) >> "$out/xseq.log" 2>&1; echo "exit $?" | tee -a "$out/xseq.log"
        grep -E "XSEQ kernel=.*configs|FAIL" "$out/xseq.log" | tail -3
      done ;;
    xseq_sanitizer)
      # memcheck on the whole poisoned-neighbour test, racecheck on its first 6 configurations.
      for run in "memcheck 24" "racecheck 6"; do
        set -- $run
        echo "== $1 cross_sequence_cuda_test ($2 configs)" | tee -a "$out/xseq_sanitizer.log"
        HBSA_XSEQ_CONFIGS=$2 timeout 75 compute-sanitizer --tool $1 --error-exitcode 9 \
          "$bundle/bin/cross_sequence_cuda_test$sfx" > "$out/san_tmp.log" 2>&1; echo "exit $?" >> "$out/san_tmp.log"
        grep -vE "^XSEQ .*PASS$" "$out/san_tmp.log" | tail -30 >> "$out/xseq_sanitizer.log"; rm -f "$out/san_tmp.log"
      done
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|^exit" "$out/xseq_sanitizer.log" ;;
    bench_quick)
      # N = 4096 rows without FlexAttention, for this bundle's library and (when present) the
      # library built before a fix, on the same machine; always the default kernel (an earlier
      # tests_simple step leaves HBSA_HOPPER_KERNEL set).
      unset HBSA_HOPPER_KERNEL HBSA_CUDA_NO_WGMMA
      for lib in ${HBSA_BENCH_LIBS:-libhbsa_bench_capi_prefix libhbsa_bench_capi}; do
        [ -f "$bundle/bin/$lib.so" ] || continue
        echo "== $lib" | tee -a "$out/bench_quick.log"
        PYTHONUNBUFFERED=1 timeout 150 python3 bench/cuda/bench.py --lib "$bundle/bin/$lib.so" \
          --out "$out/bench_quick_$lib.jsonl" --n 4096 --no-flex 2>&1 | python3 -c 'import sys,json
for l in sys.stdin:
  try: r=json.loads(l)
  except Exception: print(l.rstrip()[:200]); continue
  print(r["n"],int(r["causal"]),r["sq"],r["sk"],r["sparsity"],"ours %.4f"%r["hbsa_ms"],"tf %.0f"%r["hbsa_tflops"])' | tee -a "$out/bench_quick.log"
      done ;;
    sanitizer_golden)
      # The reduced set: memcheck and racecheck on the golden cases, memcheck on the Hopper cases.
      for run in "memcheck golden_cuda_test" "racecheck golden_cuda_test" "memcheck hopper_cuda_test"; do
        set -- $run
        echo "== $1 $2" | tee -a "$out/sanitizer.log"
        timeout 200 compute-sanitizer --tool $1 --error-exitcode 9 "$bundle/bin/$2" \
          >> "$out/sanitizer.log" 2>&1; echo "exit $?" | tee -a "$out/sanitizer.log"
      done
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/sanitizer.log" | sort | uniq -c ;;
    sanitizer)
      for tool in memcheck racecheck; do
        echo "== $tool golden" | tee -a "$out/sanitizer.log"
        timeout 240 compute-sanitizer --tool $tool --error-exitcode 9 "$bundle/bin/golden_cuda_test" \
          >> "$out/sanitizer.log" 2>&1; echo "exit $?" | tee -a "$out/sanitizer.log"
        echo "== $tool property (6 cases)" | tee -a "$out/sanitizer.log"
        HBSA_PROPERTY_CASES=6 timeout 240 compute-sanitizer --tool $tool --error-exitcode 9 \
          "$bundle/bin/property_cuda_test" --gtest_filter=PropertyCuda.RandomProblemsMatchReference \
          >> "$out/sanitizer.log" 2>&1; echo "exit $?" | tee -a "$out/sanitizer.log"
      done
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/sanitizer.log" | sort | uniq -c ;;
    bench|flex|bench_mmasync|bench_simple)
      # bench_mmasync: the mma.sync kernel on the same device (wgmma path switched off);
      # bench_simple: the v1 wgmma kernel.
      extra=(--no-flex); [ "$step" = flex ] && extra=()
      unset HBSA_HOPPER_KERNEL HBSA_CUDA_NO_WGMMA
      [ "$step" = bench_mmasync ] && export HBSA_CUDA_NO_WGMMA=1
      [ "$step" = bench_simple ] && export HBSA_HOPPER_KERNEL=simple
      PYTHONUNBUFFERED=1 timeout ${HBSA_BENCH_TIMEOUT:-500} python3 bench/cuda/bench.py --lib "$bundle/bin/libhbsa_bench_capi$sfx.so" \
        --out "$out/bench_$step.jsonl" "${extra[@]}" 2>&1 | tee -a "$out/bench_$step.log" | \
        python3 -c 'import sys,json
for l in sys.stdin:
  try: r=json.loads(l)
  except Exception: print(l.rstrip()[:200]); continue
  print(r["n"],int(r["causal"]),r["sq"],r["sk"],r["sparsity"],"ours %.3f"%r["hbsa_ms"],"up %.2f"%r["anchor_upstream_ms"],"flex %s"%r.get("flex_ms","-"),"ideal %.2f"%r["ideal_ms"],"tf %.0f"%r["hbsa_tflops"])' ;;
  esac
done
