"""Kalki end to end: the service, real PostgreSQL and Redis with their exporters,
node_exporter, the Qdrant and language-model API stand-ins, and the stack from
examples/kalki/glassbox.toml.

Proves the Kalki docs' "degraded" state done right (a failing LLM API is a warning to
Slack, the service stays ready), its latency targets, its alerts on Kalki's own metrics
(errors, LLM errors, ingestion below 100 documents a minute, slow LLM calls), the three
tiers of its escalation policy (warning to Slack; critical to email, Slack and PagerDuty;
emergency to those and Opsgenie's SMS and phone), the outage of each dependency that
runs, and that every dashboard query answers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_for
from tests.examples.harness import ExampleRun, needs_exporters, rehearse, running
from tests.examples.llm import LlmStandIn
from tests.local.conftest import needs_stack
from tests.standins.qdrant import QdrantStandIn

pytestmark = [needs_stack, needs_exporters, pytest.mark.slow]

WARNING = {"team-slack"}
CRITICAL = {"oncall-email", "team-slack", "pagerduty"}
EMERGENCY = CRITICAL | {"oncall-sms"}
QUESTION = {"question": "what is kalki monitoring"}
# above SlowQueries' 30 s threshold, below the LLM client's 60 s timeout
SLOW_LLM_SECONDS = 31.0
SLOW_WORD = "archive"


@dataclass
class Kalki:
    run: ExampleRun
    base: str
    llm: LlmStandIn
    qdrant: QdrantStandIn


@pytest.fixture
def kalki(tmp_path: Path, redis_server: Any, postgres_server: Any) -> Iterator[Kalki]:
    llm = LlmStandIn()
    qdrant = QdrantStandIn(free_port())
    qdrant.start()
    try:
        with running("kalki", tmp_path) as run:
            base = run.service(
                "kalki",
                "kalki",
                {
                    "KALKI_DATABASE_URL": postgres_server.dsn,
                    "KALKI_REDIS_URL": redis_server.url,
                    "KALKI_QDRANT_URL": qdrant.url,
                    "KALKI_LLM_URL": llm.url,
                    "KALKI_DATA_DIR": str(tmp_path),
                },
            )
            # the containers dependency is left out: cAdvisor does not run here
            config = rehearse(
                "kalki",
                services={"kalki": [base.removeprefix("http://")]},
                dependencies={
                    "db": [run.postgres_exporter(postgres_server.dsn)],
                    "cache": [run.redis_exporter(redis_server.url)],
                    "vector-db": [qdrant.url.removeprefix("http://")],  # Qdrant serves /metrics
                    "host": [run.node_exporter()],
                },
                output=tmp_path / "monitoring",
            )
            run.start_stack(config)
            yield Kalki(run, base, llm, qdrant)
    finally:
        qdrant.stop()
        llm.close()


def _firing_deliveries(run: ExampleRun, name: str, receiver: str) -> int:
    return sum(
        1
        for d in run.live.inbox.deliveries()
        if name in d.alertnames and d.status == "firing" and d.receiver == receiver
    )


def _inhibited_by(run: ExampleRun, target: str, source: str) -> bool:
    """Whether Alertmanager holds ``target`` back because ``source`` fires."""
    found = httpx.get(f"{run.live.alertmanager_url}/api/v2/alerts", timeout=5).json()
    by_name: dict[str, list[dict[str, Any]]] = {}
    for alert in found:
        by_name.setdefault(alert["labels"]["alertname"], []).append(alert)
    sources = {a["fingerprint"] for a in by_name.get(source, [])}
    return any(
        a["status"]["state"] == "suppressed" and sources & set(a["status"]["inhibitedBy"])
        for a in by_name.get(target, [])
    )


def _slow_query(base: str, after: float) -> int:
    """One query whose LLM call takes SLOW_LLM_SECONDS, sent ``after`` seconds from now."""
    threading.Event().wait(after)  # spreads the slow calls out, as traffic would
    question = {"question": f"summarise the whole {SLOW_WORD}"}
    with httpx.Client(base_url=base, timeout=SLOW_LLM_SECONDS + 20) as client:
        return client.post("/api/v1/query", json=question).status_code


def test_kalki_degraded_state_custom_alerts_escalation_and_outages(
    kalki: Kalki, redis_server: Any, postgres_server: Any
) -> None:
    run, base, llm = kalki.run, kalki.base, kalki.llm
    client = httpx.Client(base_url=base, timeout=10)
    # the guide's /health with database, vector database and external API checks
    health = client.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "pass"
    assert health.json()["version"] == "2.4.0"
    checks = {key.split(":")[0] for key in health.json()["checks"]}
    assert {"postgres", "vector-db", "llm-api", "redis", "disk", "data-dir-writable"} <= checks
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200

    doc = client.post("/api/v1/documents", json={"title": "guide", "text": "kalki monitoring"})
    assert doc.status_code == 201, doc.text
    session = client.post("/api/v1/sessions").json()["id"]
    closed = client.post("/api/v1/sessions").json()["id"]
    assert client.delete(f"/api/v1/sessions/{closed}").status_code == 204
    answer = client.post("/api/v1/query", json=QUESTION)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sources"] == ["guide"]
    assert client.get("/api/v1/documents/missing").status_code == 404  # the caller's error

    ingest = run.drive(
        base, [("POST", "/api/v1/documents", {"title": "note", "text": "notes"})], rate=5
    )
    for _ in range(3):  # queries wait on the LLM one at a time: a few callers at once
        run.drive(base, [("POST", "/api/v1/query", QUESTION)], rate=2)
    run.drive(
        base,
        [
            ("GET", f"/api/v1/documents/{doc.json()['id']}", None),
            ("POST", "/api/v1/sessions", None),
            ("GET", f"/api/v1/sessions/{session}/history", None),
        ],
        rate=6,
    )
    # LLM calls slower than 30 s, spread over 8 s, run in the background meanwhile
    llm.slow[SLOW_WORD] = SLOW_LLM_SECONDS
    pool = ThreadPoolExecutor(max_workers=16)
    slow = [pool.submit(_slow_query, base, i / 2) for i in range(16)]

    # every dashboard query answers; a few unhandled exceptions feed the exception panels
    client.put("/admin/faults", json={"route": "/api/v1/sessions", "raise_ratio": 0.1})
    try:
        wait_for(lambda: not run.empty_panels(), 120, "every dashboard panel to have data")
    except AssertionError:
        raise AssertionError("\n".join(run.empty_panels())) from None
    client.delete("/admin/faults")
    # ingesting 5 documents a second: above the 100-a-minute target, quiet
    quiet = 'ALERTS{alertname="IngestionBelowTarget"}'
    wait_for(lambda: not run.query(quiet), 30, "IngestionBelowTarget to stay quiet")

    # queries take 3 s: the p99 target (2 s) pages, the p95 target (0.5 s) warns
    client.put("/admin/faults", json={"route": "/api/v1/query", "latency": 3.0})
    run.wait_notified("ServiceLatencyP99High", CRITICAL, service="kalki", severity="critical")
    run.wait_notified("ServiceLatencyP95High", WARNING, service="kalki", severity="warning")
    client.delete("/admin/faults")
    # the LLM calls of more than 30 s: SlowQueries warns on Slack (it may have resolved
    # already, so its deliveries are checked), and Kalki logs slow_query
    wait_for(lambda: bool(run.delivered_to("SlowQueries")), 90, "SlowQueries delivered")
    assert run.delivered_to("SlowQueries") == WARNING, run.explain("SlowQueries")
    assert [f.result() for f in slow] == [200] * len(slow)
    pool.shutdown()
    lines = [json.loads(line) for line in (run.workdir / "kalki.log").read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    slow_logs = [line for line in lines if line.get("event") == "slow_query"]
    assert slow_logs, "no slow_query log line"
    assert {"level", "timestamp", "logger", "duration_ms"} <= set(slow_logs[0])

    # the LLM API fails, health and completions: Kalki is degraded, not unready; its
    # LLM alert warns on Slack, its error alert pages and mutes the generic 5xx page.
    # At the same time ingestion stops.
    ingest.stop()
    ingested = _firing_deliveries(run, "IngestionBelowTarget", "team-slack")
    llm.health_status = 503
    llm.completion_status = 503
    wait_for(lambda: client.get("/health").json()["status"] == "warn", 10, "degraded")
    assert client.get("/health/ready").status_code == 200
    assert client.post("/api/v1/query", json=QUESTION).status_code == 502
    run.wait_notified("DependencyDegraded", WARNING, check="llm-api", severity="warning")
    run.wait_notified("KalkiLlmErrorRatioHigh", WARNING, service="kalki")
    run.wait_notified("KalkiErrorRatioHigh", CRITICAL, service="kalki")
    wait_for(
        lambda: _inhibited_by(run, "ServiceHighErrorRatio", "KalkiErrorRatioHigh"),
        30,
        "ServiceHighErrorRatio muted by KalkiErrorRatioHigh",
    )
    assert run.alerts("DependencyUnhealthy", check="llm-api") == []
    run.wait_notified("IngestionBelowTarget", WARNING, service="kalki")
    wait_for(
        lambda: _firing_deliveries(run, "IngestionBelowTarget", "team-slack") > ingested,
        30,
        "a new IngestionBelowTarget notification",
    )
    llm.health_status = llm.completion_status = 200

    # every dependency that runs goes away at once; the database is an emergency
    postgres_server.stop()
    kalki.qdrant.stop()
    redis_server.stop()
    run.stop("node-exporter")
    wait_for(lambda: client.get("/health/ready").status_code == 503, 10, "readiness to fail")
    assert client.get("/health/live").status_code == 200
    run.wait_notified("PostgresDown", EMERGENCY, dependency="db")
    run.wait_notified("DependencyUnhealthy", CRITICAL, check="postgres", service="kalki")
    run.wait_notified("QdrantDown", CRITICAL, dependency="vector-db")
    run.wait_notified("DependencyUnhealthy", CRITICAL, check="vector-db", service="kalki")
    run.wait_notified("RedisDown", CRITICAL, dependency="cache")
    run.wait_notified("DependencyDegraded", WARNING, check="redis", service="kalki")
    run.wait_notified("DependencyTargetDown", CRITICAL, dependency="host")

    # Kalki itself stops: the guide's KalkiDown, an emergency
    run.stop("kalki")
    run.wait_notified("ServiceDown", EMERGENCY, service="kalki")
