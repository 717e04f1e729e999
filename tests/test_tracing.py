"""Tracing: one server span per request, exported over real OTLP/HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import glassbox
from glassbox.tracing import parse_traceparent
from tests.otlp import OTLPReceiver, attributes

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    r = OTLPReceiver()
    yield r
    r.close()


@pytest.fixture
def provider(receiver: OTLPReceiver) -> Iterator[TracerProvider]:
    p = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    p.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces"))
    )
    yield p
    p.shutdown()


async def item(request: object) -> PlainTextResponse:
    logging.getLogger("app").info("inside the handler")
    return PlainTextResponse("ok")


async def boom(request: object) -> PlainTextResponse:
    raise ValueError("no such thing")


def make_app(provider: TracerProvider, routes: list[Route] | None = None) -> Starlette:
    app = Starlette(routes=routes or [Route("/items/{item_id}", item), Route("/boom", boom)])
    glassbox.instrument(
        app,
        service="svc",
        registry=glassbox.Registry(),
        tracer_provider=provider,
        process_metrics=False,
    )
    return app


def test_one_server_span_per_request_continues_traceparent(
    receiver: OTLPReceiver, provider: TracerProvider
) -> None:
    client = TestClient(make_app(provider))
    response = client.get("/items/42", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    trace_id, span_id, flags = parse_traceparent(response.headers["traceresponse"])  # type: ignore[misc]
    assert f"{trace_id:032x}" == CALLER_TRACE
    assert flags == 1
    client.get("/health/ready")  # excluded: no span
    client.get("/metrics")  # excluded: no span
    provider.force_flush()
    assert len(receiver.spans) == 1  # one span, no per-message send/receive spans
    span = receiver.spans[0]
    assert span.name == "GET /items/{item_id}"
    assert span.trace_id.hex() == CALLER_TRACE
    assert span.parent_span_id.hex() == CALLER_SPAN
    assert span.span_id.hex() == f"{span_id:016x}"
    assert span.kind == span.SPAN_KIND_SERVER
    attrs = attributes(span)
    assert attrs["http.route"] == "/items/{item_id}"
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/items/42"


def test_exceptions_are_recorded_on_the_span(
    receiver: OTLPReceiver, provider: TracerProvider
) -> None:
    client = TestClient(make_app(provider), raise_server_exceptions=False)
    assert client.get("/boom").status_code == 500
    provider.force_flush()
    (span,) = receiver.spans
    assert span.name == "GET /boom"
    assert span.status.code == span.status.STATUS_CODE_ERROR
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    assert {kv.key: kv.value.string_value for kv in events[0].attributes}[
        "exception.type"
    ] == "ValueError"


def test_malformed_traceparent_starts_a_new_trace(provider: TracerProvider) -> None:
    client = TestClient(make_app(provider))
    for bad in ("00-zzzz-1-01", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", "garbage"):
        response = client.get("/items/1", headers={"traceparent": bad})
        assert response.status_code == 200
        assert CALLER_TRACE not in response.headers["traceresponse"]


def test_outgoing_httpx_calls_join_the_trace(
    receiver: OTLPReceiver, provider: TracerProvider
) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    async def downstream(request: object) -> PlainTextResponse:
        return PlainTextResponse("down")

    down_app = Starlette(routes=[Route("/down", downstream)])

    async def calls_out(request: object) -> PlainTextResponse:
        transport = httpx.ASGITransport(app=down_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://down") as client:
            HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
            await client.get("/down")
        return PlainTextResponse("ok")

    app = make_app(provider, [Route("/out", calls_out)])
    TestClient(app).get("/out", headers={"traceparent": TRACEPARENT})
    provider.force_flush()
    by_kind = {s.kind: s for s in receiver.spans}
    server, client_span = by_kind[2], by_kind[3]  # SERVER, CLIENT
    assert client_span.trace_id.hex() == CALLER_TRACE
    assert client_span.parent_span_id == server.span_id


def test_head_sampling_drops_new_traces_but_follows_a_sampled_parent(
    receiver: OTLPReceiver, provider: TracerProvider
) -> None:
    from glassbox.tracing import ServerSpans

    spans = ServerSpans(provider, ratio=0.0)
    scope = {"path": "/x", "scheme": "http", "http_version": "1.1", "server": ("h", 80)}
    for traceparent in (None, "00-" + CALLER_TRACE + "-" + CALLER_SPAN + "-00"):
        span, token = spans.start("GET", scope, traceparent)
        ctx = span.get_span_context()
        assert ctx.is_valid  # logs and propagation still get ids
        assert not ctx.trace_flags.sampled
        spans.end(span, token, method="GET", route="/x", status=200, error=None, detach=True)
    span, token = spans.start("GET", scope, TRACEPARENT)  # the caller sampled: so do we
    assert span.get_span_context().trace_flags.sampled
    spans.end(span, token, method="GET", route="/x", status=200, error=None, detach=True)
    provider.force_flush()
    assert [s.trace_id.hex() for s in receiver.spans] == [CALLER_TRACE]


def test_unsampled_requests_still_log_and_return_trace_ids(provider: TracerProvider) -> None:
    from glassbox.metrics.asgi import MetricsMiddleware
    from glassbox.metrics.catalogue import red_catalogue
    from glassbox.tracing import ServerSpans

    app = Starlette(routes=[Route("/items/{item_id}", item)])
    mw = MetricsMiddleware(
        app,
        catalogue=red_catalogue(),
        registry=glassbox.Registry(),
        spans=ServerSpans(provider, ratio=0.0),
        request_id=True,
    )
    response = TestClient(mw).get("/items/1")
    parts = response.headers["traceresponse"].split("-")
    assert parts[3] == "00"
    assert int(parts[1], 16) != 0
    assert response.headers["x-request-id"] == parts[1][:16]


def test_fastapi_gets_one_server_span_not_two(
    receiver: OTLPReceiver, provider: TracerProvider
) -> None:
    """FastAPI's own telemetry would add a second server span around glassbox's."""
    from fastapi import FastAPI
    from opentelemetry import trace

    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    glassbox.instrument(
        app,
        service="svc",
        registry=glassbox.Registry(),
        tracer_provider=provider,
        process_metrics=False,
    )
    previous = trace._TRACER_PROVIDER  # FastAPI traces once any global provider is set
    trace._TRACER_PROVIDER = provider
    try:
        assert (
            TestClient(app).get("/orders/7", headers={"traceparent": TRACEPARENT}).status_code
            == 200
        )
    finally:
        trace._TRACER_PROVIDER = previous
    provider.force_flush()
    assert [s.name for s in receiver.spans] == ["GET /orders/{order_id}"]
