"""Structured logs: structlog JSON lines on stdout that carry the trace and request ids.

:func:`configure_logging` sets up structlog once and routes the standard library's
logging (uvicorn, gunicorn, libraries) through the same processors, so every line a
service prints is one JSON object: ``timestamp`` (ISO-8601 UTC), ``level``, ``logger``,
``event``, ``service``, ``version``, ``env``, ``trace_id``, ``span_id``, ``request_id``.
``GLASSBOX_LOG_FORMAT=console`` (or a TTY on stdout) gives a readable format instead.

Values under sensitive keys (authorization, cookie, password, token, secret, api_key,
...) are replaced by ``[REDACTED]``; JSON rendering escapes newlines, so user input
cannot forge a log line.

When ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and
the OpenTelemetry SDK is installed, every line is also exported over OTLP/HTTP (a
``BatchLogRecordProcessor`` into an ``OTLPLogExporter``): the same redacted fields,
``event`` as the body, ``level`` as the severity, ``logger`` as the instrumentation
scope, ``trace_id``/``span_id`` as the record's trace context, the other fields as
attributes, ``service``/``version``/``env`` as the resource. The export is a processor
in the chain that structlog's lines, the standard library's (through the root
handler's formatter) and the access log all pass, after redaction.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
import structlog

__all__ = [
    "REDACTED",
    "RequestContext",
    "configure_logging",
    "current_request",
    "get_logger",
    "redact",
]

REDACTED: Final = "[REDACTED]"
_SENSITIVE: Final = re.compile(
    r"authorization|cookie|passw(or)?d|secret|token|api[_-]?key|private[_-]?key|credential|session",
    re.IGNORECASE,
)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

LogFormat = Literal["json", "console", "auto"]


@dataclass(slots=True)
class RequestContext:
    """Ids of the request being handled, for log lines written while handling it."""

    request_id: str
    trace_id: str | None = None
    span_id: str | None = None


_request: ContextVar[RequestContext | None] = ContextVar("glassbox_request", default=None)


def current_request() -> ContextVar[RequestContext | None]:
    """The context variable the middleware sets for each request."""
    return _request


def _trace_ids() -> tuple[str, str] | None:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - otel is optional
        return None
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
    return None


def add_request_context(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add trace_id/span_id (from the active span) and request_id (from the request)."""
    request = _request.get()
    ids = _trace_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    elif request is not None and request.trace_id:
        event.setdefault("trace_id", request.trace_id)
        event.setdefault("span_id", request.span_id)
    if request is not None:
        event.setdefault("request_id", request.request_id)
    return event


#: Nesting searched for sensitive keys; a container deeper than this is replaced whole.
_REDACT_DEPTH: Final = 16


def _sensitive(key: object) -> bool:
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    return isinstance(key, str) and _SENSITIVE.search(key) is not None


def _redact_value(value: Any, depth: int) -> Any:
    if not isinstance(value, Mapping | list | tuple) or not value:
        return value
    if depth > _REDACT_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _sensitive(k) else _redact_value(v, depth + 1) for k, v in value.items()
        }
    if all(isinstance(item, tuple | list) and len(item) == 2 for item in value):
        # header lists: [(name, value), ...]
        return [
            (k, REDACTED) if _sensitive(k) else (k, _redact_value(v, depth + 1)) for k, v in value
        ]
    items = [_redact_value(item, depth + 1) for item in value]
    return items if isinstance(value, list) else tuple(items)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace values under sensitive keys, also in nested mappings and header lists."""
    for key in list(event):
        if key == "event":
            continue
        if _SENSITIVE.search(key):
            event[key] = REDACTED
        else:
            value = event[key]
            if isinstance(value, Mapping | list | tuple):
                event[key] = _redact_value(value, 1)
    return event


class _ServiceFields:
    def __init__(self, service: str, version: str, env: str) -> None:
        self.fields = {"service": service, "version": version, "env": env}

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in self.fields.items():
            event.setdefault(key, value)
        return event


def _json(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()


def _sanitize_console(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """In the console format, control characters are shown escaped, never executed."""
    for key, value in event.items():
        if isinstance(value, str) and _CONTROL.search(value):
            event[key] = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return event


def _renderer(fmt: LogFormat) -> Any:
    console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    if console:
        return structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    return structlog.processors.JSONRenderer(serializer=_json)


def configure_logging(
    *, service: str, version: str, env: str, level: str = "INFO", fmt: LogFormat = "auto"
) -> None:
    """Configure structlog and the standard library's root logger once for the process."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    renderer = _renderer(fmt)
    console = not isinstance(renderer, structlog.processors.JSONRenderer)
    otlp = _otlp_export(service, version, env)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _ServiceFields(service, version, env),
        add_request_context,
        redact,
        structlog.processors.format_exc_info,
    ]
    if otlp is not None:
        shared.append(otlp)  # after redaction; before console escaping (OTLP keeps data)
    if console:
        shared.append(_sanitize_console)
    _generation[0] += 1
    _fast[0] = None if console else _JsonLines(service, version, env, numeric, sys.stdout, otlp)
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler._glassbox = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):  # ours from an earlier call, or a plain basicConfig one
        if getattr(old, "_glassbox", False) or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error", "gunicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    access = logging.getLogger("uvicorn.access")  # glassbox writes the one access line
    access.handlers.clear()
    access.propagate = False
    access.disabled = True


def get_logger(name: str = "app") -> Any:
    """A structlog logger whose lines carry ``logger=name``.

    Safe to create at import time, before :func:`configure_logging` runs: it binds
    against the configuration in force when it logs.
    """
    return _NamedLogger(name)


class _NamedLogger:
    """Re-binds ``logger=name`` after each (re)configuration; cheap in between."""

    __slots__ = ("_bound", "_generation", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._generation = -1
        self._bound: Any = None

    def _logger(self) -> Any:
        if self._generation != _generation[0]:
            self._bound = structlog.get_logger().bind(logger=self._name)
            self._generation = _generation[0]
        return self._bound

    def __getattr__(self, method: str) -> Any:
        return getattr(self._logger(), method)


_generation = [0]


_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._:\-]{1,128}\Z")


def sane_request_id(value: str | None) -> str | None:
    """``value`` if it is a safe request id (1-128 of ``A-Za-z0-9._:-``), else None."""
    if value and _REQUEST_ID_RE.match(value):
        return value
    return None


class _JsonLines:
    """The access log's fast path: the JSON line structlog would write, built directly.

    Same keys, timestamp format and stream as the structlog pipeline, without the
    generic processors (every field here is known and safe: nothing to redact).
    """

    def __init__(
        self,
        service: str,
        version: str,
        env: str,
        level: int,
        stream: Any,
        export: _OTLPExport | None = None,
    ) -> None:
        self.static = {"service": service, "version": version, "env": env}
        self.level = level
        self.stream = stream
        self.export = export
        self._second = -1
        self._prefix = ""

    def timestamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"

    def write(self, record: dict[str, Any]) -> None:
        record.update(self.static)
        if self.export is not None:
            self.export(None, record["level"], record)
        self.stream.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE).decode())
        self.stream.flush()


_fast: list[_JsonLines | None] = [None]


# -- OTLP export -----------------------------------------------------------------------

# Fields that are not attributes: the body, severity, time, scope and trace context,
# and structlog's bookkeeping for standard-library records.
_NOT_ATTRIBUTES: Final = frozenset(
    {"event", "level", "timestamp", "logger", "trace_id", "span_id", "_record", "_from_structlog"}
)
_SEVERITY: Final = {  # level -> (OTLP SeverityNumber, text as the SDK's logging handler sends it)
    "debug": (5, "DEBUG"),
    "info": (9, "INFO"),
    "warning": (13, "WARN"),
    "warn": (13, "WARN"),
    "error": (17, "ERROR"),
    "exception": (17, "ERROR"),
    "critical": (21, "FATAL"),
    "fatal": (21, "FATAL"),
}
_INT64: Final = range(-(2**63), 2**63)


def _attribute(value: Any) -> Any:
    """An OTLP attribute value: str/bool/int/float as is, anything else as JSON text."""
    if isinstance(value, str | bool | float) or (isinstance(value, int) and value in _INT64):
        return value
    if value is None:
        return None
    try:
        return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an int over 64 bits inside a list
        return repr(value)


def _hex_id(value: Any, digits: int) -> int:
    if isinstance(value, str) and len(value) == digits:
        try:
            return int(value, 16)
        except ValueError:
            return 0
    return 0


class _OTLPExport:
    """Processor that also sends each (redacted) event to an OpenTelemetry LoggerProvider.

    Never raises and never recurses: events logged while exporting (the SDK's own
    warnings, the HTTP client's debug lines under OpenTelemetry's
    suppress-instrumentation context) are not exported.
    """

    def __init__(self, provider: Any, service: str, version: str, env: str) -> None:
        from opentelemetry import trace
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value

        self.provider = provider
        self._severity = SeverityNumber
        self.resource_fields = {"service": service, "version": version, "env": env}
        self._loggers: dict[str, Any] = {}
        self._local = threading.local()
        self._get_value = get_value
        self._suppress_key = _SUPPRESS_INSTRUMENTATION_KEY
        self._current_span = trace.get_current_span
        self._trace = trace
        self._failed = False

    def __call__(
        self, _: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if getattr(self._local, "busy", False) or self._get_value(self._suppress_key):
            return event
        record = event.get("_record")
        name = str(event.get("logger") or (record.name if record is not None else "root"))
        if name.startswith("opentelemetry"):
            return event
        self._local.busy = True
        try:
            self._emit(event, record, name, method)
        except Exception as exc:  # log export must never break logging
            if not self._failed:
                self._failed = True
                sys.stderr.write(f"glassbox: exporting logs over OTLP failed: {exc!r}\n")
        finally:
            self._local.busy = False
        return event

    def _emit(self, event: Mapping[str, Any], record: Any, name: str, method: str) -> None:
        level = str(event.get("level") or method).lower()
        number, text = _SEVERITY.get(level, (9, "INFO"))
        attributes: dict[str, Any] = {}
        for key, value in event.items():
            if key in _NOT_ATTRIBUTES or self.resource_fields.get(key, _MISSING) == value:
                continue
            converted = _attribute(value)
            if converted is not None:
                attributes["exception.stacktrace" if key == "exception" else key] = converted
        body = event.get("event")
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = self.provider.get_logger(name)
        logger.emit(
            timestamp=int(record.created * 1e9) if record is not None else time.time_ns(),
            context=self._context(event),
            severity_number=self._severity(number),
            severity_text=text,
            body=body if isinstance(body, str) else _attribute(body),
            attributes=attributes,
        )

    def _context(self, event: Mapping[str, Any]) -> Any:
        """The line's own trace_id/span_id as the record's trace context."""
        trace_id = _hex_id(event.get("trace_id"), 32)
        span_id = _hex_id(event.get("span_id"), 16)
        current = self._current_span().get_span_context()
        if not (trace_id and span_id) or (
            current.trace_id == trace_id and current.span_id == span_id
        ):
            return None  # the active span's context (the SDK's default)
        t = self._trace
        remote = t.SpanContext(trace_id, span_id, is_remote=True, trace_flags=t.TraceFlags(0))
        return t.set_span_in_context(t.NonRecordingSpan(remote))


_MISSING: Final = object()
#: (configuration, export, whether glassbox created the provider) of the last call
_otlp: list[tuple[tuple[str, ...], _OTLPExport, bool] | None] = [None]


def _otlp_export(service: str, version: str, env: str) -> _OTLPExport | None:
    """The OTLP log export for this configuration, if an endpoint is set and the SDK is here.

    One LoggerProvider per (service, version, env, endpoints), reused by later calls;
    a global SDK LoggerProvider the application installed is used instead of a new one.
    """
    endpoints = (
        os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", ""),
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
    )
    if not any(endpoints):
        return None
    try:
        from opentelemetry._logs import get_logger_provider
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
    except ImportError:  # pragma: no cover - otel is optional
        return None
    key = (service, version, env, *endpoints)
    current = _otlp[0]
    if current is not None and current[0] == key:
        return current[1]
    if current is not None and current[2]:  # flushing may wait on the network: not here
        old = current[1].provider
        threading.Thread(target=old.shutdown, name="glassbox-otlp-logs-shutdown").start()
    installed = get_logger_provider()
    owned = not isinstance(installed, LoggerProvider)
    provider: Any = installed
    if owned:
        resource = Resource.create(
            {"service.name": service, "service.version": version, "deployment.environment": env}
        )
        provider = LoggerProvider(resource=resource)
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    export = _OTLPExport(provider, service, version, env)
    _otlp[0] = (key, export, owned)
    return export


class AccessLog:
    """Writes the one access-log line per request; successful requests can be sampled."""

    def __init__(self, *, sample: float = 1.0, path_max: int = 200) -> None:
        if not 0 <= sample <= 1:
            raise ValueError(f"access-log sample ratio must be within [0, 1], got {sample}")
        import random

        self._random = random.random
        self.sample = sample
        self.path_max = path_max
        self._log = get_logger("glassbox.access")

    def write(
        self,
        *,
        method: str,
        route: str,
        path: str,
        status: int,
        duration: float,
        trace_id: str | None = None,
        span_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        if status < 400 and self.sample < 1 and self._random() >= self.sample:
            return
        if len(path) > self.path_max:
            path = path[: self.path_max] + "..."
        if not path.isascii():  # lone surrogates would make the JSON encoder raise
            path = path.encode("utf-8", "backslashreplace").decode("utf-8")
        fast = _fast[0]
        if fast is not None:
            level = logging.ERROR if status >= 500 else logging.INFO
            if level < fast.level:
                return
            record: dict[str, Any] = {
                "logger": "glassbox.access",
                "method": method,
                "route": route,
                "path": path,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
                "event": "request",
                "level": "error" if status >= 500 else "info",
                "timestamp": fast.timestamp(),
            }
            if trace_id is not None:
                record["trace_id"] = trace_id
                record["span_id"] = span_id
            if request_id is not None:
                record["request_id"] = request_id
            fast.write(record)
            return
        log = self._log.error if status >= 500 else self._log.info
        log(
            "request",
            method=method,
            route=route,
            path=path,
            status=status,
            duration_ms=round(duration * 1000, 3),
        )
