#!/usr/bin/env bash
# scripts/gpu/server_run.sh BUNDLE: the GPU run of the service, in one command on the GPU
# machine. Starts BUNDLE/bin/hbsa-server --backend cuda on loopback, drives it with python3 +
# grpcio (scripts/gpu/server_drive.py): every golden case through Attend and AttendStream
# (checked under SEMANTICS.md tolerances), then concurrent load so several CUDA streams are
# busy at once, then prints per-stream counters and stage histograms from /metrics and the
# overlap of device time; the Python package's torch path; sessions, cancellation and the Open
# Inference Protocol through tritonclient (scripts/gpu/server_features_check.py); saves the whole /metrics (server_metrics.txt) and checks that the GPU
# (NVML), process and device-labelled families are there, and finally SIGTERMs the server and
# checks it drains and exits 0.
# Output goes to stdout and to ${OUT:-/tmp/out}/server_gpu_run.txt. Exit code: 0 when all
# golden cases and every check pass and the server exited 0. Save the run as docs/evidence/gpu_server_run<N>_<card>_<date>.txt
# (replacing the previous one) and update its line in docs/evidence/INDEX.md.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bundle=${1:-$root/.device/server}
source "$bundle/env.sh"
out=${OUT:-/tmp/out}
mkdir -p "$out"
log="$out/server_gpu_run.txt"
exec > >(tee "$log") 2>&1

echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null)"
# Python stubs: generated here when grpc_tools exists, else the bundle's pre-generated ones.
py=$(mktemp -d)
if python3 -c 'import grpc_tools' 2>/dev/null; then
  python3 -m grpc_tools.protoc -I "$root/proto" --python_out="$py" --grpc_python_out="$py" \
    "$root/proto/hbsa/v1/attention.proto" && echo "stubs: generated with grpc_tools"
else
  cp -r "$bundle/py/." "$py/" && echo "stubs: pre-generated from the bundle"
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bundle/bin/hbsa-server" --backend cuda --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
  --streams-per-device 4 --log-level info > "$out/hbsa-server.log" 2>&1 &
server=$!
PYTHONPATH="$py" PYTHONUNBUFFERED=1 timeout 400 python3 "$root/scripts/gpu/server_drive.py" \
  --target "127.0.0.1:$port" --metrics "127.0.0.1:$mport" --golden "${HBSA_GOLDEN_DIR:-$root/tests/golden/cases}"
drive=$?
# The Python package's torch path (torch exists only on the GPU machine): the hbsa wheel built
# by server_bundle.sh, installed without dependencies (grpcio, numpy, torch are there).
torch_rc=0
features_rc=0
if ls "$bundle"/wheels/hbsa-*.whl >/dev/null 2>&1; then
  site=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --target "$site" "$bundle"/wheels/hbsa-*.whl &&
    HBSA_TARGET="127.0.0.1:$port" PYTHONPATH="$site" PYTHONUNBUFFERED=1 timeout 200 python3 \
      "$root/scripts/gpu/server_torch_check.py" "${HBSA_GOLDEN_DIR:-$root/tests/golden/cases}"
  torch_rc=$?
  echo "== torch client check exit code: $torch_rc"
  # Sessions, cancellation and the Open Inference Protocol (tritonclient, when bundled) on CUDA.
  ls "$bundle"/wheels/tritonclient-*.whl >/dev/null 2>&1 &&
    python3 -m pip install -q --no-index --no-deps --target "$site" "$bundle"/wheels/tritonclient-*.whl
  echo "== features: sessions, cancellation, Open Inference Protocol"
  PYTHONPATH="$site" PYTHONUNBUFFERED=1 timeout 200 python3 "$root/scripts/gpu/server_features_check.py" \
    "127.0.0.1:$port" "http://127.0.0.1:$mport/metrics"
  features_rc=$?
  echo "== features check exit code: $features_rc"
fi
# Streams at work: the C++ load generator keeps 1, then 4, then 8 compute-heavy requests in
# flight (one 16k-token sequence, 8 query heads, bf16, half the 128x128 blocks on). The executor
# gives each request the lowest-numbered free stream, so a stream above 0 only ever ran work
# while every lower one was busy: the per-stream counters below count requests that overlapped.
echo "== hbsa-bench: concurrency 1,4,8 on 1 x 16384 tokens, Hq 8, Hk 2, D 128, bf16, 128x128 blocks, density 0.5"
timeout 200 "$bundle/bin/hbsa-bench" --target "127.0.0.1:$port" --batch 1 --seqlen-q 16384 \
  --heads-q 8 --heads-k 2 --head-dim 128 --dtype bf16 --q-block-size 128 --k-block-size 128 \
  --density 0.5 --concurrency 1,4,8 --window-ms 1000 --max-windows 5 --warmup 4 \
  --metrics-url "http://127.0.0.1:$mport/metrics" \
  --csv "$out/server_bench.csv" --json "$out/server_bench.json"
bench_rc=$?
echo "== hbsa-bench exit code: $bench_rc"
# The whole /metrics after the load, saved as $OUT/server_metrics.txt: the device label on the
# latency and stage histograms, the process_* families and the NVML GPU families.
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$mport/metrics').read().decode(), end='')" \
  > "$out/server_metrics.txt"
echo "== /metrics saved to server_metrics.txt ($(wc -l < "$out/server_metrics.txt") lines); selected:"
grep -E '^(hbsa_stream_requests_total|hbsa_gpu_|process_|hbsa_(request|stage)_duration_seconds_count)' "$out/server_metrics.txt"
metrics_rc=0
for family in hbsa_gpu_utilization_ratio hbsa_gpu_memory_used_bytes process_cpu_seconds_total process_open_fds; do
  grep -q "^$family" "$out/server_metrics.txt" || { echo "== MISSING family $family"; metrics_rc=1; }
done
grep -qE '^hbsa_request_duration_seconds_count\{device="0",method="Attend"\}' "$out/server_metrics.txt" ||
  { echo '== MISSING device="0" on hbsa_request_duration_seconds'; metrics_rc=1; }
echo "== metrics check exit code: $metrics_rc"
kill -TERM "$server" 2>/dev/null
wait "$server"
code=$?
echo "== hbsa-server exit code after SIGTERM: $code (driver exit $drive, torch client exit $torch_rc, features $features_rc, metrics $metrics_rc)"
echo "== server log (tail)"
tail -n 25 "$out/hbsa-server.log"
[ "$drive" -eq 0 ] && [ "$code" -eq 0 ] && [ "$torch_rc" -eq 0 ] && [ "$features_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$metrics_rc" -eq 0 ]
