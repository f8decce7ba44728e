#!/usr/bin/env bash
# scripts/gpu/bundle.sh BUILD_DIR: pack the GPU tests and the benchmark library of BUILD_DIR
# (plus the wgmma self-test and Hopper tests when built) into .device/cuda (git-ignored) for a GPU-machine call (`carry: [".device/cuda"]`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build-cuda}
rm -rf "$root/.device/cuda"
"$root/../shared/tools/device-bundle" "$root/.device/cuda" \
  "$build/tests/cuda/golden_cuda_test" "$build/tests/cuda/property_cuda_test" \
  "$build/tests/cuda/large_offset_cuda_test" "$build/bench/cuda/libhbsa_bench_capi.so" \
  $(for t in wgmma_selftest hopper_cuda_test cross_sequence_cuda_test; do [ -x "$build/tests/cuda/$t" ] && echo "$build/tests/cuda/$t"; done)
