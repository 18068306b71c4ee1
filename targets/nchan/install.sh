#!/usr/bin/env bash
# Installs nginx + the nchan module from Debian (packages nginx-light and
# libnginx-mod-nchan, both in Debian 12 bookworm). Idempotent: does nothing when both
# are installed; runs `apt-get update` only when one is missing. The system nginx
# service is never started: when the host has no /usr/sbin/policy-rc.d (Docker images
# usually do), a temporary one that forbids service starts is in place for the
# duration of the install and removed afterwards. Our instances are started by
# nchan.sh with their own prefix, config and pid file.
set -euo pipefail

PACKAGES=(nginx-light libnginx-mod-nchan)

die() { echo "install.sh: $*" >&2; exit 1; }

installed() {
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

if installed; then
    echo "install.sh: ${PACKAGES[*]} already installed" >&2
    exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: install ${PACKAGES[*]} (nginx with the nchan module) by other means"
[ "$(id -u)" = 0 ] || die "must run as root to install ${PACKAGES[*]}"

POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# temporary, from targets/nchan/install.sh\nexit 101\n' > "$POLICY"
    chmod +x "$POLICY"
    trap 'rm -f "$POLICY"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update || die "apt-get update failed"
apt-get install -y --no-install-recommends "${PACKAGES[@]}" \
    || die "cannot install ${PACKAGES[*]} (check 'apt-cache policy ${PACKAGES[*]}')"
installed || die "${PACKAGES[*]} still not installed after apt-get install"
echo "install.sh: installed ${PACKAGES[*]}" >&2
