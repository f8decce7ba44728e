#!/usr/bin/env bash
# scripts/build.sh: configure, build and install hbsa-server (and the `hbsa` client CLI) into a
# prefix. The one build script: the container images' build stages run exactly
# `scripts/bootstrap.sh` then this script (deploy/docker/), and CI runs it too, so what CI
# checks is what the images build.
#
#   scripts/build.sh [options]
#     --prefix DIR        install prefix (default: <build-dir>/install); binaries go to DIR/bin
#     --build-dir DIR     CMake build tree (default: build); reused when it exists
#     --cuda auto|on|off  CUDA backend (default auto: on when nvcc is found). Also HBSA_CUDA.
#     --cuda-archs LIST   CMAKE_CUDA_ARCHITECTURES, e.g. "80;90" (default: the project's)
#     --tests on|off      configure and build the tests and benchmarks too (default: off for a
#                         fresh tree; an existing tree keeps its setting). Without `on`, only
#                         hbsa-server and hbsa are built.
#     --bundle-libs       copy the non-system shared libraries the binaries need into DIR/lib,
#                         so a slim runtime image needs none of the -dev packages
#     --jobs N            parallel build jobs (default: HBSA_JOBS, else the number of cores)
#     --type T            CMAKE_BUILD_TYPE (default Release)
#
# Options that are not given are not passed to CMake for an existing build tree, so re-running
# the script on a configured tree changes nothing and only builds what is out of date.
# After installing, the script runs `hbsa-server --help` from the prefix as a smoke test and, with
# --bundle-libs, checks that every shared library resolves (ldd) with only DIR/lib added.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

build="build"
prefix=""
cuda="${HBSA_CUDA:-}"
cuda_archs=""
tests=""
bundle=0
jobs="${HBSA_JOBS:-$(nproc)}"
type=""

die() { echo "build.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a value}"; shift 2 ;;
    --build-dir) build="${2:?--build-dir needs a value}"; shift 2 ;;
    --cuda) cuda="${2:?--cuda needs a value}"; shift 2 ;;
    --cuda-archs) cuda_archs="${2:?--cuda-archs needs a value}"; shift 2 ;;
    --tests) tests="${2:?--tests needs a value}"; shift 2 ;;
    --bundle-libs) bundle=1; shift ;;
    --jobs) jobs="${2:?--jobs needs a value}"; shift 2 ;;
    --type) type="${2:?--type needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
case "$cuda" in ""|auto|on|off) ;; *) die "--cuda must be auto, on or off, not '$cuda'" ;; esac
case "$tests" in ""|on|off) ;; *) die "--tests must be on or off, not '$tests'" ;; esac
case "$jobs" in ''|*[!0-9]*|0) die "--jobs must be a positive integer, not '$jobs'" ;; esac

case "$build" in /*) ;; *) build="$root/$build" ;; esac
[ -n "$prefix" ] || prefix="$build/install"
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac

fresh=1
[ -f "$build/CMakeCache.txt" ] && fresh=0

# Only what was asked for (or, on a fresh tree, the defaults) goes to CMake.
args=(-S "$root" -B "$build")
if [ $fresh -eq 1 ]; then
  args+=(-G Ninja)
  [ -n "$type" ] || type=Release
  [ -n "$tests" ] || tests=off
fi
[ -n "$type" ] && args+=("-DCMAKE_BUILD_TYPE=$type")
case "$cuda" in
  on) args+=(-DHBSA_WITH_CUDA=ON) ;;
  off) args+=(-DHBSA_WITH_CUDA=OFF) ;;
  auto) [ $fresh -eq 1 ] || args+=(-UHBSA_WITH_CUDA) ;;  # let the project detect nvcc again
esac
[ -n "$cuda_archs" ] && args+=("-DCMAKE_CUDA_ARCHITECTURES=$cuda_archs")
case "$tests" in
  on) args+=(-DHBSA_BUILD_TESTS=ON -DHBSA_BUILD_BENCH=ON) ;;
  off) args+=(-DHBSA_BUILD_TESTS=OFF -DHBSA_BUILD_BENCH=OFF) ;;
esac

echo "build.sh: configuring $build"
cmake "${args[@]}" >/dev/null

# With --tests on, build everything (CI); otherwise only the shipped programs (images, and
# re-installs from a tree built before).
targets=()
if [ "$tests" != "on" ]; then
  have=$(cmake --build "$build" --target help)
  for t in hbsa-server hbsa; do
    grep -q "^$t:" <<<"$have" && targets+=(--target "$t")
  done
  [ ${#targets[@]} -gt 0 ] || die "the build tree has no hbsa-server target (is server/ there?)"
fi
echo "build.sh: building ${targets[*]:-all} with $jobs jobs"
cmake --build "$build" -j "$jobs" "${targets[@]}"

# Install: the two programs (hbsa is optional until the client is built) into $prefix/bin.
mkdir -p "$prefix/bin"
installed=()
for name in hbsa-server hbsa; do
  exe=$(find "$build" -path "$build/install" -prune -o -path "*/CMakeFiles" -prune -o \
          -type f -name "$name" -perm -u+x -print | head -n 1)
  if [ -n "$exe" ]; then
    install -m 0755 "$exe" "$prefix/bin/$name"
    installed+=("$prefix/bin/$name")
  elif [ "$name" = hbsa-server ]; then
    die "hbsa-server was not built in $build"
  else
    echo "build.sh: note: no '$name' program in $build; installing hbsa-server alone" >&2
  fi
done

# Bundle the shared libraries that are not part of the C library or the NVIDIA driver (the
# driver's libcuda/libnvidia-* are injected into GPU containers by the NVIDIA container toolkit
# and must match the host's driver, so they are never copied).
if [ $bundle -eq 1 ]; then
  mkdir -p "$prefix/lib"
  for exe in "${installed[@]}"; do
    ldd "$exe" | awk '/=> \// { print $3 }' | while read -r lib; do
      base=$(basename "$lib")
      case "$base" in
        libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libresolv.so*|libutil.so*) ;;
        libcuda.so*|libnvidia-*|libnvcuvid*) ;;
        *) [ -e "$prefix/lib/$base" ] || cp -L "$lib" "$prefix/lib/$base" ;;
      esac
    done
  done
  missing=$(for exe in "${installed[@]}"; do
              LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$exe"
            done | grep "not found" | grep -v -e libcuda.so -e libnvidia- || true)
  [ -z "$missing" ] || die "unresolved libraries after bundling: $missing"
  echo "build.sh: bundled $(ls "$prefix/lib" | wc -l) shared libraries into $prefix/lib"
fi

# Smoke test from the prefix: the installed server must start far enough to print its usage.
LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$prefix/bin/hbsa-server" --help \
  >/dev/null || die "installed hbsa-server --help failed"
echo "build.sh: installed ${installed[*]}"
