"""WSGI (Flask, plain WSGI): one server span per request, exported over real OTLP/HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import pytest
from flask import Flask
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from werkzeug.test import Client

import glassbox
from glassbox.tracing import parse_traceparent
from tests.otlp import CALLER_SPAN, CALLER_TRACE, TRACEPARENT, OTLPReceiver, attributes


def get(client: Client, path: str, **kwargs: Any) -> Any:
    """A GET whose body is read and closed, as a WSGI server does (the span ends then)."""
    return client.open(path, method="GET", buffered=True, **kwargs)


class Failure(Exception):
    pass


def flask_app(provider: TracerProvider) -> Flask:
    app = Flask("traced")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return str(item_id)

    @app.get("/boom")
    def boom() -> str:
        raise Failure("database exploded")

    @app.errorhandler(Failure)
    def failed(exc: Failure) -> tuple[str, int]:
        logging.getLogger("app.errors").error("request failed: %s", exc)
        return "failed", 503

    glassbox.instrument(
        app,
        service="svc",
        registry=glassbox.Registry(),
        tracer_provider=provider,
        process_metrics=False,
    )
    return app


def test_flask_request_gets_one_server_span_continuing_traceparent(
    receiver: OTLPReceiver, provider: TracerProvider
) -> None:
    client = Client(flask_app(provider), use_cookies=False)
    response = get(client, "/items/42", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    trace_id, span_id, flags = parse_traceparent(response.headers["traceresponse"])  # type: ignore[misc]
    assert (f"{trace_id:032x}", flags) == (CALLER_TRACE, 1)
    # the request id falls back to the trace id's first half
    assert response.headers["X-Request-ID"] == CALLER_TRACE[:16]
    assert get(client, "/health/live").status_code == 200  # excluded: no span
    assert get(client, "/metrics").status_code == 200  # excluded: no span
    provider.force_flush()
    (span,) = receiver.spans
    assert span.name == "GET /items/<int:item_id>"
    assert span.trace_id.hex() == CALLER_TRACE
    assert span.parent_span_id.hex() == CALLER_SPAN
    assert span.span_id.hex() == f"{span_id:016x}"
    assert span.kind == span.SPAN_KIND_SERVER
    attrs = attributes(span)
    assert attrs["http.route"] == "/items/<int:item_id>"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/items/42"
    assert attrs["url.scheme"] == "http"
    # the WSGI server reuses its thread: nothing of the request stays current
    assert not trace.get_current_span().get_span_context().is_valid


def test_flask_error_handler_log_line_carries_the_span_ids(
    receiver: OTLPReceiver, provider: TracerProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    client = Client(flask_app(provider), use_cookies=False)
    capsys.readouterr()
    response = get(client, "/boom", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 503
    provider.force_flush()
    (span,) = receiver.spans
    assert span.name == "GET /boom"
    assert attributes(span)["http.response.status_code"] == 503
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    (failure,) = [r for r in records if r.get("logger") == "app.errors"]
    assert failure["trace_id"] == CALLER_TRACE
    assert failure["span_id"] == span.span_id.hex()
    assert failure["span_id"] != "0" * 16


def test_plain_wsgi_exception_is_recorded_and_context_cleared(
    receiver: OTLPReceiver, provider: TracerProvider
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("broken")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = glassbox.instrument(
        app,
        service="svc",
        registry=glassbox.Registry(),
        tracer_provider=provider,
        process_metrics=False,
    )
    client = Client(wrapped)
    with pytest.raises(RuntimeError):
        get(client, "/fail")
    assert not trace.get_current_span().get_span_context().is_valid
    response = get(client, "/ok")
    assert response.status_code == 200
    provider.force_flush()
    failed, ok = receiver.spans
    assert failed.status.code == failed.status.STATUS_CODE_ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert attributes(failed)["error.type"] == "RuntimeError"
    # the second request started a new trace, not a child of the failed one
    assert ok.trace_id != failed.trace_id
    assert not ok.parent_span_id
