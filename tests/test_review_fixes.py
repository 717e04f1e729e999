"""Regressions found in review: root_path, secrets in errors, name clashes, threads."""

from __future__ import annotations

import asyncio
import threading

import pytest
from starlette.applications import Starlette

import glassbox
from glassbox._settings import load_settings
from glassbox.exceptions import ConfigurationError, DuplicateMetricError
from glassbox.health import HealthRunner, checks


def _get(app: object, path: str, root_path: str = "") -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
    }
    sent: list[dict] = []  # type: ignore[type-arg]

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_metrics_and_health_answer_under_a_root_path() -> None:
    app = Starlette()
    glassbox.instrument(app, service="svc", registry=glassbox.Registry(), logs=False)
    status, body = _get(app, "/api/metrics", root_path="/api")
    assert status == 200
    assert b"service_info" in body
    assert _get(app, "/api/health/live", root_path="/api")[0] == 200


def test_settings_errors_never_echo_secret_values(tmp_path: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(metrics_tokne="s3cr3t-value")
    assert "s3cr3t-value" not in str(info.value)
    assert "metrics_tokne" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        load_settings(metrics_token_file="tok-abc123").metrics_protection()
    assert "tok-abc123" not in str(info.value)


def test_business_metric_declared_before_instrument_cannot_shadow_red_names() -> None:
    registry = glassbox.Registry()
    registry.counter("requests", "mine", namespace="http")
    with pytest.raises(DuplicateMetricError, match="http_requests_total"):
        glassbox.instrument(Starlette(), service="svc", registry=registry, logs=False)
    other = glassbox.Registry()
    other.gauge("service_info", "mine")
    with pytest.raises(DuplicateMetricError, match="service_info"):
        glassbox.instrument(Starlette(), service="svc", registry=other, logs=False)


def test_a_hung_sync_client_ties_up_one_thread_not_one_per_probe() -> None:
    release = threading.Event()
    calls: list[int] = []

    class HangingRedis:
        def ping(self) -> bool:
            calls.append(1)
            release.wait(30)
            return True

    runner = HealthRunner(
        [checks.Redis(HangingRedis(), timeout=0.1)], fail_ttl=0, registry=glassbox.Registry()
    )
    try:
        for _ in range(10):
            result = asyncio.run(runner.run(runner.checks))["redis"]
            assert result.status.value == "fail"
        assert len(calls) == 1
    finally:
        release.set()


def test_a_lambda_over_an_async_call_is_awaited() -> None:
    async def ping() -> bool:
        return True

    runner = HealthRunner(
        [checks.FunctionCheck(lambda: ping(), name="db")],  # noqa: PLW0108 - the case under test
        registry=glassbox.Registry(),
    )
    assert asyncio.run(runner.run(runner.checks))["db"].status.value == "pass"


def test_prometheus_client_info_is_written_with_its_sample_name() -> None:
    from prometheus_client import CollectorRegistry, Info

    source = CollectorRegistry()
    Info("build", "Build information.", registry=source).info({"commit": "abc"})
    registry = glassbox.Registry()
    registry.register_collector(source)
    text = registry.render()
    assert "# TYPE build_info gauge" in text
    assert 'build_info{commit="abc"} 1.0' in text
