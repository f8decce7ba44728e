#!/usr/bin/env bash
# run_oip_tests.sh: the Open Inference Protocol front end against the stock Triton client.
#   run_oip_tests.sh REPO_ROOT VENV_DIR SERVER_BIN GOLDEN_DIR DESCRIPTOR_SET
# Makes VENV_DIR with exactly tests/oip/requirements.txt (kept between runs while that file is
# unchanged: a stamp holds its hash; about a minute to make on 2 cores), then
#   1. wire_compat.py: our proto field by field against the descriptors tritonclient ships;
#   2. pytest tests/oip: a real hbsa-server (CPU backend) on loopback driven by tritonclient.
set -euo pipefail
repo=$1 venv=$2 server=$3 golden=$4 descriptors=$5
req="$repo/tests/oip/requirements.txt"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip -q --disable-pip-version-check install -r "$req"
  echo "$want" > "$venv/.stamp"
fi
echo "run_oip_tests: $("$venv/bin/python" -c 'import importlib.metadata as m; print(", ".join("%s %s" % (p, m.version(p)) for p in ("tritonclient", "grpcio", "protobuf", "numpy")))')"
"$venv/bin/python" -W error::DeprecationWarning "$repo/tests/oip/wire_compat.py" "$descriptors"
cd "$venv"
HBSA_SERVER_BIN="$server" HBSA_GOLDEN_DIR="$golden" \
  exec "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider "$repo/tests/oip"
