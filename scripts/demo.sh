#!/usr/bin/env bash
# scripts/demo.sh: the README's first Quick start command. Installs what is needed, builds the
# server and the client, starts hbsa-server (CUDA backend when a GPU is present, else CPU),
# sends a real golden case through Attend, checks the answer against the expected output,
# shows a few of the server's metrics, and stops the server gracefully.
#
# Environment: HBSA_BUILD_DIR (default build), HBSA_GOLDEN_DIR (default: the repository's
# tests/golden/cases),
# HBSA_DEMO_CASE (default readme_example_causal), HBSA_DEMO_PORT / HBSA_DEMO_METRICS_PORT.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
"$root/scripts/bootstrap.sh"
build=${HBSA_BUILD_DIR:-build}
golden=${HBSA_GOLDEN_DIR:-$root/tests/golden/cases}
case_name=${HBSA_DEMO_CASE:-readme_example_causal}
port=${HBSA_DEMO_PORT:-50051}
mport=${HBSA_DEMO_METRICS_PORT:-9464}
[ -d "$golden/$case_name" ] || { echo "demo: no case folder $golden/$case_name (set HBSA_GOLDEN_DIR)" >&2; exit 2; }

echo "== building hbsa-server and hbsa"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target hbsa-server hbsa >/dev/null

echo "== starting hbsa-server on 127.0.0.1:$port (metrics on :$mport)"
"$build/server/hbsa-server" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
  --backend auto --log-level info &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$build/client/hbsa" health --target "127.0.0.1:$port" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "demo: server exited" >&2; exit 1; }
  sleep 0.1
done
"$build/client/hbsa" health --target "127.0.0.1:$port"

echo "== sending golden case $case_name through Attend and checking the answer"
"$build/client/hbsa" attend --target "127.0.0.1:$port" --case "$golden/$case_name" --lse --check

echo "== a few server metrics (http://127.0.0.1:$mport/metrics)"
curl -s "http://127.0.0.1:$mport/metrics" |
  grep -E '^hbsa_(requests_total|request_duration_seconds_(count|sum)\{[^}]*method="Attend"|stage_duration_seconds_sum|flops_total|tokens_total|build_info)' || true

echo "== stopping the server (SIGTERM drains, then exits 0)"
kill -TERM $server
trap - EXIT
wait $server && echo "demo: server exited cleanly"
