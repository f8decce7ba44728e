#!/usr/bin/env bash
# scripts/gpu/datapath_rerun.sh: the shorter second issue-10 run on the GPU machine (bundle from
# datapath_bundle.sh), after the fast lane for small requests and the completion thread's
# condition variable: the golden cases again, the floor sweep at 1 and 8 in flight, and the
# 3.1 MB and 128-token requests at 32 in flight over 1 and 8 connections (--channels), with
# batching on and off. Outputs in $OUT: run.log, bench.jsonl, drive.log, metrics.txt.
set -uo pipefail
b=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$b/env.sh"
out=${OUT:-/tmp/out}
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
backend=${HBSA_RUN_BACKEND:-cuda}
export PYTHONPATH="$b/py${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null) cores $(nproc)"
B="$b/bin/hbsa-service-bench"
J="$out/bench.jsonl"
start_server() {  # PORT MPORT LOG [flags...]; sets srv
  local port=$1 mport=$2 log=$3; shift 3
  "$b/bin/hbsa-server" --backend "$backend" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
    --memory-budget-bytes $((32 << 30)) --host-staging-bytes $((8 << 30)) --log-level info "$@" > "$log" 2>&1 &
  srv=$!
  for i in $(seq 1 120); do
    python3 -c "import grpc; c=grpc.insecure_channel('127.0.0.1:$port'); grpc.channel_ready_future(c).result(timeout=1)" 2>/dev/null && break
    sleep 0.5
  done
  sleep 1
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1"; echo "== server $1 exit code $?"; }
start_server 50051 9464 "$out/hbsa-server.log"
timeout 60 python3 "$b/server_drive.py" --target 127.0.0.1:50051 --metrics 127.0.0.1:9464 \
  --golden "$HBSA_GOLDEN_DIR" --expect-backend "$backend" --load-threads 2 --load-requests 1 > "$out/drive.log" 2>&1
echo "== drive exit code $?"; grep -E "RESULT|FAIL" "$out/drive.log" | head -5
echo "== floor: echo vs Attend, 1 and 8 in flight"
timeout 100 "$B" --target 127.0.0.1:50051 --payloads 64K,256K,1M,4M,16M,64M,256M --inflight 1,8 --seconds 0.8 \
  --min-calls 4 --warmup 2 --label floor2 --json "$J"
for ch in 1 8; do
  echo "== 3.1 MB and 128-token requests at 32 in flight, $ch connection(s), batching on"
  timeout 40 "$B" --target 127.0.0.1:50051 --requests req3mb,small128 --inflight 32 --channels $ch --seconds 1.2 \
    --warmup 3 --label "batch-on-ch$ch" --json "$J"
done
python3 -c "import urllib.request,re; [print(l) for l in urllib.request.urlopen('http://127.0.0.1:9464/metrics').read().decode().splitlines() if re.match(r'^hbsa_stream_(requests|busy_seconds)_total|^hbsa_batch_size_requests_(sum|count)', l)]" | tee "$out/metrics.txt"
stop "$srv"
start_server 50052 9465 "$out/hbsa-server-nobatch.log" --batch-max-tokens 0
for ch in 1 8; do
  echo "== the same, batching off, $ch connection(s)"
  timeout 40 "$B" --target 127.0.0.1:50052 --requests req3mb,small128 --inflight 32 --channels $ch --seconds 1.2 \
    --warmup 3 --echo none --label "batch-off-ch$ch" --json "$J"
done
stop "$srv"
echo "== done $(date -u)"
