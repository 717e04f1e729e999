"""Tracing: one server span per request, exported over real OTLP/HTTP."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import Sampler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

import glassbox
from glassbox.metrics.asgi import MetricsMiddleware
from glassbox.tracing import parse_traceparent
from tests.otlp import CALLER_SPAN, CALLER_TRACE, TRACEPARENT, OTLPReceiver, attributes


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


def _unsampled_app(provider: TracerProvider, routes: list[Route]) -> MetricsMiddleware:
    """The metrics middleware with glassbox's head sampling at 0: no request is sampled."""
    from glassbox.metrics.catalogue import red_catalogue
    from glassbox.tracing import ServerSpans

    return MetricsMiddleware(
        Starlette(routes=routes),
        catalogue=red_catalogue(),
        registry=glassbox.Registry(),
        spans=ServerSpans(provider, ratio=0.0),
        request_id=True,
    )


def test_unsampled_request_has_a_current_non_recording_span_and_logs_its_ids(
    receiver: OTLPReceiver, provider: TracerProvider
) -> None:
    """No SDK span, but the ids are in the OpenTelemetry context and in log lines."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    from glassbox.logs import add_request_context

    seen: dict[str, object] = {}

    async def handler(request: object) -> PlainTextResponse:
        span = trace.get_current_span()
        seen["span"] = span
        seen["log"] = dict(add_request_context(None, "info", {}))
        return PlainTextResponse("ok")

    response = TestClient(_unsampled_app(provider, [Route("/x", handler)])).get("/x")
    _, trace_hex, span_hex, flags = response.headers["traceresponse"].split("-")
    span = seen["span"]
    assert isinstance(span, NonRecordingSpan)
    assert not span.is_recording()
    ctx = span.get_span_context()
    assert ctx == SpanContext(
        int(trace_hex, 16), int(span_hex, 16), False, TraceFlags(0), TraceState()
    )
    assert ctx.is_valid
    assert not ctx.is_remote
    assert not ctx.trace_flags.sampled
    assert flags == "00"
    assert seen["log"] == {
        "trace_id": trace_hex,
        "span_id": span_hex,
        "request_id": trace_hex[:16],
    }
    assert trace.get_current_span() is trace.INVALID_SPAN  # restored after the request
    provider.force_flush()
    assert receiver.spans == []


def test_unsampled_request_propagates_sampled_0_to_outgoing_httpx_calls(
    provider: TracerProvider,
) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    received: list[str] = []

    async def downstream(request: Request) -> PlainTextResponse:
        received.append(request.headers["traceparent"])
        return PlainTextResponse("down")

    down_app = Starlette(routes=[Route("/down", downstream)])

    async def calls_out(request: object) -> PlainTextResponse:
        transport = httpx.ASGITransport(app=down_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://down") as client:
            HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
            await client.get("/down")
        return PlainTextResponse("ok")

    for traceparent in (None, f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"):
        headers = {"traceparent": traceparent} if traceparent else {}
        response = TestClient(_unsampled_app(provider, [Route("/out", calls_out)])).get(
            "/out", headers=headers
        )
        trace_hex = response.headers["traceresponse"].split("-")[1]
        if traceparent:
            assert trace_hex == CALLER_TRACE  # the caller's trace, continued unsampled
        sent = parse_traceparent(received[-1])
        assert sent is not None
        assert f"{sent[0]:032x}" == trace_hex
        assert sent[2] & 1 == 0


def test_exception_log_lines_of_an_unsampled_request_carry_its_ids(
    provider: TracerProvider,
) -> None:
    """The outer error handler runs after the middleware: the ids must still be current."""
    from glassbox.logs import add_request_context

    mw = _unsampled_app(provider, [Route("/boom", boom)])
    seen: dict[str, object] = {}

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await mw(scope, receive, send)
        except ValueError:  # Starlette's own error middleware has answered 500
            seen.update(add_request_context(None, "error", {}))

    assert TestClient(outer).get("/boom").status_code == 500
    assert len(str(seen["trace_id"])) == 32
    assert len(str(seen["span_id"])) == 16
    assert seen["request_id"] == str(seen["trace_id"])[:16]


class _AttributeReadingSampler(Sampler):
    """A sampler of the application's that decides on attributes (so must see them)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        self.seen: list[dict[str, object]] = []
        self._on = ALWAYS_ON

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> Any:
        self.seen.append(dict(attributes or {}))
        return self._on.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "AttributeReading"


def _exported_span(sampler: Any = None, limits: Any = None) -> tuple[Any, Any]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    kwargs: dict[str, Any] = {"sampler": sampler} if sampler is not None else {}
    if limits is not None:
        kwargs["span_limits"] = limits
    p = TracerProvider(**kwargs)
    p.add_span_processor(SimpleSpanProcessor(exporter))
    response = TestClient(make_app(p)).get("/items/42?x=1")
    assert response.status_code == 200
    (span,) = exporter.get_finished_spans()
    return span, response


def test_sampled_span_attributes_are_the_same_on_the_direct_and_the_public_path() -> None:
    """The SDK's samplers cannot read attributes: glassbox puts them on the span itself.
    Any other sampler gets them at start_span, and the exported span is the same."""
    from glassbox.tracing import ServerSpans

    sampler = _AttributeReadingSampler()
    assert ServerSpans(TracerProvider())._blind  # the direct path is the one taken
    assert not ServerSpans(TracerProvider(sampler=sampler))._blind
    direct, _ = _exported_span()
    public, _ = _exported_span(sampler)
    assert list(direct.attributes.items()) == list(public.attributes.items())
    assert dict(direct.attributes) == {
        "http.request.method": "GET",
        "url.path": "/items/42",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "server.address": "testserver",
        "server.port": 80,
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }
    assert direct.name == public.name == "GET /items/{item_id}"
    assert sampler.seen
    assert sampler.seen[0]["url.path"] == "/items/42"


def test_attribute_limits_still_apply_to_sampled_spans() -> None:
    from opentelemetry.sdk.trace import SpanLimits

    span, _ = _exported_span(limits=SpanLimits(max_span_attribute_length=4))
    assert span.attributes["url.path"] == "/ite"
    assert span.attributes["http.route"] == "/ite"
    assert span.name == "GET /items/{item_id}"
