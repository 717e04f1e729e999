"""OpenTelemetry set-up and the one server span per request.

:func:`configure_tracing` builds the SDK's TracerProvider from glassbox settings and
the standard ``OTEL_*`` variables: resource (``service.name``, ``service.version``,
``deployment.environment``, plus ``OTEL_RESOURCE_ATTRIBUTES``), a parent-based
trace-id-ratio sampler (``OTEL_TRACES_SAMPLER_ARG``, or ``trace_sample_ratio``) and an
OTLP/HTTP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``)
is set. A provider the application installed itself is left alone.

:class:`ServerSpans` starts one SERVER span per request (no per-message send/receive
spans), continues W3C ``traceparent`` from the caller, names the span
``{method} {route}`` once the route template is known, and records exceptions.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from typing import Any

__all__ = ["ServerSpans", "configure_tracing", "parse_traceparent"]

_HEX = frozenset("0123456789abcdef")


def parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """(trace_id, span_id, flags) from a W3C ``traceparent`` value, None if malformed."""
    parts = value.strip().split("-")
    if len(parts) < 4:
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if (
        len(version) != 2
        or version == "ff"
        or len(trace_id) != 32
        or len(span_id) != 16
        or len(flags) != 2
        or not set(version + trace_id + span_id + flags) <= _HEX
    ):
        return None
    if version == "00" and len(parts) != 4:
        return None
    tid, sid = int(trace_id, 16), int(span_id, 16)
    if tid == 0 or sid == 0:
        return None
    return tid, sid, int(flags, 16)


def _ratio(explicit: float | None) -> float:
    if explicit is not None:
        return explicit
    raw = os.environ.get("OTEL_TRACES_SAMPLER_ARG")
    if raw is None:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        from glassbox.exceptions import ConfigurationError

        raise ConfigurationError(
            f"OTEL_TRACES_SAMPLER_ARG={raw!r} is not a number between 0 and 1"
        ) from None
    if not 0 <= value <= 1:
        from glassbox.exceptions import ConfigurationError

        raise ConfigurationError(f"OTEL_TRACES_SAMPLER_ARG={raw!r} must be between 0 and 1")
    return value


def configure_tracing(
    *,
    service: str,
    version: str,
    env: str,
    sample_ratio: float | None = None,
    exporter: Any = None,
) -> tuple[Any, float]:
    """The global TracerProvider (created unless one is installed) and the root ratio.

    The ratio is for :class:`ServerSpans` to apply to new traces; it is 1.0 for a
    provider the application installed (its own sampler decides).
    """
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current, 1.0
    resource = Resource.create(
        {"service.name": service, "service.version": version, "deployment.environment": env}
    )
    # Head sampling of new traces happens in ServerSpans (an unsampled request then
    # costs no SDK span at all); the SDK follows the parent's decision otherwise.
    provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
    if exporter is None and (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider, _ratio(sample_ratio)


class ServerSpans:
    """Starts and ends the SERVER span of each request (the middleware's tracing seam)."""

    def __init__(self, provider: Any = None, ratio: float = 1.0) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
        from opentelemetry.trace.status import Status, StatusCode

        self._tracer = (provider or trace.get_tracer_provider()).get_tracer("glassbox")
        self._context = context
        self._trace = trace
        self._kind = SpanKind.SERVER
        self._SpanContext = SpanContext
        self._NonRecordingSpan = NonRecordingSpan
        self._TraceFlags = TraceFlags
        self._error = Status(StatusCode.ERROR)
        self.ratio = ratio
        self._random = random.random
        self._bits = random.getrandbits

    def start(self, method: str, scope: Any, traceparent: str | None) -> tuple[Any, object]:
        """Start the span (parented on ``traceparent``) and make it current."""
        parent = None
        ids = parse_traceparent(traceparent) if traceparent else None
        if ids is not None:
            remote = self._SpanContext(
                ids[0], ids[1], is_remote=True, trace_flags=self._TraceFlags(ids[2] & 1)
            )
            parent = self._trace.set_span_in_context(self._NonRecordingSpan(remote))
        elif self.ratio < 1 and self._random() >= self.ratio:
            # Not sampled: ids for logs and propagation, but no SDK span to build.
            local = self._SpanContext(
                self._bits(128) or 1,
                self._bits(64) or 1,
                is_remote=False,
                trace_flags=self._TraceFlags(0),
            )
            unsampled = self._NonRecordingSpan(local)
            token = self._context.attach(self._trace.set_span_in_context(unsampled))
            return unsampled, token
        server = scope.get("server")
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if server:
            attributes["server.address"] = server[0]
            if server[1] is not None:
                attributes["server.port"] = server[1]
        span = self._tracer.start_span(
            method, context=parent, kind=self._kind, attributes=attributes
        )
        token = self._context.attach(self._trace.set_span_in_context(span))
        return span, token

    def end(
        self,
        span: Any,
        token: object,
        *,
        method: str,
        route: str,
        status: int,
        error: BaseException | None,
        detach: bool,
    ) -> None:
        """Name the span ``{method} {route}``, set status attributes, end it."""
        span.update_name(f"{method} {route}")
        if span.is_recording():
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if error is not None:
                span.record_exception(error)
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(self._error)
            elif status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(self._error)
        span.end()
        if detach:
            self._context.detach(token)  # type: ignore[arg-type]


def header_values(headers: Iterable[tuple[bytes, bytes]], *names: bytes) -> dict[bytes, str]:
    """The first value of each wanted header (names lower-case)."""
    wanted = set(names)
    found: dict[bytes, str] = {}
    for raw, value in headers:
        key = raw.lower()
        if key in wanted and key not in found:
            found[key] = value.decode("latin-1")
    return found
