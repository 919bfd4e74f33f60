#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the standalone demo: two local backends,
# floatgate in front of them, requests balanced, one backend stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/floatgate demo "$@"
