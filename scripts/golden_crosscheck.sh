#!/usr/bin/env bash
# scripts/golden_crosscheck.sh DIR: an extra check against another folder of golden-format cases
# (the shared project folder's golden/, when there is one; .ci/run calls it only then). The
# repository's own cases (tests/golden/cases) are what every test reads; this adds:
#   1. the repository's oracle (tests/golden/make_golden.py --cross-check) on DIR's inputs
#      against DIR's out/lse, and which of DIR's specs coincide with tests/golden/specs.py;
#   2. hbsa-check on every case of DIR with the reference and the fast CPU backends, under the
#      same tolerances as the repository's cases (SEMANTICS.md).
# Needs a built tree (HBSA_BUILD_DIR, default build) and .venv (scripts/bootstrap.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:?usage: scripts/golden_crosscheck.sh DIR}
build=${HBSA_BUILD_DIR:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
check="$build/kernels/tools/hbsa-check"
[ -x "$check" ] || { echo "golden_crosscheck: no $check (build first)" >&2; exit 2; }
echo "== oracle of tests/golden against $dir"
"$root/.venv/bin/python" "$root/tests/golden/make_golden.py" --cross-check "$dir"
for backend in reference cpu; do
  echo "== hbsa-check --backend $backend on $dir"
  "$check" --backend "$backend" "$dir"/*/
done
echo "golden_crosscheck: PASS ($dir)"
