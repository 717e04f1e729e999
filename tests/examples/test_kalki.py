"""Kalki end to end: the service, real PostgreSQL and Redis with their exporters,
node_exporter, a language-model API stand-in, and the stack from
examples/kalki/glassbox.toml.

Proves the Kalki docs' "degraded" state done right (a failing LLM API is a warning to
Slack, the service stays ready), its three latency targets and error alert with their
escalation (critical to email, Slack and PagerDuty; warning to Slack only), a database
outage, and that every dashboard query answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.examples.harness import ExampleRun, needs_exporters, rehearse, running
from tests.examples.llm import LlmStandIn
from tests.local.conftest import needs_stack

pytestmark = [needs_stack, needs_exporters, pytest.mark.slow]

CRITICAL = {"oncall-email", "team-slack", "pagerduty"}
WARNING = {"team-slack"}


@pytest.fixture
def kalki(
    tmp_path: Path, redis_server: Any, postgres_server: Any
) -> Iterator[tuple[ExampleRun, str, LlmStandIn]]:
    llm = LlmStandIn()
    try:
        with running("kalki", tmp_path) as run:
            base = run.service(
                "kalki",
                "kalki",
                {
                    "KALKI_DATABASE_URL": postgres_server.dsn,
                    "KALKI_REDIS_URL": redis_server.url,
                    "KALKI_LLM_URL": llm.url,
                },
            )
            config = rehearse(
                "kalki",
                services={"kalki": [base.removeprefix("http://")]},
                dependencies={
                    "db": [run.postgres_exporter(postgres_server.dsn)],
                    "cache": [run.redis_exporter(redis_server.url)],
                    "host": [run.node_exporter()],
                },
                output=tmp_path / "monitoring",
            )
            run.start_stack(config)
            yield run, base, llm
    finally:
        llm.close()


def test_kalki_degraded_state_latency_targets_and_outages(
    kalki: tuple[ExampleRun, str, LlmStandIn], postgres_server: Any
) -> None:
    run, base, llm = kalki
    client = httpx.Client(base_url=base, timeout=10)
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200

    doc = client.post("/api/v1/documents", json={"title": "guide", "text": "kalki monitoring"})
    assert doc.status_code == 201, doc.text
    session = client.post("/api/v1/sessions").json()["id"]
    answer = client.post("/api/v1/query", json={"question": "what is kalki monitoring"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["sources"] == ["guide"]
    run.drive(
        base,
        [
            ("POST", "/api/v1/query", {"question": "what is kalki monitoring"}),
            ("POST", "/api/v1/documents", {"title": "note", "text": "monitoring notes"}),
            ("GET", f"/api/v1/documents/{doc.json()['id']}", None),
            ("POST", "/api/v1/sessions", None),
            ("GET", f"/api/v1/sessions/{session}/history", None),
        ],
    )
    # every dashboard query answers; a few unhandled exceptions feed the exception panels
    client.put("/admin/faults", json={"route": "/api/v1/sessions", "raise_ratio": 0.1})
    try:
        wait_for(lambda: not run.empty_panels(), 120, "every dashboard panel to have data")
    except AssertionError:
        raise AssertionError("\n".join(run.empty_panels())) from None
    client.delete("/admin/faults")

    # the LLM API's health fails: Kalki is degraded, stays ready, and Slack hears of it
    llm.health_status = 503
    wait_for(lambda: client.get("/health").json()["status"] == "warn", 10, "degraded")
    assert client.get("/health/ready").status_code == 200
    run.wait_notified("DependencyDegraded", WARNING, check="llm-api", severity="warning")
    assert run.alerts("DependencyUnhealthy", check="llm-api") == []

    # slow queries (3 s) and failing ingestion at once
    client.put("/admin/faults", json={"route": "/api/v1/query", "latency": 3.0})
    client.put("/admin/faults", json={"route": "/api/v1/documents", "error_ratio": 1.0})
    run.wait_notified("ServiceHighErrorRatio", CRITICAL, service="kalki")
    run.wait_notified("ServiceLatencyP99High", CRITICAL, service="kalki", severity="critical")
    run.wait_notified("ServiceLatencyP95High", WARNING, service="kalki", severity="warning")
    client.delete("/admin/faults")

    # the database goes away: readiness fails and it pages everyone
    postgres_server.stop()
    wait_for(lambda: client.get("/health/ready").status_code == 503, 10, "readiness to fail")
    run.wait_notified("DependencyUnhealthy", CRITICAL, check="postgres", service="kalki")
