#!/usr/bin/env bash
# tests/deploy/image_test.sh: builds the CPU image (deploy/docker/Dockerfile.cpu) for real and
# serves a golden request from it. ctest: deploy.image, labels `deploy` and `image`, part of CI's
# run (about 4 minutes on 2 cores from nothing: 40 s debootstrap, 3 minutes image build);
# `ctest -L image` runs it alone (docs/DEPLOY.md). Steps, each logged with its time:
#   1. scripts/image_tools.sh: podman, buildah, debootstrap from Debian's packages
#   2. scripts/image_base.sh: the debian:12 / 12-slim bases made locally with debootstrap (no
#      registry is pulled), in a podman storage of this test's own (under WORK)
#   3. podman build --format docker (so HEALTHCHECK survives; OCI images drop it), --pull=never,
#      --build-arg DEBIAN_IMAGE=<the local base>
#   4. the image's config: user 10001, entrypoint hbsa-server, the HEALTHCHECK command, ports
#   5. its file system: hbsa-server and hbsa in /opt/hbsa/bin and nothing else there; no test or
#      benchmark program or library, no compiler, no Python, no source tree
#   6. the server from the image: `podman run` if this machine lets containers run, else a
#      chroot into the image's root file system as user 10001 with the image's environment
#      (the log says which, and why)
#   7. the image's own HEALTHCHECK command answers SERVING; a golden case through Attend with
#      HBSA_CLI (built outside the image), checked against its reference answer; /metrics
#      counts it
#   8. SIGTERM: the server drains and exits 0
#
#   image_test.sh REPO_ROOT WORK HBSA_CLI [CASE]
# WORK holds the storage, the base tarballs (reused by a later run) and image_test.log. The
# storage is removed at the end unless HBSA_IMAGE_KEEP=1.
set -euo pipefail
repo=$(cd "$1" && pwd) work=$2 cli=$3
case_dir=${4:-$repo/tests/golden/cases/readme_example_causal}
mkdir -p "$work"
work=$(cd "$work" && pwd)
log="$work/image_test.log"
: > "$log"
exec > >(tee -a "$log") 2>&1

t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }
fail() { echo "image_test: FAIL: $*"; exit 1; }

step "image test on $(uname -n), $(nproc) cores, $(. /etc/os-release; echo "$PRETTY_NAME"), $(date -u '+%Y-%m-%d %H:%M UTC')"
step "1. tools (scripts/image_tools.sh)"
"$repo/scripts/image_tools.sh"
podman --version
buildah --version

# A storage of our own: nothing of the machine's images is used or changed.
export CONTAINERS_STORAGE_CONF="$work/storage.conf"
cat > "$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage/graph"
runroot = "$work/storage/run"
EOF
tag=localhost/hbsa-server-cpu:test
base=localhost/hbsa-base/debian
container=hbsa-image-test-$$
server_pid=""
mnt=""
cleanup() {
  [ -z "$server_pid" ] || kill -KILL "$server_pid" 2> /dev/null || true
  podman rm -f "$container" > /dev/null 2>&1 || true
  for m in "$mnt/proc" "$mnt/dev"; do
    [ -z "$mnt" ] || ! mountpoint -q "$m" || umount -R "$m" || umount -l "$m" || true
  done
  podman image unmount --all > /dev/null 2>&1 || true
  if [ "${HBSA_IMAGE_KEEP:-0}" != 1 ]; then
    podman system reset --force > /dev/null 2>&1 || true
    rm -rf "$work/storage"
  fi
}
trap cleanup EXIT

step "2. base images from Debian's packages (scripts/image_base.sh)"
"$repo/scripts/image_base.sh" --name "$base" --cache "$work/base"

step "3. podman build --format docker -f deploy/docker/Dockerfile.cpu"
# The build's RUN steps use chroot isolation: it needs no cgroup setup from the machine (an OCI
# runtime refuses this sandbox's hybrid cgroups) and the steps run the same scripts either way.
# host network: the build stage reaches Debian's packages as the machine does. --ignorefile:
# podman 4.3 does not read <Dockerfile>.dockerignore by itself (BuildKit does), and without it
# the context would take in build trees and venvs.
b0=$(date +%s)
podman build --format docker --pull=never --isolation chroot --network host \
  --ignorefile "$repo/deploy/docker/Dockerfile.cpu.dockerignore" \
  --build-arg DEBIAN_IMAGE="$base" -f "$repo/deploy/docker/Dockerfile.cpu" -t "$tag" "$repo" \
  > "$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; fail "podman build failed"; }
grep -E '^(STEP|COMMIT|Successfully)' "$work/build.log"
step "   built in $(( $(date +%s) - b0 )) s"

step "4. the image's configuration"
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image $tag: $size bytes ($(( size / 1000000 )) MB), $(podman image inspect --format '{{len .RootFS.Layers}}' "$tag") layers"
health=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$tag")
user=$(podman image inspect --format '{{.Config.User}}' "$tag")
entry=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$tag")
echo "user $user, entrypoint $entry, healthcheck $health"
echo "$health" | grep -q '"/opt/hbsa/bin/hbsa","health"' || fail "the HEALTHCHECK did not survive: $health"
[ "$user" = "10001:10001" ] || fail "user is '$user', not 10001:10001"
[ "$entry" = '["/opt/hbsa/bin/hbsa-server"]' ] || fail "entrypoint is $entry"
mapfile -t env < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$tag" | sed '/^$/d')
printf 'env %s\n' "${env[@]}"

step "5. what the image carries (no test or benchmark tools)"
mnt=$(podman image mount "$tag")
ls -l "$mnt/opt/hbsa/bin" "$mnt/opt/hbsa/lib"
bins=$(cd "$mnt/opt/hbsa/bin" && ls | tr '\n' ' ')
[ "$bins" = "hbsa hbsa-server " ] || fail "/opt/hbsa/bin holds '$bins', want exactly hbsa and hbsa-server"
# Test and benchmark programs and libraries of this project (and of GoogleTest, Google
# Benchmark, Prometheus, pytest), compilers, Python, the source tree.
forbidden=$(cd "$mnt" && find . -xdev \( \( \( -type f -o -type l \) \( -name '*_test' \
  -o -name '*_test.*' -o -name 'hbsa-bench' -o -name 'hbsa-check' -o -name 'hbsa_bench*' \
  -o -name 'libgtest*' -o -name 'libgmock*' -o -name 'libbenchmark*' -o -name 'promtool' \
  -o -name 'prometheus' -o -name 'pytest' -o -name 'cc1plus' -o -name 'gcc' -o -name 'g++' \
  -o -name 'c++' -o -name 'cmake' -o -name 'ninja' -o -name 'protoc' -o -name 'python3*' \
  -o -name 'CMakeLists.txt' -o -name 'make_golden.py' \) \) -o \( -type d \( -name '.venv' \
  -o -name 'golden' -o -name 'googletest' \) \) \) -print | sort)
[ -z "$forbidden" ] || { echo "$forbidden"; fail "the image carries test, benchmark or build tools"; }
[ ! -e "$mnt/src" ] && [ ! -e "$mnt/build" ] || fail "the image carries /src or /build"
echo "no test or benchmark tools: checked $(cd "$mnt" && find . -xdev -type f | wc -l) files"

step "6. start hbsa-server from the image"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
flags=(--listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport")
how=""
if podman run -d --name "$container" --network host "$tag" "${flags[@]}" > "$work/run.err" 2>&1; then
  how="podman run"
  echo "started with podman run (container $container)"
else
  echo "podman run refused: $(tr '\n' ' ' < "$work/run.err")"
  podman rm -f "$container" > /dev/null 2>&1 || true
  how="chroot"
  echo "starting it by chroot into the image's root file system ($mnt) as 10001:10001"
  mount -t proc proc "$mnt/proc"
  mount --rbind /dev "$mnt/dev"
  env -i "${env[@]}" chroot --userspec=10001:10001 "$mnt" /opt/hbsa/bin/hbsa-server "${flags[@]}" \
    > "$work/server.log" 2>&1 &
  server_pid=$!
fi
server_log() {
  if [ "$how" = "podman run" ]; then podman logs "$container" 2>&1; else cat "$work/server.log"; fi
}

step "7. health (the image's HEALTHCHECK command) and a golden request"
# The HEALTHCHECK's command, with the port this test listens on, run in the image.
mapfile -t hc < <(echo "$health" | python3 -c 'import json, sys
for a in json.load(sys.stdin)["Test"][1:]: print(a)')
hc=("${hc[@]/127.0.0.1:50051/127.0.0.1:$port}")
in_image() {
  if [ "$how" = "podman run" ]; then podman exec "$container" "$@"
  else env -i "${env[@]}" chroot --userspec=10001:10001 "$mnt" "$@"; fi
}
ok=0
for _ in $(seq 1 60); do
  if in_image "${hc[@]}" > "$work/health.out" 2>&1; then ok=1; break; fi
  sleep 0.5
done
[ $ok = 1 ] || { server_log; cat "$work/health.out"; fail "the HEALTHCHECK never passed"; }
echo "HEALTHCHECK ${hc[*]}: $(cat "$work/health.out")"
"$cli" attend --target "127.0.0.1:$port" --case "$case_dir" --check | tee "$work/attend.out"
grep -q '^check PASS' "$work/attend.out" || fail "the golden case did not pass"
grep -q '^backend cpu' "$work/attend.out" || fail "the answer did not come from the CPU backend"
python3 -c 'import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
want = ["hbsa_requests_total{code=\"OK\",method=\"Attend\"} 1", "hbsa_build_info{backend=\"cpu\""]
lines = [l for l in text.splitlines() if any(l.startswith(w) for w in want)]
print("\n".join(lines))
sys.exit(0 if len(lines) == len(want) else 1)' "http://127.0.0.1:$mport/metrics" ||
  fail "/metrics does not count the request"

step "8. stop: SIGTERM drains, exit 0"
if [ "$how" = "podman run" ]; then
  podman stop -t 30 "$container" > /dev/null
  code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
else
  kill -TERM "$server_pid"
  code=0; wait "$server_pid" || code=$?
  server_pid=""
fi
server_log | tail -n 8
[ "$code" = 0 ] || fail "hbsa-server exited $code"
grep -q 'stopped' <(server_log) || fail "no 'stopped' line in the server log"
step "image_test: PASS (server started by $how; image $(( size / 1000000 )) MB)"
