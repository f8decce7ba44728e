#!/usr/bin/env bash
# client/python/regen_stubs.sh: the Python package's gRPC stubs (hbsa/v1/attention_pb2.py,
# attention_pb2.pyi, attention_pb2_grpc.py, and the same three for session.proto), generated
# from proto/hbsa/v1/{attention,session}.proto by a pinned generator and committed, so
# installing the package runs no code generator.
#
#   client/python/regen_stubs.sh [--check] [VENV_DIR]
#     (no flag)  regenerate into client/python/hbsa/v1
#     --check    regenerate into a temporary folder and compare with the committed files
#                (exit 1 on any difference: the proto changed, or the stubs were edited)
#   VENV_DIR     where the generator's virtual environment lives (default build/stubs-venv)
#
# Why a pinned generator: grpcio-tools 1.60.0 bundles protoc 25 and writes protobuf 4.25 code,
# which imports on every protobuf from 4.25 (the package's floor) to the newest (7.x), and grpc
# stubs that need no grpcio newer than 1.60 (the floor). Newer grpcio-tools write code that
# checks the runtime and refuses older protobuf/grpcio, which broke installs at the floor.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
generator="grpcio-tools==1.60.0"
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
venv=${1:-$repo/build/stubs-venv}

if ! "$venv/bin/python" -c 'import grpc_tools, importlib.metadata as m, sys; sys.exit(m.version("grpcio-tools") != "1.60.0")' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$generator"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$venv/bin/python" -m grpc_tools.protoc -I"$repo/proto" --python_out="$out" \
  --grpc_python_out="$out" --pyi_out="$out" "$repo/proto/hbsa/v1/attention.proto" \
  "$repo/proto/hbsa/v1/session.proto"
stubs="attention_pb2.py attention_pb2.pyi attention_pb2_grpc.py session_pb2.py session_pb2.pyi session_pb2_grpc.py"
if [ $check = 1 ]; then
  status=0
  for f in $stubs; do
    if ! cmp -s "$out/hbsa/v1/$f" "$here/hbsa/v1/$f"; then
      echo "regen_stubs: client/python/hbsa/v1/$f differs from what $generator makes of proto/hbsa/v1/ (run client/python/regen_stubs.sh)"
      status=1
    fi
  done
  [ $status = 0 ] && echo "regen_stubs: the committed stubs are what $generator generates"
  exit $status
fi
for f in $stubs; do cp "$out/hbsa/v1/$f" "$here/hbsa/v1/$f"; done
echo "regen_stubs: wrote client/python/hbsa/v1/{$(echo $stubs | tr ' ' ,)} with $generator"
