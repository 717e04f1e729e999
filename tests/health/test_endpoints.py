"""The health endpoints: format, status codes, protection, metrics, runner guarantees."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.testclient import TestClient

import glassbox
from glassbox.exceptions import ConfigurationError
from glassbox.health import CheckResult, HealthRunner, checks
from tests.metrics.helpers import parse, value


def app_with(*health: object, **options: object) -> tuple[Starlette, glassbox.Registry]:
    registry = glassbox.Registry()
    app = Starlette()
    glassbox.instrument(
        app, service="svc", version="1.2.3", registry=registry, health=health, **options
    )
    return app, registry


def test_no_checks_everything_passes_in_health_json() -> None:
    app, _ = app_with()
    client = TestClient(app)
    for path in ("/health", "/health/live", "/health/ready", "/health/ready/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/health+json"
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["status"] == "pass"
        assert body["serviceId"] == "svc"
        assert body["version"] == "1.2.3"
        assert body["time"].endswith("Z")
    assert client.post("/health").status_code == 405


def test_critical_failure_fails_readiness_but_never_liveness() -> None:
    def database() -> bool:
        return False

    async def cache() -> CheckResult:
        return CheckResult.passed(1.5, "ms")

    app, _ = app_with(database, cache)
    client = TestClient(app)
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "fail"
    assert ready.json()["checks"]["database:status"][0]["status"] == "fail"
    assert ready.json()["checks"]["cache:status"][0]["status"] == "pass"
    assert client.get("/health").status_code == 503
    live = client.get("/health/live")
    assert live.status_code == 200
    assert live.json()["status"] == "pass"


def test_non_critical_failure_degrades_to_warn_with_200() -> None:
    openai = checks.FunctionCheck(lambda: False, name="openai", critical=False)
    app, _ = app_with(openai, checks.FunctionCheck(lambda: True, name="db"))
    client = TestClient(app)
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "warn"
    entry = response.json()["checks"]["openai:status"][0]
    assert entry["status"] == "fail"
    assert entry["critical"] is False


def test_raising_or_garbage_checks_fail_with_a_short_message() -> None:
    def broken() -> bool:
        raise ConnectionRefusedError("connection refused by 10.0.0.5:5432\nmore details")

    def garbage() -> object:
        return {"ok": True}

    app, _ = app_with(broken, garbage)
    client = TestClient(app)
    response = client.get("/health")
    assert response.status_code == 503
    entries = response.json()["checks"]
    assert entries["broken:status"][0]["output"] == (
        "ConnectionRefusedError: connection refused by 10.0.0.5:5432"
    )
    assert entries["garbage:status"][0]["status"] == "fail"
    assert "TypeError" in entries["garbage:status"][0]["output"]


def test_detailed_adds_latency_values_and_process_info() -> None:
    async def cache() -> CheckResult:
        return CheckResult.passed(1.5, "ms")

    app, _ = app_with(cache)
    body = TestClient(app).get("/health/detailed").json()
    entry = body["checks"]["cache:status"][0]
    assert entry["observedValue"] == 1.5
    assert entry["observedUnit"] == "ms"
    assert entry["durationMs"] >= 0
    assert body["process"]["uptimeSeconds"] >= 0
    assert body["process"]["memoryRssBytes"] > 0
    assert "cpuPercent" in body["process"]
    plain = TestClient(app).get("/health").json()["checks"]["cache:status"][0]
    assert "observedValue" not in plain


def test_detailed_is_protected_and_anonymous_callers_see_no_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GLASSBOX_HEALTH_TOKEN", "h-token")

    def db() -> bool:
        raise RuntimeError("password authentication failed for user app at db.internal")

    app, _ = app_with(db)
    client = TestClient(app)
    denied = client.get("/health/detailed")
    assert denied.status_code == 401
    assert "db.internal" not in denied.text
    for trick in ("/health/detailed/", "/health//detailed", "/health/detailed%2F"):
        response = client.get(trick)
        assert "process" not in response.text, trick
        assert "db.internal" not in response.text, trick
    anonymous = client.get("/health")
    assert anonymous.status_code == 503
    assert "db.internal" not in anonymous.text
    allowed = client.get("/health/detailed", headers={"authorization": "Bearer h-token"})
    assert allowed.status_code == 503
    assert "db.internal" in allowed.text
    assert "process" in allowed.json()


def test_health_metrics_are_exposed() -> None:
    app, _ = app_with(
        checks.FunctionCheck(lambda: True, name="db"),
        checks.FunctionCheck(lambda: False, name="search"),
        checks.FunctionCheck(lambda: False, name="llm-api", critical=False),
    )
    client = TestClient(app)
    client.get("/health")
    samples = parse(client.get("/metrics").text)
    assert value(samples, "health_check_status", check="db", critical="true") == 1
    assert value(samples, "health_check_status", check="search", critical="true") == 0
    # a failing non-critical check is labelled so: the stack alerts on it as degraded only
    assert value(samples, "health_check_status", check="llm-api", critical="false") == 0
    assert value(samples, "health_check_duration_seconds_count", check="search") == 1
    assert (
        value(samples, "http_requests_total", method="GET", route="<unmatched>", status="503")
        is None
    )


def test_a_hanging_check_costs_at_most_its_timeout() -> None:
    release = threading.Event()
    calls: list[int] = []

    def stuck_sync() -> bool:
        calls.append(1)
        release.wait(30)
        return True

    async def stuck_async() -> bool:
        await asyncio.sleep(3600)
        return True

    app, _ = app_with(
        checks.FunctionCheck(stuck_sync, name="stuck_sync", timeout=0.3),
        checks.FunctionCheck(stuck_async, name="stuck_async", timeout=0.3),
        health_fail_ttl=0,
    )
    client = TestClient(app)
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            response = client.get("/health/ready")
            elapsed = time.perf_counter() - t0
            assert response.status_code == 503
            assert elapsed < 0.3 + 0.1
            entries = response.json()["checks"]
            assert entries["stuck_async:status"][0]["output"] == "timed out after 0.3s"
        assert len(calls) == 1  # the hung thread is not started again while it hangs
    finally:
        release.set()


def test_thousand_concurrent_probes_run_each_check_once_per_ttl() -> None:
    calls = 0

    async def dependency() -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return True

    app, _ = app_with(dependency, health_pass_ttl=30)

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = await asyncio.gather(*(client.get("/health/ready") for _ in range(1000)))
        return [r.status_code for r in responses]

    statuses = asyncio.run(main())
    assert statuses == [200] * 1000
    assert calls == 1


def test_a_run_started_late_on_a_congested_loop_gets_its_whole_deadline() -> None:
    """The probe starts waiting, then the loop is stuck past the deadline before the
    check's run even starts: the healthy dependency still passes; a hanging one still
    fails once the deadline has passed from its own start."""

    async def healthy() -> bool:
        await asyncio.sleep(0.05)
        return True

    async def hanging() -> bool:
        await asyncio.sleep(10)
        return True

    async def main(check: object) -> tuple[CheckResult, float]:
        runner = HealthRunner([check], deadline=0.2, registry=glassbox.Registry())
        waiter = asyncio.create_task(runner.run(runner.checks))
        await asyncio.sleep(0)  # the probe waits; the check's run is queued behind us
        time.sleep(0.4)  # a congested loop: nothing else runs for twice the deadline
        unstuck = time.monotonic()
        results = await waiter
        return next(iter(results.values())), time.monotonic() - unstuck

    passed, _ = asyncio.run(main(healthy))
    assert passed.status.value == "pass", passed
    failed, waited = asyncio.run(main(hanging))
    assert failed.status.value == "fail"
    assert "overall deadline of 0.2s" in failed.output
    assert 0.15 <= waited < 0.4, waited


def test_failures_are_cached_for_the_fail_ttl_only() -> None:
    calls = 0

    def flaky() -> bool:
        nonlocal calls
        calls += 1
        return calls > 1

    runner = HealthRunner([flaky], pass_ttl=60, fail_ttl=0.2, registry=glassbox.Registry())
    check = runner.checks[0]
    assert asyncio.run(runner.run([check]))["flaky"].status.value == "fail"
    assert asyncio.run(runner.run([check]))["flaky"].status.value == "fail"  # cached
    assert calls == 1
    time.sleep(0.25)  # let the fail TTL lapse (the TTL itself is under test)
    assert asyncio.run(runner.run([check]))["flaky"].status.value == "pass"
    assert asyncio.run(runner.run([check]))["flaky"].status.value == "pass"
    assert calls == 2


def test_state_changes_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    state = {"ok": True}
    runner = HealthRunner(
        [checks.FunctionCheck(lambda: state["ok"], name="db")],
        pass_ttl=0,
        fail_ttl=0,
        registry=glassbox.Registry(),
    )
    check = runner.checks[0]
    with caplog.at_level("INFO", logger="glassbox.health"):
        for ok in (True, True, False, False, False, True, True):
            state["ok"] = ok
            asyncio.run(runner.run([check]))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "health check db: pass -> fail (check returned False)",
        "health check db: fail -> pass",
    ]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: HealthRunner(["redis"], registry=glassbox.Registry()),
            "neither a glassbox Check nor a callable",
        ),
        (lambda: checks.Redis(url="redis://h:1", timeout=-1), "timeout must be"),
        (lambda: checks.Postgres(dsn="mysql://h/db"), "PostgreSQL URL must look like"),
        (checks.Redis, "exactly one"),
        (lambda: checks.Http("not a url"), "absolute http"),
        (lambda: checks.Disk(warn=0.9, fail=0.5), "warn <= fail"),
        (lambda: checks.FunctionCheck(lambda: True, name="bad name!"), "name"),
        (lambda: HealthRunner([lambda: 1], registry=glassbox.Registry()), "for a lambda"),
        (
            lambda: HealthRunner(
                [checks.FunctionCheck(bool, name="a"), checks.FunctionCheck(bool, name="a")],
                registry=glassbox.Registry(),
            ),
            "unique",
        ),
        (lambda: HealthRunner([], pass_ttl=-1, registry=glassbox.Registry()), "pass_ttl"),
    ],
)
def test_bad_configuration_fails_at_setup(make: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        make()  # type: ignore[operator]


def test_dsn_is_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        checks.Postgres(dsn="mysql://app:hunter2@db/x")
    assert "hunter2" not in str(info.value)


def test_system_checks_pass_on_this_machine() -> None:
    app, _ = app_with(checks.Disk("/", warn=0.999, fail=1.0), checks.Memory(), checks.Cpu())
    body = TestClient(app).get("/health/detailed").json()
    for key in ("disk:utilization", "memory:utilization", "cpu:utilization"):
        entry = body["checks"][key][0]
        assert entry["observedUnit"] == "%"
        assert 0 <= entry["observedValue"] <= 100


def test_flask_health_endpoints() -> None:
    app = Flask(__name__)
    glassbox.instrument(
        app,
        service="svc",
        registry=glassbox.Registry(),
        health=[checks.FunctionCheck(lambda: False, name="db")],
    )
    client = app.test_client()
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    body = ready.json
    assert body is not None
    assert body["checks"]["db:status"][0]["status"] == "fail"
    assert ready.headers["content-type"] == "application/health+json"
