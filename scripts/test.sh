#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check node election vip tests bench
.venv/bin/ruff format --check node election vip tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
set +e
.venv/bin/pytest -q -p no:cacheprovider "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit "$code"
