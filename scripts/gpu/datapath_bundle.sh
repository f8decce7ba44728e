#!/usr/bin/env bash
# scripts/gpu/datapath_bundle.sh [BUILD_DIR] [OUT_DIR]: pack the issue-10 data-path run for the
# GPU machine: hbsa-server (built with -DHBSA_WITH_CUDA=ON) and hbsa-service-bench with their
# shared libraries (device-bundle), Python stubs of hbsa/v1/attention.proto made with the
# grpcio-tools release matching the GPU machine's grpcio, the FlexAttention peer server, the
# golden-case driver and the run script. Default OUT_DIR: /work/main/.device/datapath (a `run`
# sends /work/main's tree; carry `.device/datapath`). On the GPU machine:
#   bash .device/datapath/datapath_run.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:-$root/build-cuda}
out=${2:-/work/main/.device/datapath}
rm -rf "$out"
"$root/../shared/tools/device-bundle" "$out" "$build/server/hbsa-server" \
  "$build/bench/service/hbsa-service-bench"
gt_version=${HBSA_GPU_GRPCIO_VERSION:-1.84.0}
gt_venv="$root/.device/grpcio-tools-$gt_version"
if [ ! -x "$gt_venv/bin/python" ]; then
  python3 -m venv "$gt_venv"
  "$gt_venv/bin/python" -m pip install -q "grpcio-tools==$gt_version"
fi
mkdir -p "$out/py"
"$gt_venv/bin/python" -m grpc_tools.protoc -I "$root/proto" --python_out="$out/py" \
  --grpc_python_out="$out/py" "$root/proto/hbsa/v1/attention.proto"
touch "$out/py/hbsa/__init__.py" "$out/py/hbsa/v1/__init__.py"
cp "$root/scripts/gpu/datapath_run.sh" "$root/scripts/gpu/datapath_rerun.sh" "$root/scripts/gpu/server_drive.py" \
  "$root/bench/service/flex_server.py" "$out/"
du -sh "$out"
