#!/usr/bin/env bash
# scripts/gpu/bundle.sh BUILD_DIR OUT_DIR [PREV_LIB] [UPSTREAM_MIRROR]: pack what one GPU-machine
# call needs (scripts/gpu/run_device.sh) into OUT_DIR (git-ignored; name it in `carry`):
#   bin/, lib/, golden/, env.sh   the GPU tests and libhbsa_bench_capi.so of BUILD_DIR with their
#                                 shared libraries (../shared/tools/device-bundle)
#   bin/libhbsa_bench_capi_prev.so  PREV_LIB, a build of the previous kernel (A/B in one run)
#   bin/libhbsa_bench_capi_NAME.so  for each NAME=PATH in HBSA_EXTRA_LIBS: variant builds
#   bench.py, run_device.sh, summarize_bench.py  this checkout's versions (the call runs from a
#                                 copy of another checkout)
#   upstream/                     the public hbsattn Triton kernel, extracted from the bare git
#                                 mirror UPSTREAM_MIRROR (a peer, measured, never committed)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:?usage: bundle.sh BUILD_DIR OUT_DIR [PREV_LIB] [UPSTREAM_MIRROR]}
out=${2:?usage: bundle.sh BUILD_DIR OUT_DIR [PREV_LIB] [UPSTREAM_MIRROR]}
prev=${3:-}
mirror=${4:-}
# Keep a Triton cache carried in from an earlier call (bench step: triton_cache.tgz).
keep=""
[ -f "$out/triton_cache.tgz" ] && keep=$(mktemp) && cp "$out/triton_cache.tgz" "$keep"
rm -rf "$out"
tests=""
for t in wgmma_selftest wgmma_cuda_test golden_cuda_test property_cuda_test small_blocks_cuda_test \
         cross_sequence_cuda_test large_offset_cuda_test; do
  [ -x "$build/tests/cuda/$t" ] || { echo "bundle.sh: $build/tests/cuda/$t is missing" >&2; exit 2; }
  tests="$tests $build/tests/cuda/$t"
done
libs="$build/bench/cuda/libhbsa_bench_capi.so"
tmp=$(mktemp -d)
if [ -n "$prev" ]; then
  cp "$prev" "$tmp/libhbsa_bench_capi_prev.so"
  libs="$libs $tmp/libhbsa_bench_capi_prev.so"
fi
for spec in ${HBSA_EXTRA_LIBS:-}; do
  cp "${spec#*=}" "$tmp/libhbsa_bench_capi_${spec%%=*}.so"
  libs="$libs $tmp/libhbsa_bench_capi_${spec%%=*}.so"
done
"$root/../shared/tools/device-bundle" "$out" $tests $libs
cp "$root/bench/cuda/bench.py" "$root/scripts/gpu/run_device.sh" "$root/scripts/gpu/summarize_bench.py" "$out/"
if [ -n "$mirror" ]; then
  mkdir -p "$out/upstream"
  git --git-dir="$mirror" archive HEAD hbsattn | tar -x -C "$out/upstream"
  rm -rf "$out/upstream/hbsattn/__pycache__"
fi
[ -n "$keep" ] && mv "$keep" "$out/triton_cache.tgz"
du -sh "$out"
