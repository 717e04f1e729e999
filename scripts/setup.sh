#!/usr/bin/env bash
# Installs what glassbox needs on a Debian machine, idempotently:
#   Debian packages (only those missing) and a virtualenv at .venv with glassbox.
# Usage: scripts/setup.sh [runtime|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-dev}"

need_apt=()
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || need_apt+=(python3)
[ -x .venv/bin/python ] || "$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ "$profile" = dev ]; then
  command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need_apt+=(postgresql)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip >/dev/null
if [ "$profile" = dev ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[fastapi,server,otel]'
fi
