"""Keiko end to end: its service, real PostgreSQL and Redis with their exporters,
node_exporter, and the stack from examples/keiko/glassbox.toml.

The Keiko docs' checks and alerts, proven: the three health endpoints, every dashboard
query answering, and every alert the docs list reaching Slack: 5xx and latency, failed
agent registrations, PostgreSQL, Redis and exporter outages, the backend stopping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.examples.harness import ExampleRun, needs_exporters, rehearse, running
from tests.local.conftest import needs_stack

pytestmark = [needs_stack, needs_exporters, pytest.mark.slow]

SERVICE = "keiko-backend"
SLACK = {"slack"}


@pytest.fixture
def keiko(
    tmp_path: Path, redis_server: Any, postgres_server: Any
) -> Iterator[tuple[ExampleRun, str]]:
    with running("keiko", tmp_path) as run:
        base = run.service(
            "keiko",
            "keiko",
            {"KEIKO_DATABASE_URL": postgres_server.dsn, "KEIKO_REDIS_URL": redis_server.url},
        )
        config = rehearse(
            "keiko",
            services={SERVICE: [base.removeprefix("http://")]},
            dependencies={
                "db": [run.postgres_exporter(postgres_server.dsn)],
                "cache": [run.redis_exporter(redis_server.url)],
                "host": [run.node_exporter()],
            },
            output=tmp_path / "monitoring",
        )
        run.start_stack(config)
        yield run, base


def test_keiko_health_dashboards_and_alerts(
    keiko: tuple[ExampleRun, str], redis_server: Any, postgres_server: Any
) -> None:
    run, base = keiko
    client = httpx.Client(base_url=base, timeout=10)
    # the three endpoints of the Keiko docs
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.headers["content-type"].startswith("application/health+json")
    assert client.get("/health").json()["status"] in ("pass", "warn")

    agent = client.post("/api/agents", json={"name": "planner"})
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    traffic = run.drive(
        base,
        [
            ("POST", "/api/agents", {"name": "helper"}),
            ("POST", "/api/agents", {"name": "Not A Valid Name"}),  # refused: 422
            ("GET", "/api/agents", None),
            ("GET", f"/api/agents/{agent_id}", None),
            ("POST", f"/api/agents/{agent_id}/operations/start", None),
            ("POST", "/api/chat", {"agent_id": agent_id, "message": "hello"}),
        ],
    )

    # every dashboard query of every generated board returns data; a few unhandled
    # exceptions feed the exception panels
    client.put("/admin/faults", json={"route": "/api/agents/{agent_id}", "raise_ratio": 0.1})
    try:
        wait_for(lambda: not run.empty_panels(), 120, "every dashboard panel to have data")
    except AssertionError:
        raise AssertionError("\n".join(run.empty_panels())) from None
    assert traffic.sent > 0
    client.delete("/admin/faults")

    # 5xx on the chat route and slow registrations, at once
    faults = client.put("/admin/faults", json={"route": "/api/chat", "error_ratio": 1.0})
    assert faults.status_code == 200, faults.text
    client.put("/admin/faults", json={"route": "/api/agents", "latency": 1.5})
    run.wait_notified("ServiceHighErrorRatio", SLACK, service=SERVICE, severity="critical")
    run.wait_notified("ServiceLatencyP95High", SLACK, service=SERVICE, severity="warning")
    client.delete("/admin/faults")
    # half the registration attempts so far had a refused name: the caller's error, so
    # not a failed registration, and the custom alert has stayed quiet
    assert run.query(f'api_errors_total{{service="{SERVICE}",error_type="validation"}} > 10')
    assert not run.query('ALERTS{alertname="AgentRegistrationFailures"}')

    # Redis and PostgreSQL go away and node_exporter stops: readiness fails, liveness
    # does not, registrations fail, and each outage pages
    redis_server.kill()
    postgres_server.stop()
    run.stop("node-exporter")
    run.drive(base, [("POST", "/api/agents", {"name": "worker"})], rate=10)
    assert client.get("/health/live").status_code == 200
    wait_for(lambda: client.get("/health/ready").status_code == 503, 10, "readiness to fail")
    run.wait_notified("RedisDown", SLACK, dependency="cache", severity="critical")
    try:
        run.wait_notified("PostgresDown", SLACK, dependency="db", severity="critical")
    except AssertionError as exc:
        seen = {m: run.query(f'{m}{{dependency="db"}}') for m in ("pg_up", "up")}
        raise AssertionError(f"{exc}\nexporter series: {seen}") from None
    run.wait_notified("DependencyTargetDown", SLACK, dependency="host", severity="critical")
    run.wait_notified("DependencyUnhealthy", SLACK, service=SERVICE, check="redis")
    run.wait_notified("DependencyUnhealthy", SLACK, service=SERVICE, check="postgres")
    run.wait_notified("AgentRegistrationFailures", SLACK, service=SERVICE, severity="warning")

    # the backend itself stops
    run.stop("keiko")
    run.wait_notified("ServiceDown", SLACK, service=SERVICE, severity="critical")
