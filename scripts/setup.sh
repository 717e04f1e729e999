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
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)  # the demo's dependency
if [ "$profile" = dev ]; then
  command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need_apt+=(postgresql)
  # real exporters and a real scale-out store for the end-to-end tests
  for pkg in prometheus-redis-exporter prometheus-node-exporter prometheus-postgres-exporter \
      victoria-metrics; do
    command -v "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
  done
  # the console's browser tests drive Debian's Chromium (no browser download)
  [ -x /usr/bin/chromium ] || need_apt+=(chromium fonts-dejavu-core)
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
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[fastapi,server,otel,stack,redis]'
fi

# The Prometheus Operator's CRD schema that 'kubernetes/' manifests are checked against
# (glassbox.stack.schemas): validators generated from the operator's API types, from npm,
# into .cache/schemas (not committed). Needs Node.js; without it the check says the schema
# is unavailable.
if [ "$profile" = dev ]; then
  po_pkg="@kubernetes-models/prometheus-operator"
  po_version="6.0.0"
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing Debian packages: nodejs npm"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if ! grep -qs "\"version\": \"$po_version\"" ".cache/schemas/node_modules/$po_pkg/package.json"; then
    echo "setup: installing $po_pkg@$po_version into .cache/schemas"
    mkdir -p .cache/schemas
    npm install --prefix .cache/schemas --no-audit --no-fund --ignore-scripts --loglevel=error \
      "$po_pkg@$po_version" >/dev/null
  fi
fi

# The console's chart library (uPlot, from npm, into .cache/console; not committed).
if command -v npm >/dev/null 2>&1; then
  bash scripts/console-assets.sh
else
  echo "setup: npm not found: the console shows values but no charts (install npm, rerun)"
fi
