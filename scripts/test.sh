#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The TLS scanner (sslyze) pins an older cryptography than floatgate: its own venv.
if [ ! -x .venv-scan/bin/sslyze ]; then
  echo "floatgate tests: installing the TLS scanner (sslyze) into .venv-scan"
  rm -rf .venv-scan
  "${PYTHON:-python3}" -m venv .venv-scan
  .venv-scan/bin/pip install -q --disable-pip-version-check "sslyze==6.3.1"
fi

echo "== ruff"
.venv/bin/ruff check node election vip tests bench deploy
.venv/bin/ruff format --check node election vip tests bench deploy
echo "== mypy"
.venv/bin/mypy
echo "== import contracts (imports only go down: docs/architecture.md)"
.venv/bin/lint-imports --no-cache
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
