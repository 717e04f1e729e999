"""``promtool check metrics`` accepts the exposition (Debian package ``prometheus``)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from starlette.testclient import TestClient

import glassbox
from tests.metrics.test_asgi import starlette_app

PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None and not __import__("os").environ.get("CI"), reason="no promtool"
)
def test_promtool_check_metrics_passes() -> None:
    assert PROMTOOL is not None, "promtool missing: the test set-up installs Debian's prometheus"
    registry = glassbox.Registry()
    app = glassbox.instrument(starlette_app(), service="svc", registry=registry)
    jobs = registry.counter("jobs_processed", "Jobs processed.", ["queue"], namespace="svc")
    depth = registry.gauge("queue_depth", "Jobs waiting.", ["queue"], namespace="svc")
    jobs.inc(3, "email")
    depth.set(7, "email")
    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/items/1", "/users/2", "/boom", "/missing"):
        client.get(path)
    body = client.get("/metrics").text
    assert "http_request_duration_seconds_bucket" in body
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # no lint findings either
    assert result.stderr.strip() == "", result.stderr
