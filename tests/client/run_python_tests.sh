#!/usr/bin/env bash
# run_python_tests.sh: installs the Python client into a FRESH virtual environment and runs its
# pytest suite against a real hbsa-server.
#   run_python_tests.sh MODE REPO_ROOT VENV_DIR SERVER_BIN GOLDEN_DIR
#   MODE lowest  every requirement at its declared floor (floors.py: grpcio, protobuf, numpy,
#                pytest and setuptools exactly at the versions pyproject.toml states);
#                `pip install ./client/python` built with that setuptools
#        newest  `python -m build` makes the sdist and, from it, the wheel; the wheel is
#                installed with its `torch` extra and the newest releases of everything (torch
#                from PyPI: about 3 minutes and 5.3 GB with its CUDA libraries, measured
#                2026-12-01), so the torch tests and the drop-in's (test_dropin.py) run here
#                only: the lowest venv has no torch and leaves test_dropin.py out
# The suite asserts the installed versions (HBSA_EXPECT_VERSIONS), so a run cannot silently
# test other versions than it claims.
set -euo pipefail
mode=$1 repo=$2 venv=$3 server=$4 golden=$5
pkg="$repo/client/python"
rm -rf "$venv"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip -q --disable-pip-version-check)
case "$mode" in
  lowest)
    "$venv/bin/python" "$repo/tests/client/python/floors.py" "$pkg/pyproject.toml" > "$venv/floors.txt"
    echo "run_python_tests: lowest declared versions: $(tr '\n' ' ' < "$venv/floors.txt")"
    # wheel: setuptools 64 needs it to build a wheel without build isolation (not a declared floor).
    "${pip[@]}" install -c "$venv/floors.txt" setuptools wheel
    "${pip[@]}" install --no-build-isolation -c "$venv/floors.txt" "$pkg" pytest
    expect=$(grep -v '^setuptools==' "$venv/floors.txt" | tr '\n' ',')
    select=(--ignore "$repo/tests/client/python/test_dropin.py")
    ;;
  newest)
    "${pip[@]}" install build
    # Build from a copy so the source tree gets no build/ or egg-info; the link VERSION is
    # copied as a file, the way an sdist carries it.
    cp -rL "$pkg" "$venv/src"
    "$venv/bin/python" -m build --outdir "$venv/dist" "$venv/src" > "$venv/build.log" 2>&1 ||
      { cat "$venv/build.log"; exit 1; }
    ls "$venv/dist"/hbsa-*.tar.gz "$venv/dist"/hbsa-*-py3-none-any.whl > /dev/null
    wheel=$(ls "$venv/dist"/hbsa-*-py3-none-any.whl)
    "${pip[@]}" install --upgrade "$wheel[torch]" pytest grpcio protobuf numpy
    expect=""
    select=()
    ;;
  *) echo "run_python_tests: MODE must be lowest or newest, not '$mode'" >&2; exit 2 ;;
esac
echo "run_python_tests: $mode: $("$venv/bin/python" -c 'import importlib.metadata as m; print(", ".join("%s %s" % (p, m.version(p)) for p in ("hbsa", "grpcio", "protobuf", "numpy", "pytest")))')"
# Run from outside the source tree so `import hbsa` finds the installed package, not the sources.
cd "$venv"
HBSA_SERVER_BIN="$server" HBSA_GOLDEN_DIR="$golden" HBSA_EXPECT_VERSIONS="$expect" \
  HBSA_VERSION_FILE="$repo/VERSION" \
  exec "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider "${select[@]}" "$repo/tests/client/python"
