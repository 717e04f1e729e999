#!/usr/bin/env bash
# Installs what the demo needs, then runs it (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime
exec .venv/bin/glassbox demo "$@"
