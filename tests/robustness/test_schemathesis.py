"""schemathesis against glassbox's own OpenAPI documents, on real servers.

The service's health endpoints and ``/metrics`` (``glassbox.openapi.service_document``) are
fuzzed under uvicorn (Starlette) and gunicorn (Flask), protected and open, passing,
degraded and failing, at the default and at moved paths; the console's API
(``/api/openapi.json``) under ``glassbox up`` with real Prometheus and Alertmanager.
Every run uses all of schemathesis' checks: no 5xx but a documented 503, status codes,
content types, headers and bodies as documented, protection that cannot be skipped,
405 with ``Allow`` for other methods, malformed input refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from glassbox.openapi import service_document
from tests.conftest import free_port, port_open, stop_process, wait_for
from tests.robustness.conftest import PlantedStack, console_json
from tests.robustness.schemathesis_run import run_schemathesis

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "fuzz-metrics-3e1d"
HEALTH_TOKEN = "fuzz-health-8a27"
BASIC = ("scraper", "fuzz-basic-55c0")


@dataclass(frozen=True)
class Service:
    """One configuration of the fuzzed service."""

    id: str
    server: str  # "uvicorn" (Starlette) or "gunicorn" (Flask)
    env: dict[str, str]
    checks: str

    def settings(self) -> dict[str, Any]:
        return {k.removeprefix("GLASSBOX_").lower(): v for k, v in self.env.items()}


SERVICES = [
    Service("starlette-protected-degraded", "uvicorn",
            {"GLASSBOX_METRICS_TOKEN": METRICS_TOKEN, "GLASSBOX_HEALTH_TOKEN": HEALTH_TOKEN},
            "pass,warn"),
    Service("starlette-open-failing-moved", "uvicorn",
            {"GLASSBOX_HEALTH_PREFIX": "/ops/health", "GLASSBOX_METRICS_PATH": "/ops/metrics"},
            "pass,fail"),
    Service("flask-basic-auth", "gunicorn",
            {"GLASSBOX_METRICS_BASIC_AUTH": ":".join(BASIC),
             "GLASSBOX_HEALTH_TOKEN": HEALTH_TOKEN},
            "pass,warn"),
]  # fmt: skip


def _serve(service: Service, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    if service.server == "uvicorn":
        app = "tests.robustness.openapi_app:starlette_app"
        command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning"]  # fmt: skip
    else:
        command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                   "--workers", "1", "tests.robustness.openapi_app:flask_app"]  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "GLASSBOX_LOG_LEVEL": "warning",
        "OPENAPI_APP_CHECKS": service.checks,
        **service.env,
    }
    log = (directory / "server.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    log.close()
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(params=SERVICES, ids=lambda s: s.id)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Service, str]]:
    service: Service = request.param
    proc, url = _serve(service, tmp_path)
    try:
        port = int(url.rsplit(":", 1)[1])
        wait_for(lambda: port_open(port) or proc.poll() is not None, 30, "the service to listen")
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        yield service, url
    finally:
        stop_process(proc)


def _write(document: dict[str, object], directory: Path) -> str:
    path = directory / "openapi.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def test_the_service_endpoints_keep_to_their_document(
    served: tuple[Service, str], tmp_path: Path
) -> None:
    service, url = served
    document = service_document(service="fuzzed", version="1.2.3", **service.settings())
    bearer = {}
    basic = {}
    schemes = document["components"].get("securitySchemes", {})
    if "metricsToken" in schemes:
        bearer["metricsToken"] = METRICS_TOKEN
    if "metricsBasic" in schemes:
        basic["metricsBasic"] = BASIC
    if "healthToken" in schemes:
        bearer["healthToken"] = HEALTH_TOKEN
    run = run_schemathesis(
        _write(document, tmp_path), base_url=url, directory=tmp_path, bearer=bearer, basic=basic,
        documented_5xx={"health": 503} if "fail" in service.checks else None,
    )  # fmt: skip
    run.check(operations=10)


def test_a_protection_the_service_lacks_fails_the_run(tmp_path: Path) -> None:
    """The runs above can fail: a document naming a health token the service does not
    check is caught (schemathesis' ignored-auth check)."""
    service = Service("open", "uvicorn", {}, "pass")
    proc, url = _serve(service, tmp_path)
    try:
        wait_for(lambda: port_open(int(url.rsplit(":", 1)[1])), 30, "the service to listen")
        document = service_document(service="fuzzed", health_token=HEALTH_TOKEN)
        run = run_schemathesis(
            _write(document, tmp_path), base_url=url, directory=tmp_path,
            bearer={"healthToken": HEALTH_TOKEN}, default_examples=5,
        )  # fmt: skip
    finally:
        stop_process(proc)
    assert run.returncode != 0, run.output[-3000:]
    assert "API accepts requests without authentication" in run.output, run.failures
    assert all("/health/detailed" in str(f) for f in run.report["failures"]), run.failures


def _real_identifiers(stack: PlantedStack) -> dict[str, dict[str, str]]:
    """A dashboard with a query variable and a panel, and a stored trace."""
    found: dict[str, dict[str, str]] = {}
    listing = console_json(stack, "/api/dashboards")
    assert isinstance(listing, dict)
    for entry in listing["dashboards"]:
        board = console_json(stack, f"/api/dashboards/{entry['uid']}")
        assert isinstance(board, dict)
        panels = [p for row in board["rows"] for p in row["panels"] if p.get("targets")]
        variables = [v for v in board["variables"] if v["type"] == "query"]
        if panels and variables:
            found["/api/dashboards/{uid}/panels/{panel}"] = {
                "uid": board["uid"],
                "panel": str(panels[0]["id"]),
            }
            found["/api/dashboards/{uid}/variables/{name}"] = {
                "uid": board["uid"], "name": variables[0]["name"]}  # fmt: skip
            break
    assert len(found) == 2, "no dashboard with a query variable and a panel"
    httpx.get(f"{stack.app_url}/checkout", timeout=10)

    def trace_id() -> str | None:
        traces = console_json(stack, "/api/traces?service=planted")
        assert isinstance(traces, dict)
        return traces["traces"][0]["trace_id"] if traces["traces"] else None

    wait_for(lambda: trace_id() is not None, 30, "a trace of the planted service")
    found["/api/traces/{trace_id}"] = {"trace_id": str(trace_id())}
    return found


def test_the_console_api_keeps_to_its_document(planted: PlantedStack, tmp_path: Path) -> None:
    run = run_schemathesis(
        f"{planted.console}/api/openapi.json", base_url=planted.console, directory=tmp_path,
        path_values=_real_identifiers(planted), default_examples=20,
    )  # fmt: skip
    run.check(operations=12)
