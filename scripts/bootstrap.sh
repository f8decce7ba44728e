#!/usr/bin/env bash
# scripts/bootstrap.sh: install everything hbsa's build, tests and benchmarks need on a fresh
# Debian 12 machine. Idempotent and quiet when nothing is missing; run as root (or with sudo).
#
#   Debian packages: compiler, CMake, gRPC/Protobuf, spdlog, prometheus-cpp, GoogleTest,
#                    Google Benchmark, OpenBLAS (benchmark ceiling), Prometheus (e2e test),
#                    clang-format 14 (the format check, scripts/check_format.sh), Python 3
#                    with venv, openssl (the TLS tests make their certificates), clang with
#                    compiler-rt (libFuzzer targets, scripts/fuzz.sh).
#   PyPI (into .venv/ at the repository root): the Python tools the tests use.
#
#   scripts/bootstrap.sh               all of the above
#   scripts/bootstrap.sh --build-only  only what `scripts/build.sh --tests off` needs to build
#                                      hbsa-server and hbsa (compiler, CMake, Ninja, the C++
#                                      libraries' -dev packages): the container images' build
#                                      stage, which needs no test tool and no PyPI
#
# The CUDA toolkit is not installed here: with nvcc on PATH the build turns the CUDA backend on,
# without it the CPU backends build and test alone.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_only=0
case "${1:-}" in
  "") ;;
  --build-only) build_only=1 ;;
  -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "bootstrap.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

debs=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libspdlog-dev libfmt-dev nlohmann-json3-dev prometheus-cpp-dev libabsl-dev zlib1g-dev
)
if [ $build_only -eq 0 ]; then
  debs+=(git ca-certificates curl libgtest-dev libgmock-dev libbenchmark-dev libopenblas-dev
         prometheus clang-format-14 python3 python3-venv python3-dev
         openssl clang libclang-rt-14-dev)
fi

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ $build_only -eq 0 ] || exit 0

# Python tools in a project-local virtual environment (PyPI). The requirements file is the list;
# a stamp holding its hash keeps repeated runs quiet.
venv="$here/.venv"
req="$here/scripts/requirements-dev.txt"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python tools into .venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$venv/bin/python" -m pip install -q -r "$req"
  echo "$want" > "$stamp"
fi
