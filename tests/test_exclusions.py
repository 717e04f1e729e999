"""One exclusion list (health, metrics and the user's own paths) for metrics, traces and
access logs alike, on ASGI and WSGI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.test import Client

import glassbox

EXCLUDED = ("/internal/ping", "/health/live", "/metrics")


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def access_paths(out: str) -> list[str]:
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return [r["path"] for r in lines if r.get("logger") == "glassbox.access"]


async def ok(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_asgi_exclusions_apply_to_metrics_traces_and_access_logs(
    spans: tuple[TracerProvider, InMemorySpanExporter], capsys: pytest.CaptureFixture[str]
) -> None:
    provider, exporter = spans
    app = Starlette(routes=[Route("/internal/ping", ok), Route("/items", ok)])
    glassbox.instrument(
        app,
        service="svc",
        registry=glassbox.Registry(),
        tracer_provider=provider,
        exclude=["/internal/ping"],
        access_log=True,
        process_metrics=False,
    )
    client = TestClient(app)
    capsys.readouterr()
    for path in (*EXCLUDED, "/items"):
        assert client.get(path).status_code == 200
    metrics = client.get("/metrics").text
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /items"]
    assert access_paths(capsys.readouterr().out) == ["/items"]
    assert 'route="/items"' in metrics
    assert "/internal/ping" not in metrics
    assert "/health" not in metrics


def test_wsgi_exclusions_apply_to_metrics_traces_and_access_logs(
    spans: tuple[TracerProvider, InMemorySpanExporter], capsys: pytest.CaptureFixture[str]
) -> None:
    provider, exporter = spans
    app = Flask("excluded")
    app.add_url_rule("/internal/ping", "ping", lambda: "ok")
    app.add_url_rule("/items", "items", lambda: "ok")
    glassbox.instrument(
        app,
        service="svc",
        registry=glassbox.Registry(),
        tracer_provider=provider,
        exclude=["/internal/ping"],
        access_log=True,
        process_metrics=False,
    )
    client = Client(app)
    capsys.readouterr()
    for path in (*EXCLUDED, "/items"):
        assert client.open(path, buffered=True).status_code == 200
    metrics = client.open("/metrics", buffered=True).get_data(as_text=True)
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /items"]
    assert access_paths(capsys.readouterr().out) == ["/items"]
    assert 'route="/items"' in metrics
    assert "/internal/ping" not in metrics
