#!/usr/bin/env bash
# Build the Docker base image locally, for hosts where no container registry can be reached:
#
#   scripts/docker-base-image.sh [TAG]      # default greenlens/base:bookworm
#
# debootstrap of Debian bookworm (variant minbase) with Python 3.11, venv, CA certificates and what the
# components and the optional MQTT broker need at run time (mosquitto), from the Debian mirror this
# machine's apt sources name; then `docker import`. Cached by its tag: does nothing when the tag exists.
# Pass it to the image build as `--build-arg BASE_IMAGE=greenlens/base:bookworm`. Needs root (debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-greenlens/base:bookworm}
SUITE=bookworm
# Run-time packages: python3 + venv (the image's venv and each component's venv), CA certificates,
# mosquitto (compose's `mqtt` profile), procps (pkill/ps for operators), zlib/libstdc++ for the wheels.
INCLUDE=python3,python3-venv,ca-certificates,mosquitto,procps,zlib1g,libstdc++6,tzdata

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "docker-base-image: $TAG exists; nothing to do" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "docker-base-image: $TAG is missing and debootstrap needs root (run as root)" >&2
    exit 1
fi
scripts/apt-ensure.sh debootstrap

# The Debian mirror: the first URI of a deb source for the main archive in this machine's apt sources.
mirror() {
    local uri
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -f "$file" ] || continue
        # deb822: a stanza's URIs: line; skip the security archive (it has no full suites).
        uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$file" | grep -v -- '-security' | head -n 1)
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    if [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' \
            /etc/apt/sources.list | grep -v -- '-security' | head -n 1)
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    fi
    return 1
}
if ! MIRROR=$(mirror); then
    echo "docker-base-image: no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greenlens-base.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/rootfs
echo "docker-base-image: debootstrap $SUITE (minbase) from $MIRROR" >&2
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    echo "docker-base-image: debootstrap failed; last lines of its log:" >&2
    tail -n 30 "$WORK/debootstrap.log" >&2
    [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    exit 1
fi
# Slim the image: package lists, caches, docs and man pages are not needed at run time.
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/usr/share/doc/* \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/*
# The image's apt sources name the same mirror (apt inside the image works where the mirror is reachable).
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$ROOTFS/etc/apt/sources.list"

tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "docker-base-image: $TAG built ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)" >&2
