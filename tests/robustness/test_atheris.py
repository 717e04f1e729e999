"""atheris (coverage-guided, libFuzzer) over the config loader, the OTLP decoder and the
request-header parsers, each for a bounded time from a seed corpus.

``GLASSBOX_ATHERIS_SECONDS`` sets the time per target (10 s by default). A crash fails the
test with libFuzzer's report: the exception and the file holding the input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris has no wheel for this platform")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
_SPAN = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
         "name": "GET /items/{id}", "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000000100000000", "status": {"code": 2}}  # fmt: skip
_RESOURCE = {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]}
_LOG = {"timeUnixNano": "1700000000000000000", "severityNumber": 17,
        "body": {"stringValue": '{"event": "checkout", "level": "error"}'},
        "traceId": _SPAN["traceId"], "spanId": _SPAN["spanId"]}  # fmt: skip


def _seeds(target: str) -> list[bytes]:
    if target == "config":
        files = [*ROOT.glob("examples/*/glassbox.toml"), ROOT / "src/glassbox/stack/starter.toml"]
        return [path.read_bytes() for path in files]
    if target == "otlp":
        spans = {"resourceSpans": [{"resource": _RESOURCE, "scopeSpans": [{"spans": [_SPAN]}]}]}
        logs = {"resourceLogs": [{"resource": _RESOURCE, "scopeLogs": [{"logRecords": [_LOG]}]}]}
        return [b"\x01" + json.dumps(spans).encode(), b"\x03" + json.dumps(logs).encode()]
    return [b"application/openmetrics-text; version=1.0.0;q=0.9, text/plain;q=0.5",
            b"gzip;q=0, *", b"Bearer t0ken", b"now-6h", b"1h30m"]  # fmt: skip


@pytest.mark.parametrize("target", ["config", "otlp", "headers"])
def test_no_input_crashes_the_parser(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(_seeds(target)):
        (corpus / f"seed-{index}").write_bytes(seed)
    raw = os.environ.get("GLASSBOX_ATHERIS_SECONDS", "")
    seconds = int(raw) if raw.isdecimal() else 10
    done = subprocess.run(
        [sys.executable, "-m", "tests.robustness.atheris_targets", target,
         f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        capture_output=True, text=True, timeout=seconds + 120, check=False,
    )  # fmt: skip
    report = done.stderr + done.stdout
    assert done.returncode == 0, report[-5000:]
    runs = [line for line in report.splitlines() if line.startswith("Done ")]
    assert runs, report[-2000:]
    assert int(runs[-1].split()[1]) > 100, runs[-1]
