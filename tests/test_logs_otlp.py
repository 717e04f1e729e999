"""Logs over OTLP: with an OTLP endpoint set, every line also reaches the collector.

The collector is glassbox's own (``otlp_routes`` over a ``TelemetryStore`` on a real
uvicorn server); the lines must arrive with the caller's trace id, their fields as
attributes, and no secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from glassbox import logs
from glassbox.console.store import LogRecord
from tests.conftest import free_port, port_open, start_log_app, stop_process, wait_for
from tests.console.test_otlp import Collector

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
FAILING_TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    with Collector(tmp_path / "telemetry.db") as c:
        yield c


def _all(collector: Collector) -> list[LogRecord]:
    return collector.store.search_logs(limit=100_000)


@pytest.mark.slow
def test_uvicorn_service_exports_its_lines_with_trace_ids_and_no_secret(
    collector: Collector,
) -> None:
    port = free_port()
    proc = start_log_app(
        port,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_BLRP_SCHEDULE_DELAY="100",  # ms: the batch goes out soon after a line
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    try:
        wait_for(lambda: port_open(port), 30, "uvicorn to listen")
        base = f"http://127.0.0.1:{port}"
        ok = httpx.get(
            f"{base}/login",
            params={"user": "eve\nforged"},
            headers={
                "traceparent": TRACEPARENT,
                "authorization": "Bearer sk-planted-secret",
                "cookie": "session=planted-cookie",
                "x-request-id": "req-123",
            },
        )
        assert ok.status_code == 200
        boom = httpx.get(
            f"{base}/boom", headers={"traceparent": f"00-{FAILING_TRACE}-b7ad6b7169203331-01"}
        )
        assert boom.status_code == 500

        def arrived() -> bool:
            records = _all(collector)
            access = [r for r in records if r.logger == "glassbox.access"]
            errors = [r for r in records if r.level == "error" and r.logger != "glassbox.access"]
            return (
                any(r.message == "login attempt" for r in records)
                and any(r.logger == "shop.stdlib" for r in records)
                and len(access) == 2
                and bool(errors)
            )

        wait_for(arrived, 30, "the service's log lines at the collector")
    finally:
        stop_process(proc)
    out = proc.stdout.read().decode() if proc.stdout else ""
    printed = [json.loads(line) for line in out.splitlines() if line.strip()]  # still all JSON
    assert "planted" not in out

    records = _all(collector)
    assert all(r.service == "shop" for r in records)
    assert collector.store.search_logs(text="planted") == []
    assert not any("planted" in repr(r) for r in records)

    login = next(r for r in records if r.message == "login attempt")
    assert login.trace_id == TRACE
    assert login.span_id is not None
    assert login.level == "info"
    assert login.logger == "shop"
    assert login.attributes["password"] == "[REDACTED]"
    assert login.attributes["api_key"] == "[REDACTED]"
    assert login.attributes["user"] == "eve\nforged"  # a field, not a second line
    assert login.attributes["request_id"] == "req-123"
    assert "timestamp" not in login.attributes
    assert "service" not in login.attributes  # the resource says it

    stdlib = next(r for r in records if r.logger == "shop.stdlib")
    assert (stdlib.trace_id, stdlib.level) == (TRACE, "warning")
    assert stdlib.message == "stdlib says hello to eve\nforged"

    access = next(r for r in records if r.logger == "glassbox.access" and r.trace_id == TRACE)
    assert access.message == "request"
    assert access.attributes["route"] == "/login"
    assert access.attributes["status"] == 200
    assert access.attributes["request_id"] == "req-123"

    errors = [r for r in records if r.level == "error" and r.logger != "glassbox.access"]
    assert all(r.trace_id == FAILING_TRACE for r in errors)
    assert any("database exploded" in json.dumps(r.attributes) for r in errors)

    # the JSON lines on stdout and the exported records are the same lines
    printed_login = next(p for p in printed if p.get("event") == "login attempt")
    assert printed_login["span_id"] == login.span_id
    # the service's spans came to the same collector: the trace links to its logs
    assert any(s.name == "GET /login" for s in collector.store.trace(TRACE))
    linked = collector.store.search_logs(trace_id=TRACE)
    assert {r.message for r in linked} >= {"login attempt", "request"}


@pytest.fixture
def exporting(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """configure_logging in this process with OTEL_EXPORTER_OTLP_ENDPOINT set; undone after."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    logs.configure_logging(service="shop", version="1.2.3", env="test", level="DEBUG", fmt="json")
    created = logs._otlp[0]
    assert created is not None
    assert created[2], "glassbox made the provider (none was installed globally)"
    yield collector
    state = logs._otlp[0]
    logs._otlp[0] = None
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    logs.configure_logging(service="shop", version="1.2.3", env="test", fmt="json")
    assert state is not None
    state[1].provider.shutdown()


def _flush() -> None:
    state = logs._otlp[0]
    assert state is not None
    assert state[1].provider.force_flush(10_000)


def test_in_process_lines_fields_and_no_feedback_loop(exporting: Collector) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    log = logs.get_logger("orders")
    with tracer.start_as_current_span("place") as span:
        log.warning(
            "order placed",
            order=42,
            total=9.5,
            paid=True,
            items=["a", "b"],
            headers={"authorization": "Bearer planted", "accept": "*/*"},
            session_token="planted",
        )
    ctx = span.get_span_context()
    logging.getLogger("shop.db").debug("query took %d ms", 7)
    try:
        raise KeyError("gone")
    except KeyError:
        log.exception("lookup failed")
    logs.AccessLog().write(
        method="GET",
        route="/r",
        path="/r",
        status=503,
        duration=0.002,
        trace_id=TRACE,
        span_id="00f067aa0ba902b7",
        request_id="r-1",
    )
    structlog.get_logger().info("no logger name")
    _flush()
    _flush()  # anything the first export logged would now be here too

    records = {r.message: r for r in _all(exporting)}
    placed = records["order placed"]
    assert placed.level == "warning"
    assert placed.logger == "orders"
    assert placed.trace_id == f"{ctx.trace_id:032x}"
    assert placed.span_id == f"{ctx.span_id:016x}"
    assert placed.attributes["order"] == 42
    assert placed.attributes["total"] == 9.5
    assert placed.attributes["paid"] is True
    assert json.loads(placed.attributes["items"]) == ["a", "b"]
    assert json.loads(placed.attributes["headers"]) == {
        "authorization": "[REDACTED]",
        "accept": "*/*",
    }
    assert placed.attributes["session_token"] == "[REDACTED]"
    assert "planted" not in repr(_all(exporting))

    query = records["query took 7 ms"]
    assert (query.level, query.logger, query.trace_id) == ("debug", "shop.db", None)
    failed = records["lookup failed"]
    assert failed.level == "error"
    assert "KeyError" in failed.attributes["exception.stacktrace"]
    access = records["request"]
    assert (access.level, access.logger, access.trace_id) == ("error", "glassbox.access", TRACE)
    assert access.span_id == "00f067aa0ba902b7"  # the ids the middleware gave, no span active
    assert access.attributes["status"] == 503
    assert records["no logger name"].logger == "root"
    # nothing from the exporter's own machinery (its HTTP client logs at DEBUG)
    assert {r.logger for r in _all(exporting)} == {"orders", "shop.db", "glassbox.access", "root"}
    assert len(_all(exporting)) == 5


def test_no_endpoint_no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", raising=False)
    assert logs._otlp_export("s", "v", "e") is None
