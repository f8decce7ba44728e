#!/usr/bin/env bash
# scripts/image_base.sh: make the Debian 12 base images that deploy/docker/Dockerfile.cpu builds
# FROM, locally from Debian's packages with debootstrap (no registry is pulled), and load them
# into podman's image storage (the one CONTAINERS_STORAGE_CONF names, else the default):
#   NAME:12       `debootstrap --variant=minbase bookworm` (apt, dpkg, bash, coreutils: what
#                 Debian's own debian:12 image holds), apt sources for bookworm, bookworm-updates
#                 and bookworm-security, no package lists or downloaded .debs, PATH set
#   NAME:12-slim  the same without documentation, man pages, info pages and translations, with
#                 dpkg told to keep them out of later installs (as Debian's -slim images are)
# Build with them:  podman build --build-arg DEBIAN_IMAGE=NAME -f deploy/docker/Dockerfile.cpu .
#
#   scripts/image_base.sh [--name NAME] [--mirror URL] [--security URL] [--cache DIR]
#     --name      image name without tag (default localhost/hbsa-base/debian)
#     --mirror    Debian mirror (default http://deb.debian.org/debian)
#     --security  Debian security mirror (default http://deb.debian.org/debian-security)
#     --cache     folder for the root file system tarballs (default: a temporary one, removed);
#                 a tarball already there is reused, so a second run skips debootstrap
# Needs root, debootstrap and podman (scripts/image_tools.sh installs them).
set -euo pipefail
name=localhost/hbsa-base/debian
mirror=http://deb.debian.org/debian
security=http://deb.debian.org/debian-security
cache=""
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="${2:?--name needs a value}"; shift 2 ;;
    --mirror) mirror="${2:?--mirror needs a value}"; shift 2 ;;
    --security) security="${2:?--security needs a value}"; shift 2 ;;
    --cache) cache="${2:?--cache needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image_base.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "image_base.sh: debootstrap needs root" >&2; exit 2; }

work=$(mktemp -d /tmp/hbsa-image-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -n "$cache" ] || cache="$work/cache"
mkdir -p "$cache"
full="$cache/debian-12-minbase.tar"
slim="$cache/debian-12-slim.tar"

if [ ! -s "$full" ] || [ ! -s "$slim" ]; then
  root="$work/rootfs"
  echo "image_base: debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  rm -f "$root/etc/apt/sources.list"
  cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log \
         "$root"/tmp/* "$root"/root/.bash_history
  : > "$root/etc/hostname"
  tar -C "$root" --numeric-owner --xattrs -cf "$full" .

  # The slim variant: documentation, manuals and translations out, and kept out (copyright
  # files stay, as Debian's license terms ask).
  cat > "$root/etc/dpkg/dpkg.cfg.d/hbsa-slim" <<'EOF'
# Keep documentation, manuals and translations out of this image (scripts/image_base.sh).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* \
         "$root"/usr/share/lintian/* "$root"/usr/share/linda/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  tar -C "$root" --numeric-owner --xattrs -cf "$slim" .
else
  echo "image_base: reusing $full and $slim"
fi

changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
         --change 'CMD ["bash"]')
for pair in "12:$full" "12-slim:$slim"; do
  tag=${pair%%:*} tarball=${pair#*:}
  podman import -q "${changes[@]}" "$tarball" "$name:$tag" > /dev/null
  echo "image_base: $name:$tag ($(podman image inspect --format '{{.Size}}' "$name:$tag") bytes)"
done
