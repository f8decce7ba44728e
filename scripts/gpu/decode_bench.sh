#!/usr/bin/env bash
# scripts/gpu/decode_bench.sh: the issue-13 decode measurement (sessions of server-resident K/V
# against full K/V per call) in one command, from a build folder that has hbsa-server and
# hbsa-decode-bench (configure with -DHBSA_BUILD_BENCH=ON; -DHBSA_WITH_CUDA=ON on the GPU machine).
#
#   scripts/gpu/decode_bench.sh BUILD_DIR        # writes under $OUT (default /tmp/out)
#
# Steps: hbsa-server --backend cuda (HBSA_RUN_BACKEND=cpu for a dry run without a GPU) with a
# session pool large enough for the sweep; hbsa-decode-bench over 1 and 16 open sessions at 4K
# and 32K tokens (and 128K), 64 sessions at 4K and 32K, 256 at 4K (host memory: the bench keeps
# a copy of every context, and each step in flight gathers one on the server), sparsity 0.5 and
# 0.9 (0.9 only past 16 sessions), 32/8
# heads, D = 128, bf16, each session mode step spot-checked against the stateless Attend, and
# --full (the same steps with the whole K/V per call) where the K/V fits a message; then the
# session metrics. HBSA_RUN_QUICK=1 shrinks it to a smoke run. Outputs in $OUT: run.log,
# decode.jsonl (one JSON line per mode and configuration), hbsa-server.log, metrics.txt.
#
# What it measures, honestly: this first step of issue 13 gathers the resident K/V into the
# packed layout on the host and uploads it per step (docs/SERVICE.md, "Sessions"), so the
# session mode saves the network transfer, not the per-step K/V copy; the paged kernel is the
# next step, and this script is its baseline.
set -uo pipefail
build=${1:?usage: decode_bench.sh BUILD_DIR}
out=${OUT:-/tmp/out}
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
backend=${HBSA_RUN_BACKEND:-cuda}
quick=${HBSA_RUN_QUICK:-0}
server="$build/server/hbsa-server"
bench="$build/bench/service/hbsa-decode-bench"
echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null) cores $(nproc)"
pool=$((64 << 30)); budget=$((24 << 30))
[ "$quick" = 1 ] && { pool=$((1 << 30)); budget=$((1 << 30)); }
"$server" --backend "$backend" --listen 127.0.0.1:50071 --metrics-listen 127.0.0.1:9471 \
  --session-memory-bytes "$pool" --memory-budget-bytes "$budget" --max-message-bytes 2147483647 \
  --log-level info > "$out/hbsa-server.log" 2>&1 &
srv=$!
for i in $(seq 1 240); do
  grep -q "SERVING" "$out/hbsa-server.log" && break
  kill -0 "$srv" 2>/dev/null || { echo "== hbsa-server exited:"; tail -20 "$out/hbsa-server.log"; exit 1; }
  sleep 0.5
done
J="$out/decode.jsonl"
run() { echo "== hbsa-decode-bench $*"; timeout 900 "$bench" --target 127.0.0.1:50071 --max-message-bytes 2147483647 --json "$J" "$@"; echo "== exit code $?"; }
if [ "$quick" = 1 ]; then
  run --sessions 1,4 --context 512 --sparsity 0.5 --steps 10 --heads-q 8 --heads-k 2 --head-dim 64 --full
else
  run --sessions 1,16 --context 4096,32768 --sparsity 0.5,0.9 --steps 100 --full
  run --sessions 64 --context 4096,32768 --sparsity 0.9 --steps 50
  run --sessions 256 --context 4096 --sparsity 0.9 --steps 50
  run --sessions 1,16 --context 131072 --sparsity 0.5,0.9 --steps 50 --full
fi
python3 -c "import urllib.request; print('\n'.join(l for l in urllib.request.urlopen('http://127.0.0.1:9471/metrics').read().decode().splitlines() if l.startswith(('hbsa_session', 'hbsa_stage_duration_seconds_sum', 'hbsa_stage_duration_seconds_count'))))" > "$out/metrics.txt" 2>&1
kill -TERM "$srv"; wait "$srv"; echo "== server exit code $?"
