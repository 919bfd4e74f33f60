#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the demo. As root: the cluster demo (a network-
# namespace lab: etcd, two floatgate nodes, a client on the VIP; the active is killed
# and the standby takes over). Otherwise: the standalone demo (two local backends,
# floatgate in front, requests balanced, one backend stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" -eq 0 ]; then
  exec .venv/bin/python deploy/lab/demo.py "$@"
fi
echo "(not root: network namespaces need root; running the standalone demo instead)"
exec .venv/bin/floatgate demo "$@"
