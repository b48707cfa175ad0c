#!/usr/bin/env bash
# Install the Debian packages given as arguments when any of them is missing.
# Idempotent: does nothing (and needs no network) when all are installed.
set -euo pipefail
missing=()
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "apt-ensure: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
fi
echo "apt-ensure: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
