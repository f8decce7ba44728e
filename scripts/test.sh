#!/usr/bin/env bash
# scripts/test.sh: install what is needed, build everything and run every CPU test.
# The README's second Quick start command and what CI runs (.ci/run).
#
#   scripts/test.sh            bootstrap, configure build/ (CUDA backend compiled when nvcc is
#                              found), build, then `ctest -LE gpu` (GPU tests run on GPU machines
#                              only: scripts/gpu/), the real image build (label `image`, about 4
#                              minutes) and the format check included;
#                            then the same CPU suites under ASan+UBSan and under TSan
#                            (scripts/sanitize.sh, folders build-asan/ and build-tsan/) and
#                            each fuzz target for HBSA_FUZZ_SECONDS (scripts/fuzz.sh)
# Environment: HBSA_BUILD_DIR (default build), HBSA_JOBS (default: number of cores),
# HBSA_SANITIZERS (default 1; 0 skips the sanitizer builds and fuzzing, for a quick local run),
# HBSA_FUZZ_SECONDS (default 60 per target).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
"$root/scripts/bootstrap.sh"
build=${HBSA_BUILD_DIR:-build}
jobs=${HBSA_JOBS:-$(nproc)}
# Configure + build (+ install into $build/install) with the script the container images run.
"$root/scripts/build.sh" --build-dir "$build" --type Release --tests on --jobs "$jobs"
cd "$build"
ctest -LE gpu --output-on-failure -j "$jobs" --timeout 900
if [ "${HBSA_SANITIZERS:-1}" != 0 ]; then
  cd "$root"
  HBSA_JOBS=$jobs scripts/sanitize.sh asan
  HBSA_JOBS=$jobs scripts/fuzz.sh --seconds "${HBSA_FUZZ_SECONDS:-60}" --build-dir build-asan
  HBSA_JOBS=$jobs scripts/sanitize.sh tsan
fi
