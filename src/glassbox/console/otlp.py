"""OTLP/HTTP receiver for the console: export requests in, store records out.

:func:`otlp_routes` gives the Starlette routes ``POST /v1/traces`` and ``POST /v1/logs``
that answer like an OpenTelemetry collector's OTLP/HTTP receiver:

* bodies in ``application/x-protobuf`` (``ExportTraceServiceRequest`` /
  ``ExportLogsServiceRequest``) or ``application/json`` (OTLP's JSON mapping: ids as
  hex strings, enums as numbers, 64-bit integers as numbers or strings, camelCase or
  snake_case keys, unknown fields ignored), optionally ``Content-Encoding: gzip``;
* 200 with an export response in the request's encoding (``partial_success`` counts
  spans rejected for malformed ids); 400 for an undecodable body, 413 for a body over
  ``max_body`` bytes (compressed or decompressed: a gzip bomb is stopped while it
  inflates), 415 for another content type or encoding, 503 while SQLite is busy
  (exporters retry that), 500 for anything else; every error body is a
  ``google.rpc.Status`` in the request's encoding.

The decoders (:func:`decode_spans`, :func:`decode_logs`) are usable on their own. A
record's service is its resource's ``service.name``.

**glassbox JSON log lines.** A log body that is a JSON object with an ``event`` key (the
line glassbox's structlog renderer prints, e.g. shipped by a collector tailing stdout),
or a key-value-list body with one, is unpacked: ``event`` becomes the message;
``level`` gives the level when the record has no severity; ``logger`` the logger name
(else the instrumentation scope's name); ``trace_id``/``span_id`` the ids when the
record's own are empty; ``service`` the service when the resource names none;
``timestamp`` the time when the record has none. The other fields become attributes,
below the record's own attributes of the same name; values nested deeper than 32
levels are cut. Any other body is the message as-is (a non-string body as JSON).
Timestamps past 2**63 - 1 ns (SQLite's largest integer) are capped there.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from glassbox.console.store import (
    LEVELS,
    Level,
    LogRecord,
    Span,
    SpanEvent,
    SpanKind,
    StatusCode,
    TelemetryStore,
    level_number,
)

if TYPE_CHECKING:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

__all__ = [
    "MAX_BODY_BYTES",
    "Decoded",
    "Encoding",
    "OTLPDecodeError",
    "PayloadTooLarge",
    "decode_logs",
    "decode_spans",
    "decompress",
    "otlp_routes",
    "severity_level",
]

log = logging.getLogger("glassbox.console.otlp")

#: The largest body accepted, compressed and decompressed (a collector's default is 20 MiB
#: compressed; exporters' batches of 512 are well under 1 MiB).
MAX_BODY_BYTES: Final = 8 * 1024 * 1024

Encoding = Literal["protobuf", "json"]
_PROTOBUF: Final = "application/x-protobuf"
_JSON: Final = "application/json"
_KINDS: Final[tuple[SpanKind, ...]] = (
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
)
_STATUS: Final[tuple[StatusCode, ...]] = ("unset", "ok", "error")
_ID_KEYS: Final = frozenset(
    {"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"}
)
_UNPACKED: Final = frozenset({"event", "level", "logger", "timestamp", "trace_id", "span_id"})
_UNKNOWN_SERVICE: Final = "unknown_service"
#: The latest timestamp the store holds (SQLite integers are signed 64-bit).
_MAX_NS: Final = 2**63 - 1
#: Nesting kept of a JSON log line's fields; deeper values are cut (the store's JSON
#: encoder stops at 255 levels, and nobody reads that deep).
_MAX_DEPTH: Final = 32
# google.rpc.Code values used in error bodies
_INVALID_ARGUMENT: Final = 3
_UNAVAILABLE: Final = 14
_INTERNAL: Final = 13

T = TypeVar("T")


class OTLPDecodeError(ValueError):
    """The body is not an OTLP export request in the encoding it claims."""


class PayloadTooLarge(ValueError):
    """The body, or what it decompresses to, is over the size limit."""


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    """Records decoded from one export request; ``rejected`` ones were malformed."""

    records: list[T]
    rejected: int = 0
    reason: str = ""


# -- bodies ----------------------------------------------------------------------------


def decompress(body: bytes, content_encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """``body`` decoded per ``Content-Encoding`` (none, identity, gzip), at most ``limit`` bytes.

    Raises :class:`PayloadTooLarge` as soon as the output would pass ``limit`` (it never
    inflates more than ``limit + 1`` bytes), :class:`OTLPDecodeError` for a corrupt or
    truncated stream, and ValueError for an unsupported encoding.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise PayloadTooLarge(f"body of {len(body)} bytes is over the {limit}-byte limit")
        return body
    if encoding != "gzip":
        raise ValueError(f"unsupported content encoding {encoding!r}; use gzip or none")
    out = bytearray()
    data = body
    try:
        while data:  # one gzip member per pass (concatenated members are one stream)
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += inflater.decompress(data, limit + 1 - len(out))
            while inflater.unconsumed_tail and len(out) <= limit:
                out += inflater.decompress(inflater.unconsumed_tail, limit + 1 - len(out))
            if len(out) > limit:
                raise PayloadTooLarge(f"body inflates to over the {limit}-byte limit")
            if not inflater.eof:
                raise OTLPDecodeError("gzip body is truncated")
            data = inflater.unused_data
    except zlib.error as exc:
        raise OTLPDecodeError(f"gzip body is corrupt: {exc}") from None
    return bytes(out)


def _parse(body: bytes, encoding: Encoding, message: Message) -> None:
    try:
        if encoding == "protobuf":
            message.ParseFromString(body)
            return
        document = orjson.loads(body)
        if not isinstance(document, dict):
            raise OTLPDecodeError("JSON body is not an object")
        json_format.ParseDict(_ids_to_base64(document), message, ignore_unknown_fields=True)
    except OTLPDecodeError:
        raise
    except (_ProtobufDecodeError, json_format.ParseError, ValueError, TypeError) as exc:
        raise OTLPDecodeError(f"not an OTLP {encoding} export request: {exc}") from None
    except RecursionError:
        raise OTLPDecodeError("body nests too deeply") from None


def _ids_to_base64(node: Any) -> Any:
    """OTLP JSON's hex trace/span ids as the base64 that protobuf's JSON mapping expects."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    out[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise OTLPDecodeError(f"{key} {value[:40]!r} is not hex") from None
            else:
                out[key] = _ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_ids_to_base64(item) for item in node]
    return node


# -- values ----------------------------------------------------------------------------


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


def _service(pairs: Iterable[KeyValue]) -> str:
    for kv in pairs:
        if kv.key == "service.name":
            name = kv.value.string_value
            return name or _UNKNOWN_SERVICE
    return _UNKNOWN_SERVICE


def _ns(value: int) -> int:
    """A timestamp the store can hold: OTLP's unsigned 64-bit ones are capped at 2**63 - 1."""
    return min(value, _MAX_NS)


def _cut(value: Any, depth: int = _MAX_DEPTH) -> Any:
    """``value`` with lists and objects below ``depth`` levels replaced by a marker."""
    if isinstance(value, dict | list) and depth <= 0:
        return "[nested too deeply]"
    if isinstance(value, dict):
        return {k: _cut(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v, depth - 1) for v in value]
    return value


def _hex_id(raw: bytes, size: int) -> str | None:
    """Lower-case hex of a valid id (``size`` bytes, not all zero), else None."""
    if len(raw) != size or not raw.strip(b"\0"):
        return None
    return raw.hex()


def severity_level(number: int, text: str = "") -> Level | None:
    """The store's level for an OTLP severity number (1-24) or, failing that, its text."""
    if 1 <= number <= 24:
        return LEVELS[max(0, (number - 1) // 4 - 1)]
    if text:
        try:
            return LEVELS[level_number(text) // 10 - 1]
        except ValueError:
            return None
    return None


# -- spans -----------------------------------------------------------------------------


def decode_spans(body: bytes, encoding: Encoding = "protobuf") -> Decoded[Span]:
    """The spans in an ``ExportTraceServiceRequest``; spans with malformed ids are rejected."""
    request = ExportTraceServiceRequest()
    _parse(body, encoding, request)
    spans: list[Span] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        service = _service(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                trace_id = _hex_id(s.trace_id, 16)
                span_id = _hex_id(s.span_id, 8)
                if trace_id is None or span_id is None:
                    rejected += 1
                    continue
                status = s.status
                spans.append(
                    Span(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=_hex_id(s.parent_span_id, 8),
                        name=s.name,
                        kind=_KINDS[s.kind] if 0 <= s.kind < len(_KINDS) else "unspecified",
                        service=service,
                        start_ns=_ns(s.start_time_unix_nano),
                        end_ns=_ns(s.end_time_unix_nano),
                        status_code=_STATUS[status.code] if 0 <= status.code < 3 else "unset",
                        status_message=status.message,
                        attributes=_attributes(s.attributes),
                        events=[
                            SpanEvent(
                                name=e.name,
                                time_ns=_ns(e.time_unix_nano),
                                attributes=_attributes(e.attributes),
                            )
                            for e in s.events
                        ],
                    )
                )
    reason = f"{rejected} spans without a valid trace_id or span_id" if rejected else ""
    return Decoded(spans, rejected, reason)


# -- logs ------------------------------------------------------------------------------


def _hex_text(value: Any, size: int) -> str | None:
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    try:
        return _hex_id(bytes.fromhex(value), size)
    except ValueError:
        return None


def _iso_ns(value: Any) -> int:
    """Nanoseconds of an ISO 8601 time from 1970 on, else 0."""
    if isinstance(value, str):
        try:
            ns = int(datetime.fromisoformat(value).timestamp() * 1e9)
        except (ValueError, OverflowError, OSError):  # unparsable, or out of range
            return 0
        return ns if 0 <= ns <= _MAX_NS else 0
    return 0


def _message(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    return orjson.dumps(body, default=repr).decode()


def _glassbox_line(body: Any) -> dict[str, Any] | None:
    """The fields of a structlog JSON line (or an equivalent key-value body), else None."""
    if isinstance(body, str):
        text = body.strip()
        if not (text.startswith("{") and text.endswith("}") and '"event"' in text):
            return None
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
    if isinstance(body, dict) and "event" in body:
        return {k: _cut(v) for k, v in body.items()}
    return None


def decode_logs(body: bytes, encoding: Encoding = "protobuf") -> Decoded[LogRecord]:
    """The log records in an ``ExportLogsServiceRequest`` (glassbox JSON lines unpacked)."""
    request = ExportLogsServiceRequest()
    _parse(body, encoding, request)
    records: list[LogRecord] = []
    now = time.time_ns()
    for resource_logs in request.resource_logs:
        resource_service = _service(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope.name
            for r in scope_logs.log_records:
                attributes = _attributes(r.attributes)
                content = _value(r.body) if r.HasField("body") else None
                level = severity_level(r.severity_number, r.severity_text)
                trace_id = _hex_id(r.trace_id, 16)
                span_id = _hex_id(r.span_id, 8)
                time_ns = _ns(r.time_unix_nano or r.observed_time_unix_nano)
                service = resource_service
                logger = scope
                fields = _glassbox_line(content)
                if fields is None:
                    message = _message(content)
                else:
                    message = _message(fields.get("event"))
                    if level is None and isinstance(fields.get("level"), str):
                        level = severity_level(0, fields["level"])
                    if isinstance(fields.get("logger"), str):
                        logger = fields["logger"]
                    if trace_id is None:
                        trace_id = _hex_text(fields.get("trace_id"), 16)
                        span_id = _hex_text(fields.get("span_id"), 8) if trace_id else None
                    if service.startswith(_UNKNOWN_SERVICE) and isinstance(
                        fields.get("service"), str
                    ):
                        service = fields["service"]
                    time_ns = time_ns or _iso_ns(fields.get("timestamp"))
                    extra = {k: v for k, v in fields.items() if k not in _UNPACKED}
                    if extra.get("service") == service:
                        del extra["service"]
                    attributes = {**extra, **attributes}
                records.append(
                    LogRecord(
                        time_ns=time_ns or now,
                        service=service,
                        level=level or "info",
                        logger=logger,
                        message=message,
                        trace_id=trace_id,
                        span_id=span_id if trace_id else None,
                        attributes=attributes,
                    )
                )
    return Decoded(records)


# -- HTTP ------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _rpc_status(code: int, message: str, encoding: Encoding) -> bytes:
    """A ``google.rpc.Status`` (code, message), encoded by hand: no googleapis dependency."""
    if encoding == "json":
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


_Signal = Literal["traces", "logs"]


def _success(signal: _Signal, decoded: Decoded[Any], encoding: Encoding) -> bytes:
    response: Message
    if signal == "traces":
        response = ExportTraceServiceResponse()
        if decoded.rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=decoded.rejected, error_message=decoded.reason
                )
            )
    else:
        response = ExportLogsServiceResponse()
        if decoded.rejected:
            response.partial_success.CopyFrom(
                ExportLogsPartialSuccess(
                    rejected_log_records=decoded.rejected, error_message=decoded.reason
                )
            )
    if encoding == "json":
        return orjson.dumps(json_format.MessageToDict(response))
    return response.SerializeToString()


def _ingest(
    store: TelemetryStore,
    signal: _Signal,
    raw: bytes,
    content_encoding: str | None,
    encoding: Encoding,
    limit: int,
) -> bytes:
    body = decompress(raw, content_encoding, limit)
    if signal == "traces":
        spans = decode_spans(body, encoding)
        store.add_spans(spans.records)
        return _success(signal, spans, encoding)
    logs = decode_logs(body, encoding)
    store.add_logs(logs.records)
    return _success(signal, logs, encoding)


def otlp_routes(store: TelemetryStore, *, max_body: int = MAX_BODY_BYTES) -> list[Route]:
    """``POST /v1/traces`` and ``POST /v1/logs`` storing what OTLP exporters send into ``store``.

    Decoding and storing run in Starlette's thread pool, off the event loop.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect
    from starlette.responses import Response
    from starlette.routing import Route

    def reply(status: int, body: bytes, encoding: Encoding) -> Response:
        media = _JSON if encoding == "json" else _PROTOBUF
        return Response(body, status_code=status, media_type=media)

    def error(status: int, code: int, message: str, encoding: Encoding) -> Response:
        return reply(status, _rpc_status(code, message, encoding), encoding)

    async def receive(request: Request, signal: _Signal) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        encoding: Encoding = "json" if media == _JSON else "protobuf"
        try:
            if media not in (_PROTOBUF, _JSON):
                return error(
                    415,
                    _INVALID_ARGUMENT,
                    f"unsupported content type {media!r}; send {_PROTOBUF} or {_JSON}",
                    encoding,
                )
            content_encoding = request.headers.get("content-encoding")
            if (content_encoding or "identity").strip().lower() not in ("", "identity", "gzip"):
                return error(
                    415,
                    _INVALID_ARGUMENT,
                    f"unsupported content encoding {content_encoding!r}; send gzip or none",
                    encoding,
                )
            declared = request.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > max_body:
                return error(
                    413, _INVALID_ARGUMENT, f"body is over the {max_body}-byte limit", encoding
                )
            raw = bytearray()
            async for chunk in request.stream():
                raw += chunk
                if len(raw) > max_body:
                    return error(
                        413, _INVALID_ARGUMENT, f"body is over the {max_body}-byte limit", encoding
                    )
            body = await run_in_threadpool(
                _ingest, store, signal, bytes(raw), content_encoding, encoding, max_body
            )
            return reply(200, body, encoding)
        except ClientDisconnect:
            return error(400, _INVALID_ARGUMENT, "client went away mid-body", encoding)
        except PayloadTooLarge as exc:
            return error(413, _INVALID_ARGUMENT, str(exc), encoding)
        except OTLPDecodeError as exc:
            return error(400, _INVALID_ARGUMENT, str(exc), encoding)
        except sqlite3.OperationalError as exc:  # busy or locked: the exporter retries 503
            log.warning("OTLP %s not stored: %s", signal, exc)
            response = error(503, _UNAVAILABLE, f"store busy: {exc}", encoding)
            response.headers["retry-after"] = "1"
            return response
        except Exception as exc:
            log.exception("OTLP %s export failed", signal)
            return error(500, _INTERNAL, f"{type(exc).__name__}: {exc}", encoding)

    def endpoint(signal: _Signal) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            return await receive(request, signal)

        return handle

    return [
        Route("/v1/traces", endpoint("traces"), methods=["POST"]),
        Route("/v1/logs", endpoint("logs"), methods=["POST"]),
    ]
