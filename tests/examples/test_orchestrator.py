"""Automation Orchestrator end to end: its service on a synchronous PostgreSQL pool and a
sync Redis client, real PostgreSQL and Redis with their exporters, node_exporter, and the
stack from examples/automation-orchestrator/glassbox.toml.

Proven: the health endpoints (``/health/detailed`` behind its token, fast under load),
every dashboard query and the guide's recording rules answering, 5xx on run submissions
and slow run lookups warning Slack, slow database queries (a table lock) warning Slack,
PostgreSQL and Redis outages failing readiness and paging on ``pg_up``/``redis_up`` while
their exporters still answer, node_exporter stopping paging, and the API going down
paging; every alert with the guide's ``component`` label.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
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
SLACK = {"default"}  # warning
RECORDINGS = (  # the guide's recording-rule names
    "api:request_rate:1m",
    "api:error_rate:1m",
    "api:response_time_p50:1m",
    "api:response_time_p95:1m",
    "db:query_rate:1m",
    "db:slow_queries:1m",
)


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
        # "cadvisor" (containers) is left out: it cannot run here, so its panels and
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


@contextlib.contextmanager
def _lock_contention(dsn: str, table: str, hold: float = 1.5) -> Iterator[None]:
    """Another client keeps ``table`` locked for ``hold`` seconds at a time, so the
    service's queries on it wait: real slow queries, as lock contention makes them."""
    stop = threading.Event()

    def hold_locks() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                with conn.transaction():
                    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                    stop.wait(hold)

    thread = threading.Thread(target=hold_locks, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def test_orchestrator_health_dashboards_and_alerts(
    orchestrator: tuple[ExampleRun, str], postgres_server: Any, redis_server: Any
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

    # every dashboard query of every generated board returns data, and the guide's
    # recording rules (api:*, db:*) have series; a few unhandled exceptions feed the
    # exception panels and api:error_rate:1m
    client.put("/admin/faults", json={"route": "/api/workflows/{workflow_id}", "raise_ratio": 0.1})
    try:
        wait_for(lambda: not run.empty_panels(), 120, "every dashboard panel to have data")
    except AssertionError:
        raise AssertionError("\n".join(run.empty_panels())) from None
    wait_for(
        lambda: all(run.query(f'{name}{{service="{SERVICE}"}}') for name in RECORDINGS),
        30,
        f"every recording rule to have data: {[n for n in RECORDINGS if not run.query(n)]}",
    )
    for expr in (
        'api:request_rate:1m{route="/api/workflows/{workflow_id}/runs"} > 0',
        'api:error_rate:1m{route="/api/workflows/{workflow_id}"} > 0',  # 10 % raise there
        'db:query_rate:1m{operation="insert_run"} > 0',
    ):
        wait_for(lambda expr=expr: bool(run.query(expr)), 60, expr)  # type: ignore[misc]
    client.delete("/admin/faults")
    browse.stop()

    # At once: 10 % of run submissions fail, run lookups take 1.5 s, and another client
    # keeps webhook_events locked so storing a webhook waits. Submissions are most of an
    # orchestrator's traffic, so 10 % of them is over 5 % of all requests; three callers
    # keep the slow lookups over 5 % too.
    client.put("/admin/faults", json={"route": "/api/workflows/{workflow_id}/runs",
                                      "error_ratio": 0.1})  # fmt: skip
    client.put("/admin/faults", json={"route": "/api/runs/{run_id}", "latency": 1.5})
    run.drive(base, [("POST", f"/api/workflows/{etl}/runs", None)], rate=20)
    for _ in range(3):
        run.drive(base, [("GET", f"/api/runs/{run_id}", None)])
    with _lock_contention(postgres_server.dsn, "webhook_events"):
        webhooks = run.drive(base, [("POST", "/api/webhooks/stripe", {"type": "charge"})])

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

        # the guide's HighErrorRate and SlowResponseTime are warnings of component "api"
        for name in ("ServiceHighErrorRatio", "ServiceLatencyP95High"):
            run.wait_notified(name, SLACK, service=SERVICE, severity="warning", component="api")
        run.wait_notified("SlowDatabaseQueries", SLACK, operation="insert_event", component="api")
        assert run.query('db:slow_queries:1m{operation="insert_event"} > 0')
        assert not run.alerts("SlowDatabaseQueries", operation="insert_run")
        webhooks.stop()
    client.delete("/admin/faults")
    # the guide's slow-query log line, with the operation and its duration
    logged = [json.loads(line) for line in (run.workdir / "orchestrator.log").open()
              if line.startswith("{")]  # fmt: skip
    assert any(
        e.get("event") == "slow_query" and e["operation"] == "insert_event"
        and e["db_duration_ms"] > 1000
        for e in logged
    )  # fmt: skip

    # At once: PostgreSQL and Redis stop (their exporters keep answering) and
    # node_exporter stops. Readiness fails, liveness does not; anonymous callers see
    # that a check failed but not why.
    postgres_server.stop()
    redis_server.stop()
    run.stop("node-exporter")
    assert client.get("/health/live").status_code == 200
    wait_for(lambda: client.get("/health/ready").status_code == 503, 10, "readiness to fail")
    anonymous = _check(client.get("/health").json(), "postgres")
    assert anonymous["status"] == "fail"
    assert "output" not in anonymous
    detailed = client.get("/health/detailed", headers=bearer).json()
    assert _check(detailed, "postgres")["output"]

    # pg_up and redis_up page; the guide's DatabaseDown and RedisDown (up of the
    # exporter job) would stay quiet: the exporters still answer
    run.wait_notified("PostgresDown", PAGE, dependency="postgres", component="database")
    run.wait_notified("RedisDown", PAGE, dependency="redis", component="redis")
    assert run.query('up{dependency="postgres"} == 1')
    assert run.query('up{dependency="redis"} == 1')
    assert not run.alerts("DependencyTargetDown", dependency="postgres")
    assert not run.alerts("DependencyTargetDown", dependency="redis")
    for check in ("postgres", "redis"):
        run.wait_notified("DependencyUnhealthy", PAGE, service=SERVICE, check=check)
    # the guide's NodeDown: the exporter cannot be scraped
    run.wait_notified("DependencyTargetDown", PAGE, dependency="node", component="system")

    # the API stops: the guide's APIDown
    run.stop("orchestrator")
    run.wait_notified("ServiceDown", PAGE, service=SERVICE, component="api")
