#!/usr/bin/env bash
# scripts/sanitize.sh: the CPU unit and integration suites under sanitizers, each in its own
# build folder (CPU only, clang). CI runs both from scripts/test.sh.
#
#   scripts/sanitize.sh asan   build-asan/: AddressSanitizer + UndefinedBehaviorSanitizer (UB is
#                              fatal, leaks reported), plus libFuzzer coverage so that
#                              scripts/fuzz.sh reuses the same build; runs the suites and the fuzz
#                              regression inputs (ctest -L fuzz)
#   scripts/sanitize.sh tsan   build-tsan/: ThreadSanitizer
# What runs: every ctest test except the GPU ones, the deployment checks (Python tools, no C++
# of ours beyond the server they already cover) and client_python_test (pip installs a fresh
# venv: slow, and its C++ side is the same server). The hbsa-server processes the integration
# tests start are the sanitized build too; a report in one makes it exit non-zero, which fails
# the test that started it.
# Environment: HBSA_JOBS (default: number of cores), HBSA_SANITIZE_BUILD_DIR (default
# build-asan / build-tsan).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:?usage: scripts/sanitize.sh asan|tsan}
jobs=${HBSA_JOBS:-$(nproc)}
case "$kind" in
  asan) flags=(-DHBSA_SANITIZE=address,undefined -DHBSA_BUILD_FUZZ=ON) ;;
  tsan) flags=(-DHBSA_SANITIZE=thread) ;;
  *) echo "sanitize.sh: unknown kind '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
build=${HBSA_SANITIZE_BUILD_DIR:-$root/build-$kind}
start=$(date +%s)
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DHBSA_WITH_CUDA=OFF -DHBSA_BUILD_TESTS=ON -DHBSA_BUILD_BENCH=OFF "${flags[@]}" >/dev/null
fi
echo "sanitize.sh: building $build ($kind) with $jobs jobs"
cmake --build "$build" -j "$jobs" >/dev/null
built=$(date +%s)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/scripts/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
cd "$build"
# A few integration tests pace requests with sleeps (queue full, deadlines, drain); under a
# sanitizer the server is 2-15x slower, so a test may run once more before it counts as failed.
# Sanitizer reports halt the process and fail every attempt alike.
ctest -LE "gpu|deploy" -E "client_python_test" --output-on-failure -j "$jobs" --timeout 1800 \
  --repeat until-pass:2
echo "sanitize.sh: $kind build $((built - start)) s, tests $(( $(date +%s) - built )) s"
