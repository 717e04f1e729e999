#!/usr/bin/env bash
# Runs the metrics tests (Starlette, FastAPI, Flask and Django adapters) against the
# OLDEST supported framework releases, pinned in constraints/oldest.txt; the normal
# test run (scripts/test.sh, .venv) covers the newest.
# The venv is .venv-oldest. It is (re)installed only when pyproject.toml, the
# constraints or this script changed, or an installed release differs from its pin,
# so a second run goes straight to pytest.
# Usage: scripts/test-oldest.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-oldest
CONSTRAINTS=constraints/oldest.txt
PY="${PYTHON:-python3}"
STAMP="$VENV/.glassbox-oldest-stamp"

# Exits non-zero, naming each package, if an installed release is not its pinned one.
check_versions() {
  "$VENV/bin/python" - "$CONSTRAINTS" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

bad = []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, pinned = (part.strip() for part in line.partition("=="))
    try:
        got = version(name)
    except PackageNotFoundError:
        got = "not installed"
    if got != pinned:
        bad.append(f"{name}: want {pinned}, have {got}")
if bad:
    sys.exit("test-oldest: installed versions differ from the constraints:\n  " + "\n  ".join(bad))
PY
}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sys" >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi

want="$(cat pyproject.toml "$CONSTRAINTS" "$0" | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ] || ! check_versions >/dev/null 2>&1; then
  echo "== installing glassbox[dev] with $CONSTRAINTS into $VENV"
  rm -f "$STAMP"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip >/dev/null 2>&1
  # The '==' constraints win over whatever is installed: pip replaces any installed
  # release that does not satisfy a pin (checked below). Unpinned packages that already
  # fit are kept (--upgrade-strategy only-if-needed), so re-installs stay quick.
  # pip's output is filtered of this machine's warnings about absent local index dirs.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    --upgrade-strategy only-if-needed -c "$CONSTRAINTS" -e '.[dev]' 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
fi

echo "== framework versions in $VENV"
"$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
  | grep -iE 'starlette|fastapi|flask|werkzeug|django' || true
check_versions
echo "$want" > "$STAMP"

echo "== pytest tests/metrics (oldest)"
exec "$VENV/bin/python" -m pytest tests/metrics -q -p no:cacheprovider "$@"
