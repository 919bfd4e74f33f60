#!/usr/bin/env bash
# Install everything floatgate needs on a fresh Debian 12 machine: system packages
# (when run as root), a virtualenv in .venv, and floatgate itself with its test tools.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-dev curl openssl iproute2 ca-certificates etcd-server etcd-client
              prometheus chromium systemd nftables strace iptables
              nghttp2-client pebble)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "floatgate setup: please install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "floatgate setup: installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "floatgate setup: creating virtualenv .venv"
  "$PYTHON" -m venv .venv
fi
echo "floatgate setup: installing floatgate and its dependencies into .venv"
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
