#!/usr/bin/env bash
# Installs the local console's browser assets, idempotently: uPlot (the time-series chart
# library the dashboard pages draw with) from npm into .cache/console/node_modules, which
# is not committed. The console serves uplot.iife.min.js and uPlot.min.css from there; if
# they are missing it still starts and its dashboard page says how to install them.
# Needs npm (Debian: nodejs npm). Usage: scripts/console-assets.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pkg="uplot"
version="1.6.32"
prefix=".cache/console"
installed="$prefix/node_modules/$pkg/package.json"

if grep -qs "\"version\": \"$version\"" "$installed" \
    && [ -f "$prefix/node_modules/$pkg/dist/uPlot.iife.min.js" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "console-assets: npm is missing: install the Debian packages nodejs and npm" >&2
  exit 1
fi
echo "console-assets: installing $pkg@$version into $prefix"
mkdir -p "$prefix"
# a package.json of our own keeps npm from walking up to another project's
[ -f "$prefix/package.json" ] || printf '{"private": true}\n' >"$prefix/package.json"
npm install --prefix "$prefix" --no-audit --no-fund --ignore-scripts --save-exact \
  --loglevel=error "$pkg@$version" >/dev/null
grep -qs "\"version\": \"$version\"" "$installed" || {
  echo "console-assets: $pkg@$version did not install into $prefix" >&2
  exit 1
}
