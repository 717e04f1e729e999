"""The OTLP/HTTP receiver: the SDK's real exporters in, the store's answers out."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from google.rpc import status_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status
from opentelemetry.trace import StatusCode as OtelStatus
from starlette.applications import Starlette

from glassbox.console.otlp import (
    MAX_BODY_BYTES,
    OTLPDecodeError,
    PayloadTooLarge,
    decode_logs,
    decode_spans,
    decompress,
    otlp_routes,
    severity_level,
)
from glassbox.console.store import LogRecord, Span, TelemetryStore
from tests.conftest import free_port, wait_for

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
MiB = 1024 * 1024


class Collector:
    """The in-test OTLP/HTTP collector: ``otlp_routes`` over a store, on a real uvicorn.

    ``with Collector(path) as c:`` serves ``/v1/traces`` and ``/v1/logs`` into ``c.store``.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        store: TelemetryStore | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.store = store if store is not None else TelemetryStore(path)
        app = Starlette(routes=otlp_routes(self.store, max_body=max_body))
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Collector:
        self.thread.start()
        wait_for(lambda: self.server.started, 15, "the OTLP collector to listen")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.store.close()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    with Collector(tmp_path / "telemetry.db") as c:
        yield c


def _tracing(endpoint: str, **exporter: object) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider exporting to the collector, and a copy of every span it ended."""
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", **exporter))  # type: ignore[call-overload]
    )
    copy = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(copy))
    return provider, copy


def _checkout(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span(
        "GET /items/{id}",
        kind=SpanKind.SERVER,
        attributes={"http.route": "/items/{id}", "http.status_code": 500, "retry": True},
    ) as root:
        with tracer.start_as_current_span("SELECT items", kind=SpanKind.CLIENT) as query:
            query.set_attribute("db.rows", 3)
            query.set_attribute("db.weights", [0.5, 1.5])
            query.add_event("retry", {"attempt": 2})
        try:
            raise LookupError("no such item")
        except LookupError as exc:
            root.record_exception(exc)
            root.set_status(Status(OtelStatus.ERROR, "no such item"))


def _hex(n: int, width: int) -> str:
    return f"{n:0{width}x}"


def test_spans_from_the_sdk_exporter_are_stored(collector: Collector) -> None:
    provider, copy = _tracing(collector.endpoint)
    _checkout(provider)
    assert provider.force_flush(10_000)
    sent: dict[str, ReadableSpan] = {s.name: s for s in copy.get_finished_spans()}
    root_ctx = sent["GET /items/{id}"].context
    assert root_ctx is not None
    trace_id = _hex(root_ctx.trace_id, 32)

    spans = {s.name: s for s in collector.store.trace(trace_id)}
    root, query = spans["GET /items/{id}"], spans["SELECT items"]
    assert list(spans) == ["GET /items/{id}", "SELECT items"]  # by start time
    assert (root.kind, query.kind) == ("server", "client")
    assert root.parent_span_id is None
    assert root.span_id == _hex(root_ctx.span_id, 16)
    assert query.parent_span_id == root.span_id
    assert root.service == query.service == "shop"
    assert root.attributes == {"http.route": "/items/{id}", "http.status_code": 500, "retry": True}
    assert query.attributes == {"db.rows": 3, "db.weights": [0.5, 1.5]}
    for name, stored in spans.items():
        original = sent[name]
        assert (stored.start_ns, stored.end_ns) == (original.start_time, original.end_time)
        assert stored.duration_ms == (original.end_time - original.start_time) / 1e6  # type: ignore[operator]
    assert (root.status_code, root.status_message) == ("error", "no such item")
    assert query.status_code == "unset"
    (exception,) = root.events
    assert exception.name == "exception"
    assert exception.attributes["exception.type"] == "LookupError"
    assert exception.attributes["exception.message"] == "no such item"
    assert [(e.name, e.attributes) for e in query.events] == [("retry", {"attempt": 2})]

    (summary,) = collector.store.traces()
    assert summary.trace_id == trace_id
    assert summary.root_name == "GET /items/{id}"
    assert summary.span_count == 2
    assert summary.error
    assert collector.store.services() == ["shop"]
    provider.shutdown()


def test_gzip_from_the_sdk_exporter(collector: Collector) -> None:
    provider, _ = _tracing(collector.endpoint, compression=Compression.Gzip)
    _checkout(provider)
    assert provider.force_flush(10_000)
    assert collector.store.stats()["spans"] == 2
    provider.shutdown()


def test_logs_from_the_sdk_exporter_are_stored(collector: Collector) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{collector.endpoint}/v1/logs"))
    )
    logger = provider.get_logger("shop.orders")
    tracing = TracerProvider()
    with tracing.get_tracer("t").start_as_current_span("place order") as active:
        logger.emit(
            body="order placed",
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            attributes={"order": 42, "total": 9.5},
        )
    ctx = active.get_span_context()
    logger.emit(body="disk on fire", severity_number=SeverityNumber.FATAL)
    logger.emit(body="quiet", severity_number=SeverityNumber.DEBUG2)
    logger.emit(body="just text", severity_text="error")  # no number: the text decides
    glassbox_line = {
        "event": "payment declined",
        "level": "error",
        "logger": "shop.pay",
        "timestamp": "2026-01-02T03:04:05.123456Z",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "request_id": "req-1",
        "service": "shop",
        "version": "9.9.9",
    }
    logger.emit(body=json.dumps(glassbox_line))  # a JSON line as a collector would ship it
    assert provider.force_flush(10_000)

    got = {r.message: r for r in collector.store.search_logs()}
    placed = got["order placed"]
    assert placed.level == "warning"
    assert placed.service == "shop"
    assert placed.logger == "shop.orders"
    assert placed.trace_id == _hex(ctx.trace_id, 32)
    assert placed.span_id == _hex(ctx.span_id, 16)
    assert placed.attributes == {"order": 42, "total": 9.5}
    assert got["disk on fire"].level == "critical"
    assert got["disk on fire"].trace_id is None
    assert got["quiet"].level == "debug"
    assert got["just text"].level == "error"
    declined = got["payment declined"]
    assert declined.level == "error"
    assert declined.logger == "shop.pay"
    assert declined.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert declined.span_id == "00f067aa0ba902b7"
    assert declined.attributes == {"request_id": "req-1", "version": "9.9.9"}
    # the store answers the console's questions about them
    found = collector.store.search_logs(trace_id=_hex(ctx.trace_id, 32))
    assert [r.message for r in found] == ["order placed"]
    assert [r.message for r in collector.store.search_logs(level="critical")] == ["disk on fire"]
    provider.shutdown()


TRACE_JSON = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "by-hand"},
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "eee19b7ec3c1b174",
                            "parentSpanId": "",
                            "name": "checkout",
                            "kind": 2,
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [
                                {"key": "s", "value": {"stringValue": "v"}},
                                {"key": "i", "value": {"intValue": "42"}},
                                {"key": "d", "value": {"doubleValue": 1.5}},
                                {"key": "b", "value": {"boolValue": True}},
                                {
                                    "key": "a",
                                    "value": {
                                        "arrayValue": {
                                            "values": [{"stringValue": "x"}, {"intValue": 7}]
                                        }
                                    },
                                },
                                {
                                    "key": "m",
                                    "value": {
                                        "kvlistValue": {
                                            "values": [{"key": "k", "value": {"stringValue": "v"}}]
                                        }
                                    },
                                },
                                {"key": "raw", "value": {"bytesValue": "aGk="}},
                            ],
                            "events": [
                                {
                                    "timeUnixNano": "1544712660500000000",
                                    "name": "cache miss",
                                    "attributes": [{"key": "key", "value": {"stringValue": "k1"}}],
                                }
                            ],
                            "status": {"code": 2, "message": "card declined"},
                            "someFutureField": {"ignored": True},
                        },
                        {
                            "trace_id": "5b8efff798038103d269b633813fc60c",
                            "span_id": "1111111111111111",
                            "parent_span_id": "eee19b7ec3c1b174",
                            "name": "charge",
                            "kind": "SPAN_KIND_CLIENT",
                            "start_time_unix_nano": 1544712660100000000,
                            "end_time_unix_nano": 1544712660600000000,
                        },
                    ],
                }
            ],
        }
    ]
}


def test_otlp_json_traces(collector: Collector) -> None:
    response = httpx.post(f"{collector.endpoint}/v1/traces", json=TRACE_JSON, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    checkout, charge = collector.store.trace("5b8efff798038103d269b633813fc60c")
    assert checkout.name == "checkout"
    assert checkout.kind == "server"
    assert checkout.service == "json-svc"
    assert checkout.parent_span_id is None
    assert checkout.duration_ms == 1000.0
    assert (checkout.status_code, checkout.status_message) == ("error", "card declined")
    assert checkout.attributes == {
        "s": "v",
        "i": 42,
        "d": 1.5,
        "b": True,
        "a": ["x", 7],
        "m": {"k": "v"},
        "raw": "aGk=",
    }
    assert [(e.name, e.time_ns, e.attributes) for e in checkout.events] == [
        ("cache miss", 1544712660500000000, {"key": "k1"})
    ]
    assert charge.kind == "client"
    assert charge.parent_span_id == "eee19b7ec3c1b174"
    assert charge.duration_ms == 500.0


def test_otlp_json_logs_gzipped(collector: Collector) -> None:
    line = {"event": "line from stdout", "level": "warning", "logger": "tail", "user": "ann"}
    body = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "lib"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000000",
                                "severityNumber": 17,
                                "severityText": "ERROR",
                                "body": {"stringValue": "charge failed"},
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "attributes": [{"key": "card", "value": {"stringValue": "visa"}}],
                            },
                            {
                                "observedTimeUnixNano": "1700000000500000000",
                                "body": {"stringValue": json.dumps(line)},
                            },
                            {
                                "timeUnixNano": "1700000000600000000",
                                "severityNumber": "SEVERITY_NUMBER_INFO",
                                "body": {
                                    "kvlistValue": {
                                        "values": [{"key": "n", "value": {"intValue": "1"}}]
                                    }
                                },
                            },
                        ],
                    }
                ],
            }
        ]
    }
    response = httpx.post(
        f"{collector.endpoint}/v1/logs",
        content=gzip.compress(json.dumps(body).encode()),
        headers={**JSON, "content-encoding": "gzip"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}
    structured, unpacked, failed = collector.store.search_logs()
    assert (failed.message, failed.level, failed.logger) == ("charge failed", "error", "lib")
    assert failed.time_ns == 1700000000000000000
    assert failed.trace_id == "5b8efff798038103d269b633813fc60c"
    assert failed.span_id == "eee19b7ec3c1b174"
    assert failed.attributes == {"card": "visa"}
    assert (unpacked.message, unpacked.level, unpacked.logger) == (
        "line from stdout",
        "warning",
        "tail",
    )
    assert unpacked.time_ns == 1700000000500000000  # observed time stands in
    assert unpacked.attributes == {"user": "ann"}
    assert structured.message == '{"n":1}'
    assert structured.level == "info"


def _status(response: httpx.Response) -> status_pb2.Status:
    status = status_pb2.Status()
    status.ParseFromString(response.content)
    return status


def _bomb(inflated: int) -> bytes:
    """A gzip body of ``inflated`` zero bytes, built without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    parts = [packer.compress(zeros) for _ in range(inflated // MiB)]
    return b"".join([*parts, packer.flush()])


def _one_span_request(trace_id: bytes = b"\x01" * 16) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = trace_id
    span.span_id = b"\x02" * 8
    span.name = "one"
    return request.SerializeToString()


def test_bad_requests_get_collector_answers_and_the_server_keeps_serving(
    collector: Collector,
) -> None:
    url = f"{collector.endpoint}/v1/traces"
    with httpx.Client(timeout=30) as client:
        garbage = client.post(url, content=b"\xff\xff\xff not protobuf", headers=PROTOBUF)
        assert garbage.status_code == 400
        assert garbage.headers["content-type"] == "application/x-protobuf"
        status = _status(garbage)
        assert status.code == 3  # INVALID_ARGUMENT
        assert "not an OTLP protobuf export request" in status.message

        bad_json = client.post(f"{collector.endpoint}/v1/logs", content=b"{nope", headers=JSON)
        assert bad_json.status_code == 400
        assert bad_json.json()["code"] == 3
        wrong_shape = client.post(url, json={"resourceSpans": "nope"})
        assert wrong_shape.status_code == 400
        bad_hex = client.post(url, json={"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "zz", "spanId": "eee19b7ec3c1b174"}
        ]}]}]})  # fmt: skip
        assert bad_hex.status_code == 400
        assert "traceId" in bad_hex.json()["message"]

        text = client.post(url, content=b"hello", headers={"content-type": "text/plain"})
        assert text.status_code == 415
        assert "application/x-protobuf" in _status(text).message
        brotli = client.post(url, content=b"x", headers={**PROTOBUF, "content-encoding": "br"})
        assert brotli.status_code == 415

        bomb = _bomb(256 * MiB)
        assert len(bomb) < MiB
        started = time.perf_counter()
        exploded = client.post(url, content=bomb, headers={**PROTOBUF, "content-encoding": "gzip"})
        assert exploded.status_code == 413
        assert "limit" in _status(exploded).message
        assert time.perf_counter() - started < 5  # stopped at 8 MiB, not inflated to 256

        truncated = gzip.compress(_one_span_request())[:-10]
        cut = client.post(url, content=truncated, headers={**PROTOBUF, "content-encoding": "gzip"})
        assert cut.status_code == 400
        huge = client.post(url, content=bytes(9 * MiB), headers=PROTOBUF)
        assert huge.status_code == 413
        assert client.get(url).status_code == 405

        assert collector.store.stats()["spans"] == 0
        ok = client.post(url, content=_one_span_request(), headers=PROTOBUF)
        assert ok.status_code == 200
        assert ExportTraceServiceResponse.FromString(ok.content) == ExportTraceServiceResponse()
        assert collector.store.stats()["spans"] == 1
    # and the SDK's exporter still gets through
    provider, _ = _tracing(collector.endpoint)
    _checkout(provider)
    assert provider.force_flush(10_000)
    assert collector.store.stats()["spans"] == 3
    provider.shutdown()


def test_spans_with_malformed_ids_are_a_partial_success(collector: Collector) -> None:
    request = ExportTraceServiceRequest.FromString(_one_span_request())
    scope = request.resource_spans[0].scope_spans[0]
    for trace_id, span_id in ((b"\x01" * 3, b"\x02" * 8), (b"\x00" * 16, b"\x02" * 8)):
        bad = scope.spans.add()
        bad.trace_id, bad.span_id, bad.name = trace_id, span_id, "bad"
    response = httpx.post(
        f"{collector.endpoint}/v1/traces", content=request.SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 2
    assert "trace_id" in answer.partial_success.error_message
    assert [s.name for s in collector.store.trace("01" * 16)] == ["one"]
    empty = httpx.post(f"{collector.endpoint}/v1/logs", content=b"", headers=PROTOBUF)
    assert empty.status_code == 200
    assert ExportLogsServiceResponse.FromString(empty.content) == ExportLogsServiceResponse()


class FailingStore(TelemetryStore):
    """Fails the first writes the way a broken disk or a locked database would."""

    def __init__(self, path: Path, failures: list[BaseException]) -> None:
        super().__init__(path)
        self.failures = failures

    def add_spans(self, spans: Iterable[Span]) -> int:
        if self.failures:
            raise self.failures.pop(0)
        return super().add_spans(spans)

    def add_logs(self, logs: Iterable[LogRecord]) -> int:
        if self.failures:
            raise self.failures.pop(0)
        return super().add_logs(logs)


def test_store_failures_are_answered_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[BaseException] = [
        RuntimeError("disk gone"),
        sqlite3.OperationalError("database is locked"),
    ]
    store = FailingStore(tmp_path / "t.db", failures)
    with Collector(tmp_path / "t.db", store=store) as collector:
        url = f"{collector.endpoint}/v1/traces"
        broken = httpx.post(url, content=_one_span_request(), headers=PROTOBUF)
        assert broken.status_code == 500
        assert _status(broken).code == 13  # INTERNAL
        assert "disk gone" in _status(broken).message
        assert "OTLP traces export failed" in caplog.text
        busy = httpx.post(url, json=TRACE_JSON)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["code"] == 14  # UNAVAILABLE
        assert httpx.post(url, content=_one_span_request(), headers=PROTOBUF).status_code == 200
        assert store.stats()["spans"] == 1


# -- the pieces -------------------------------------------------------------------------


def test_decompress_caps_while_inflating() -> None:
    data = b"x" * 1000
    assert decompress(gzip.compress(data), "gzip", limit=1000) == data
    assert decompress(gzip.compress(data), " GZIP ", limit=1000) == data
    assert decompress(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip") == b"abcd"
    assert decompress(data, None, limit=1000) == data
    assert decompress(data, "identity", limit=1000) == data
    with pytest.raises(PayloadTooLarge):
        decompress(gzip.compress(data), "gzip", limit=999)
    with pytest.raises(PayloadTooLarge):
        decompress(data, None, limit=999)
    with pytest.raises(PayloadTooLarge):
        decompress(_bomb(64 * MiB), "gzip", limit=MiB)
    with pytest.raises(OTLPDecodeError, match="corrupt"):
        decompress(b"\x1f\x8b not really", "gzip")
    with pytest.raises(OTLPDecodeError, match="truncated"):
        decompress(gzip.compress(data)[:-12], "gzip")
    with pytest.raises(ValueError, match="unsupported"):
        decompress(data, "zstd")


def test_decoders_on_their_own() -> None:
    decoded = decode_spans(_one_span_request())
    assert [s.name for s in decoded.records] == ["one"]
    assert decoded.records[0].service == "unknown_service"
    assert decode_logs(b"").records == []
    with pytest.raises(OTLPDecodeError):
        decode_spans(b"[]", "json")
    deep = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(OTLPDecodeError):
        decode_spans(deep, "json")


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [
        (1, "", "debug"),  # TRACE
        (5, "", "debug"),
        (9, "", "info"),
        (12, "", "info"),
        (13, "", "warning"),
        (17, "", "error"),
        (21, "", "critical"),
        (24, "", "critical"),
        (0, "WARN", "warning"),
        (0, "Fatal", "critical"),
        (0, "", None),
        (0, "chatty", None),
        (99, "", None),
    ],
)
def test_severity_levels(number: int, text: str, level: str | None) -> None:
    assert severity_level(number, text) == level
