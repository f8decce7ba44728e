#!/usr/bin/env bash
# scripts/gpu/datapath_run.sh: the issue-10 measurement in one command on the GPU machine, from
# the bundle made by datapath_bundle.sh. Steps (each bounded by a timeout; results are written
# as they come, so a step that runs out of time loses only itself):
#   1. hbsa-server --backend cuda (batching on, the default) and every golden case through
#      Attend and AttendStream with python3 + grpcio (server_drive.py), checked under
#      SEMANTICS.md tolerances;
#   2. hbsa-service-bench: the floor sweep (echo vs Attend, 64 KiB .. 256 MiB, 1 and 8 in
#      flight), the message-path client for reference, the issue's named requests at 1/8/32 in
#      flight, the 201 MB request as bytes and through shared memory;
#   3. per-stream busy seconds and request counts, and the batch-size histogram, from /metrics;
#   4. a second hbsa-server with batching off: the same small requests;
#   5. the FlexAttention peer (flex_server.py) with the same requests and client.
# Outputs in $OUT: run.log (this output), bench.jsonl (every bench row), metrics.txt,
# drive.log, hbsa-server.log, flex-server.log. HBSA_RUN_BACKEND=cpu and HBSA_RUN_QUICK=1 make a
# small dry run of the same script on a machine without a GPU.
set -uo pipefail
b=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$b/env.sh"
out=${OUT:-/tmp/out}
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
backend=${HBSA_RUN_BACKEND:-cuda}
quick=${HBSA_RUN_QUICK:-0}
export PYTHONPATH="$b/py${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null) cores $(nproc)"
B="$b/bin/hbsa-service-bench"
J="$out/bench.jsonl"
budget=$((32 << 30)); staging=$((8 << 30))
[ "$quick" = 1 ] && { budget=$((2 << 30)); staging=$((1 << 30)); }
start_server() {  # PORT MPORT LOG [flags...]; sets srv (a child of this shell)
  local port=$1 mport=$2 log=$3; shift 3
  "$b/bin/hbsa-server" --backend "$backend" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
    --memory-budget-bytes "$budget" --host-staging-bytes "$staging" --log-level info "$@" > "$log" 2>&1 &
  srv=$!
}
metric() {  # MPORT REGEX
  python3 -c "import urllib.request,re,sys; [print(l) for l in urllib.request.urlopen('http://127.0.0.1:$1/metrics').read().decode().splitlines() if re.match(sys.argv[1], l)]" "$2"
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1"; echo "== server $1 exit code $?"; tail -3 "$2"; }

# 1. Server (batching on) and the golden cases.
start_server 50051 9464 "$out/hbsa-server.log"
for i in $(seq 1 120); do
  python3 -c "import grpc,sys; c=grpc.insecure_channel('127.0.0.1:50051'); grpc.channel_ready_future(c).result(timeout=1)" 2>/dev/null && break
  sleep 0.5
done
sleep 1
if ! kill -0 "$srv" 2>/dev/null; then
  echo "== hbsa-server did not start:"; tail -20 "$out/hbsa-server.log"
  budget=$((16 << 30)); staging=$((2 << 30))
  start_server 50051 9464 "$out/hbsa-server.log"; sleep 15
fi
grep -E "cuda executor|warm-up|error|critical" "$out/hbsa-server.log" | head -5
echo "== golden cases (Attend, AttendStream) and a short load"
[ "$quick" = 1 ] || timeout 120 python3 "$b/server_drive.py" --target 127.0.0.1:50051 --metrics 127.0.0.1:9464 \
  --golden "$HBSA_GOLDEN_DIR" --expect-backend "$backend" --load-threads 8 --load-requests 1 > "$out/drive.log" 2>&1
echo "== drive exit code $? (details in drive.log)"; grep -E "PASS|FAIL|pass|fail" "$out/drive.log" | tail -4

# 2. The benchmark.
if [ "$quick" = 1 ]; then sizes=64K,1M; big=sweep4194304; secs=0.3; else sizes=64K,256K,1M,4M,16M,64M,256M; big=req200mb; secs=0.8; fi
echo "== floor: echo vs Attend (direct client), 1 and 8 in flight"
timeout 170 "$B" --target 127.0.0.1:50051 --payloads "$sizes" --inflight 1,8 --seconds "$secs" --min-calls 4 \
  --warmup 2 --label floor --json "$J"
echo "== message-path client (BuildRequest + Attend + CopyToBuffers), for reference"
timeout 30 "$B" --target 127.0.0.1:50051 --client proto --payloads 1M,64M --inflight 1 --seconds 0.5 \
  --min-calls 3 --echo none --label proto-client --json "$J"
echo "== named requests, batching on"
timeout 60 "$B" --target 127.0.0.1:50051 --requests req3mb,small128 --inflight 1,8,32 --seconds 1.2 \
  --warmup 3 --label batch-on --json "$J"
echo "== 201 MB request: bytes, then shared memory"
timeout 40 "$B" --target 127.0.0.1:50051 --requests "$big" --inflight 1,8 --seconds 1 --min-calls 4 \
  --warmup 1 --label big-bytes --json "$J"
timeout 30 "$B" --target 127.0.0.1:50051 --shm hbsa --requests "$big" --inflight 1 --seconds 1 --min-calls 4 \
  --warmup 1 --echo none --label big-shm --json "$J"
timeout 40 "$B" --target 127.0.0.1:50051 --shm hbsa --payloads "$sizes" --inflight 1 --seconds 0.5 --min-calls 3 \
  --warmup 1 --echo none --label floor-shm --json "$J"

# 3. Streams and batches.
echo "== per-stream requests and busy seconds, batch sizes"
metric 9464 '^hbsa_stream_(requests|busy_seconds)_total|^hbsa_batch_size_requests_(sum|count)|^hbsa_stage_duration_seconds_(sum|count)' | tee "$out/metrics.txt"
stop "$srv" "$out/hbsa-server.log"

# 4. Batching off.
start_server 50052 9465 "$out/hbsa-server-nobatch.log" --batch-max-tokens 0
echo "== named requests, batching off"
timeout 50 "$B" --target 127.0.0.1:50052 --requests req3mb,small128 --inflight 1,8,32 --seconds 1.2 \
  --warmup 3 --echo none --label batch-off --json "$J"
stop "$srv" "$out/hbsa-server-nobatch.log"

# 5. The FlexAttention peer.
if [ "$backend" = cuda ]; then
  python3 "$b/flex_server.py" --listen 127.0.0.1:50071 > "$out/flex-server.log" 2>&1 &
  flex=$!
  echo "== FlexAttention peer (python3 grpcio + torch.compile(flex_attention)), same requests and client"
  timeout 110 "$B" --target 127.0.0.1:50071 --requests req3mb,small128 --inflight 1,8,32 --seconds 1.5 \
    --warmup 3 --echo none --label flex --json "$J"
  kill -TERM "$flex" 2>/dev/null; wait "$flex" 2>/dev/null
  tail -5 "$out/flex-server.log"
fi
echo "== done $(date -u)"
