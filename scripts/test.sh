#!/usr/bin/env bash
# Installs what the tests need, then runs the linters and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy --strict"; .venv/bin/mypy && .venv/bin/mypy tests && .venv/bin/mypy examples/*/*.py
echo "== pytest"; .venv/bin/python -m pytest "$@"
echo "== oldest supported framework releases"; bash scripts/test-oldest.sh
