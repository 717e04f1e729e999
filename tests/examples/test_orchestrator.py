"""Automation Orchestrator end to end: its service on a synchronous PostgreSQL pool and a
sync Redis client, real PostgreSQL and Redis with their exporters, node_exporter, and the
stack from examples/automation-orchestrator/glassbox.toml.

Proven: the health endpoints (``/health/detailed`` behind its token, fast under load),
every dashboard query answering, 5xx on run submissions paging PagerDuty and email, slow
run lookups warning Slack, a PostgreSQL outage failing readiness and paging, and the API
going down paging.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.examples.harness import ExampleRun, needs_exporters, rehearse, running
from tests.local.conftest import needs_stack

pytestmark = [needs_stack, needs_exporters, pytest.mark.slow]

EXAMPLE = "automation-orchestrator"
SERVICE = "automation-orchestrator"
TOKEN = "health-token-for-the-test"
PASSWORD = "a-password-for-the-test"
PAGE = {"pagerduty", "email"}  # critical: the config's route


@pytest.fixture
def orchestrator(
    tmp_path: Path, redis_server: Any, postgres_server: Any
) -> Iterator[tuple[ExampleRun, str]]:
    with running(EXAMPLE, tmp_path) as run:
        base = run.service(
            "orchestrator",
            "orchestrator",
            {
                "ORCH_DATABASE_URL": postgres_server.dsn,
                "ORCH_REDIS_URL": redis_server.url,
                "ORCH_DEMO_PASSWORD": PASSWORD,
                "GLASSBOX_HEALTH_TOKEN": TOKEN,
            },
        )
        # "containers" (cAdvisor) is left out: it cannot run here, so its panels and
        # alerts are not generated for this run
        config = rehearse(
            EXAMPLE,
            services={SERVICE: [base.removeprefix("http://")]},
            dependencies={
                "postgres": [run.postgres_exporter(postgres_server.dsn)],
                "redis": [run.redis_exporter(redis_server.url)],
                "node": [run.node_exporter()],
            },
            output=tmp_path / "monitoring",
        )
        run.start_stack(config)
        yield run, base


def _check(body: dict[str, Any], name: str) -> dict[str, Any]:
    entry: dict[str, Any] = body["checks"][f"{name}:responseTime"][0]
    return entry


def test_orchestrator_health_dashboards_and_alerts(
    orchestrator: tuple[ExampleRun, str], postgres_server: Any
) -> None:
    run, base = orchestrator
    client = httpx.Client(base_url=base, timeout=10)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.headers["content-type"].startswith("application/health+json")
    assert client.get("/health").json()["status"] in ("pass", "warn")
    assert client.get("/health/detailed").status_code == 401  # the guide's is open to all

    login = client.post("/auth/login", json={"username": "operator", "password": PASSWORD})
    assert login.status_code == 200, login.text
    etl = client.post(
        "/api/workflows",
        json={"name": "nightly", "workflow_type": "etl", "steps": ["extract", "load"]},
    ).json()["id"]
    broken = client.post(
        "/api/workflows",
        json={"name": "weekly", "workflow_type": "report", "steps": ["render", "fax"]},
    ).json()["id"]
    started = client.post(f"/api/workflows/{etl}/runs")
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    assert client.post(f"/api/workflows/{broken}/runs").json()["status"] == "failed"

    browse = run.drive(
        base,
        [
            ("POST", "/api/workflows", {"name": "n", "workflow_type": "notify", "steps": ["send"]}),
            ("GET", f"/api/workflows/{etl}", None),
            ("POST", f"/api/workflows/{etl}/runs", None),
            ("POST", f"/api/workflows/{broken}/runs", None),  # a failed run
            ("GET", f"/api/runs/{run_id}", None),
            ("POST", "/api/webhooks/github", {"id": "delivery-1", "action": "push"}),
            ("POST", "/api/webhooks/gitlab", {"id": "delivery-2"}),  # unknown source: 404
        ],
    )
    run.drive(
        base,
        [
            ("POST", "/auth/login", {"username": "operator", "password": PASSWORD}),
            ("POST", "/auth/login", {"username": "operator", "password": "wrong"}),
            ("POST", "/auth/login", {"username": "nobody", "password": "x"}),
            ("POST", "/auth/login", {"username": "former", "password": PASSWORD}),
        ],
        rate=2,  # scrypt costs CPU on purpose
    )

    # every dashboard query of every generated board returns data; a few unhandled
    # exceptions feed the exception panels
    client.put("/admin/faults", json={"route": "/api/workflows/{workflow_id}", "raise_ratio": 0.1})
    try:
        wait_for(lambda: not run.empty_panels(), 120, "every dashboard panel to have data")
    except AssertionError:
        raise AssertionError("\n".join(run.empty_panels())) from None
    client.delete("/admin/faults")
    browse.stop()

    # 10 % of run submissions fail and run lookups take 1.5 s, at once. Submissions are
    # most of an orchestrator's traffic, so 10 % of them is over 5 % of all requests;
    # three callers keep the slow lookups over 5 % too.
    client.put("/admin/faults", json={"route": "/api/workflows/{workflow_id}/runs",
                                      "error_ratio": 0.1})  # fmt: skip
    client.put("/admin/faults", json={"route": "/api/runs/{run_id}", "latency": 1.5})
    run.drive(base, [("POST", f"/api/workflows/{etl}/runs", None)], rate=20)
    for _ in range(3):
        run.drive(base, [("GET", f"/api/runs/{run_id}", None)])

    # under that load /health/detailed answers within the probe deadline (the guide's
    # cpu_percent(interval=1) alone takes a second); with the token it has latency,
    # uptime, memory and CPU
    for _ in range(5):
        start = time.perf_counter()
        detailed = client.get("/health/detailed", headers=bearer)
        assert time.perf_counter() - start < 0.8
        assert detailed.status_code == 200, detailed.text
    body = detailed.json()
    postgres = _check(body, "postgres")
    assert postgres["status"] == "pass"
    assert postgres["durationMs"] >= 0
    assert _check(body, "redis")["observedUnit"] == "ms"
    assert {"uptimeSeconds", "memoryRssBytes", "cpuPercent"} <= set(body["process"])

    run.wait_notified("ServiceHighErrorRatio", PAGE, service=SERVICE, severity="critical")
    run.wait_notified("ServiceLatencyP95High", {"default"}, service=SERVICE, severity="warning")
    client.delete("/admin/faults")

    # PostgreSQL stops: readiness fails, liveness does not; anonymous callers see that
    # the check failed but not why; the outage pages
    postgres_server.stop()
    assert client.get("/health/live").status_code == 200
    wait_for(lambda: client.get("/health/ready").status_code == 503, 10, "readiness to fail")
    anonymous = _check(client.get("/health").json(), "postgres")
    assert anonymous["status"] == "fail"
    assert "output" not in anonymous
    detailed = client.get("/health/detailed", headers=bearer).json()
    assert _check(detailed, "postgres")["output"]
    run.wait_notified("DependencyUnhealthy", PAGE, service=SERVICE, check="postgres")

    # the API stops
    run.stop("orchestrator")
    run.wait_notified("ServiceDown", PAGE, service=SERVICE)
