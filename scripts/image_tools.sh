#!/usr/bin/env bash
# scripts/image_tools.sh: install what the image test (tests/deploy/image_test.sh, ctest label
# `image`) needs to build the container images for real on a Debian 12 machine, from Debian's
# packages only: podman and buildah (the container engine and image builder, daemonless, run as
# root here), debootstrap (the base images are made locally from Debian's packages by
# scripts/image_base.sh; no registry is pulled), crun (the OCI runtime), the CNI plugins that
# podman's default network backend needs, and catatonit (the init of `podman run --init`).
# Idempotent and quiet when nothing is missing; run as root (or with sudo). Not part of
# scripts/bootstrap.sh: the default build and tests need none of it.
set -euo pipefail

debs=(podman buildah debootstrap crun containernetworking-plugins catatonit)

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "image_tools: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
