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
from contextvars import ContextVar
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


#: Low 64 bits of an int: the span id in the 192 random bits of an unsampled request.
_LOW64 = (1 << 64) - 1


class ServerSpans:
    """Starts and ends the SERVER span of each request (the middleware's tracing seam).

    Most of the cost is the SDK's span, so glassbox avoids one where that changes
    nothing that is recorded, propagated or logged:

    * a request whose trace is not sampled - a new trace losing glassbox's head sampling
      (``ratio``), or a caller's unsampled ``traceparent`` under the SDK's parent-based
      sampler, which drops those - gets no SDK span: random ids (hex made in C from the
      bytes), and in the current OpenTelemetry context a NonRecordingSpan whose
      SpanContext is only built if something asks for it (a log line, an outgoing call,
      which then propagates ``sampled=0``);
    * the Context holding a span is built directly and set on OpenTelemetry's own
      ContextVar (what ``set_span_in_context`` + ``attach`` do, without their calls);
    * a sampled span's ``http.*``/``url.*``/``server.*`` attributes, plain ``str`` and
      ``int`` values that the SDK's per-value cleaning keeps as they are, are written
      straight into the SDK span's attribute map when the sampler cannot read them (the
      SDK's own samplers) and no attribute limit applies; otherwise they go through the
      public API (given to ``start_span``, so a sampler sees them).

    :meth:`open` / :meth:`close` are the ASGI middleware's calls; :meth:`start` /
    :meth:`end` give the span object itself (the WSGI middleware's).
    """

    def __init__(self, provider: Any = None, ratio: float = 1.0) -> None:
        from opentelemetry import context, trace
        from opentelemetry.context.context import Context
        from opentelemetry.trace import (
            INVALID_SPAN,
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            TraceFlags,
            TraceState,
        )
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
        self._Context = Context
        # The key OpenTelemetry keeps the current span under, found through the public API.
        (self._span_key,) = trace.set_span_in_context(INVALID_SPAN, Context()).keys()
        self._Unsampled = _unsampled_span_class(
            NonRecordingSpan, SpanContext, TraceFlags(TraceFlags.DEFAULT), TraceState()
        )
        # The ContextVar behind context.attach/detach when it is the default runtime
        # (attach is var.set, detach var.reset); another runtime goes through the API.
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        runtime = getattr(context, "_RUNTIME_CONTEXT", None)
        var = getattr(runtime, "_current_context", None)
        self._var: ContextVar[Any] | None = (
            var
            if type(runtime) is ContextVarsRuntimeContext and isinstance(var, ContextVar)
            else None
        )
        sampler = getattr(self._tracer, "sampler", None)
        # Samplers known not to read attributes: start attributes may be added after start.
        self._blind = _attribute_blind(sampler)
        # A caller's unsampled traceparent needs no SDK span when the sampler drops it.
        self._drops_unsampled_parent = _drops_unsampled_remote_parent(sampler)
        types: tuple[Any, Any] = _sdk_span_types()
        self._sdk_span, self._bounded = types

    def open(
        self, method: str, scope: Any, traceparent: str | None
    ) -> tuple[Any, Any, str, str, str, bool]:
        """Start the span and make it current.

        Returns ``(span, token, trace_hex, span_hex, flags, recording)``: the ids in hex
        and the flags (``"01"`` sampled, ``"00"`` not) as the ``traceresponse`` header
        and log lines carry them. A span that is not ``recording`` needs no :meth:`end`;
        :meth:`close` restores the context then.
        """
        if not traceparent and self._random() >= self.ratio:
            # A new trace, not sampled: the hot path at a low ratio (_open_unsampled's
            # work, written out). 192 random bits: trace id, then span id.
            ids = self._bits(192)
            if not ids >> 64 or not ids & _LOW64:  # an all-zero id is invalid
                ids |= (0 if ids >> 64 else 1 << 64) | (0 if ids & _LOW64 else 1)
            span = self._Unsampled()
            span._ids = ids
            var = self._var
            if var is not None:
                current = var.get()
                token = var.set(
                    self._Context({**current, self._span_key: span})
                    if current
                    else self._Context({self._span_key: span})
                )
            else:
                token = self._context.attach(self._trace.set_span_in_context(span))
            hexed = ids.to_bytes(24, "big").hex()
            return span, token, hexed[:32], hexed[32:], "00", False
        return self._open(method, scope, traceparent)

    def _open(
        self, method: str, scope: Any, traceparent: str | None
    ) -> tuple[Any, Any, str, str, str, bool]:
        """:meth:`open` for a request with a ``traceparent`` or a sampled new trace."""
        parent = None
        if traceparent:
            ids = parse_traceparent(traceparent)
            if ids is not None:
                if not ids[2] & 1 and self._drops_unsampled_parent:
                    return self._open_unsampled(ids[0])
                remote = self._SpanContext(
                    ids[0], ids[1], is_remote=True, trace_flags=self._TraceFlags(ids[2] & 1)
                )
                parent = self._with_span(self._NonRecordingSpan(remote))
            elif self._random() >= self.ratio:  # malformed: a new trace
                return self._open_unsampled(self._bits(128) or 1)
        if self._blind and self._bounded is not None:
            span = self._tracer.start_span(method, context=parent, kind=self._kind)
            if span.is_recording():  # attributes only for a span that keeps them
                attributes = _start_attributes(method, scope)
                if not self._put(span, attributes):
                    span.set_attributes(attributes)
        else:
            span = self._tracer.start_span(
                method, context=parent, kind=self._kind, attributes=_start_attributes(method, scope)
            )
        var = self._var
        current = self._with_span(span)
        token = var.set(current) if var is not None else self._context.attach(current)
        ctx = span.get_span_context()
        hexed = ((ctx.trace_id << 64) | ctx.span_id).to_bytes(24, "big").hex()
        flags = "01" if ctx.trace_flags & 1 else "00"
        return span, token, hexed[:32], hexed[32:], flags, span.is_recording()

    def _open_unsampled(self, trace_id: int) -> tuple[Any, Any, str, str, str, bool]:
        """A not-sampled span in trace ``trace_id``: ids for logs and propagation only."""
        ids = (trace_id << 64) | (self._bits(64) or 1)
        span = self._Unsampled()
        span._ids = ids
        var = self._var
        token = (
            var.set(self._with_span(span))
            if var is not None
            else self._context.attach(self._trace.set_span_in_context(span))
        )
        hexed = ids.to_bytes(24, "big").hex()
        return span, token, hexed[:32], hexed[32:], "00", False

    def _with_span(self, span: Any) -> Any:
        """The current Context with ``span`` as its span (``set_span_in_context``)."""
        var = self._var
        if var is None:
            return self._trace.set_span_in_context(span)
        current = var.get()
        if current:
            return self._Context({**current, self._span_key: span})
        return self._Context({self._span_key: span})

    def close(self, token: Any) -> None:
        """Restore the context :meth:`open` replaced (for a span that is not recording)."""
        var = self._var
        if var is None:
            self._context.detach(token)
            return
        try:
            var.reset(token)
        except Exception:  # as context.detach: log, never raise
            self._context.detach(token)

    def start(self, method: str, scope: Any, traceparent: str | None) -> tuple[Any, object]:
        """Start the span (parented on ``traceparent``) and make it current."""
        opened = self.open(method, scope, traceparent)
        return opened[0], opened[1]

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
        if span.is_recording():
            attributes: dict[str, Any] = {
                "http.route": route,
                "http.response.status_code": status,
            }
            if error is not None:
                span.record_exception(error)
                attributes["error.type"] = type(error).__name__
                span.set_status(self._error)
            elif status >= 500:
                attributes["error.type"] = str(status)
                span.set_status(self._error)
            name = f"{method} {route}"
            if not self._put(span, attributes, name):
                span.update_name(name)
                span.set_attributes(attributes)
            span.end()
        if detach:
            self.close(token)

    def _put(self, span: Any, attributes: dict[str, Any], name: str | None = None) -> bool:
        """Add str/int ``attributes`` (and the ``name``) to an SDK span directly.

        What ``span.set_attributes`` (and ``update_name``) would store, without the
        per-value cleaning: only for the SDK's own span class, while it is not ended,
        with no length limit on values and room under the count limit. False, having
        changed nothing, when those do not hold.
        """
        if type(span) is not self._sdk_span:
            return False
        try:
            bounded = span._attributes
            if (
                type(bounded) is not self._bounded
                or bounded.max_value_len is not None
                or bounded._immutable
                or span._end_time is not None
            ):
                return False
            stored = bounded._dict
            maxlen = bounded.maxlen
            lock = bounded._lock
        except AttributeError:  # another SDK version's span
            return False
        if maxlen is not None and len(stored) + len(attributes) > maxlen:
            return False
        for value in attributes.values():
            if type(value) is not str and type(value) is not int:
                return False
        with lock:
            if stored:  # as the SDK: a key set again moves to the end
                for key in attributes:
                    stored.pop(key, None)
            stored.update(attributes)
            if name is not None:
                span._name = name
        return True


def _start_attributes(method: str, scope: Any) -> dict[str, Any]:
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
    return attributes


def _unsampled_span_class(
    non_recording: type, span_context: type, flags: Any, state: Any
) -> type[Any]:
    """A NonRecordingSpan whose SpanContext is built from ``_ids`` when first asked for.

    ``_ids`` is ``trace_id << 64 | span_id``. Most unsampled requests never look at their
    span (nothing logs, nothing calls out), so the SpanContext waits until something
    does. It is built as the tuple it is when that equals what the validating
    constructor makes (checked here), else by that constructor.
    """
    probe = (0x1234, 0x56, False, flags, state, True)
    try:
        direct = bool(
            tuple.__new__(span_context, probe) == span_context(0x1234, 0x56, False, flags, state)
        )
    except Exception:  # a SpanContext of another shape: use its constructor
        direct = False

    class UnsampledSpan(non_recording):  # type: ignore[misc]
        """The span of a request glassbox did not sample: ids only, not recording."""

        # Made without arguments (no Python __init__ to run), then _ids is set.
        __init__ = object.__init__
        _ids: int = 0
        _made: Any = None

        @property
        def _context(self) -> Any:  # NonRecordingSpan's attribute, for its own methods
            made = self._made
            if made is None:
                ids = self._ids
                if direct:
                    made = tuple.__new__(
                        span_context, (ids >> 64, ids & _LOW64, False, flags, state, True)
                    )
                else:
                    made = span_context(ids >> 64, ids & _LOW64, False, flags, state)
                self._made = made
            return made

        def get_span_context(self) -> Any:
            return self._context

    made: type[Any] = UnsampledSpan
    return made


def _sdk_samplers() -> tuple[type, ...] | None:
    try:
        from opentelemetry.sdk.trace import sampling
    except ImportError:  # pragma: no cover - the SDK is optional
        return None
    return sampling.StaticSampler, sampling.TraceIdRatioBased, sampling.ParentBased


_PARENT_DELEGATES = (
    "_root",
    "_remote_parent_sampled",
    "_remote_parent_not_sampled",
    "_local_parent_sampled",
    "_local_parent_not_sampled",
)


def _attribute_blind(sampler: Any) -> bool:
    """True for the SDK's own samplers (and compositions of them): none reads attributes."""
    kinds = _sdk_samplers()
    if kinds is None or sampler is None:
        return False
    static, ratio, parent = kinds
    if type(sampler).__module__ != static.__module__:
        return False  # a subclass elsewhere may override should_sample
    if isinstance(sampler, static | ratio):
        return True
    if isinstance(sampler, parent):
        delegates = [getattr(sampler, name, None) for name in _PARENT_DELEGATES]
        return all(d is not None and _attribute_blind(d) for d in delegates)
    return False


def _drops_unsampled_remote_parent(sampler: Any) -> bool:
    """True if ``sampler`` is the SDK's ParentBased dropping spans of unsampled callers."""
    kinds = _sdk_samplers()
    if kinds is None or sampler is None:
        return False
    static, _, parent = kinds
    if type(sampler).__module__ != static.__module__ or not isinstance(sampler, parent):
        return False
    delegate = getattr(sampler, "_remote_parent_not_sampled", None)
    from opentelemetry.sdk.trace.sampling import Decision

    return type(delegate) is static and getattr(delegate, "_decision", None) is Decision.DROP


def _sdk_span_types() -> tuple[type | None, type | None]:
    """The SDK's span class and its attribute map's class, if attributes can be put."""
    try:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk import trace as sdk_trace
    except ImportError:  # pragma: no cover - the SDK is optional
        return None, None
    span = getattr(sdk_trace, "_Span", None)
    if span is None or not all(
        hasattr(BoundedAttributes(), name)
        for name in ("_dict", "_lock", "_immutable", "maxlen", "max_value_len")
    ):
        return None, None
    return span, BoundedAttributes


def header_values(headers: Iterable[tuple[bytes, bytes]], *names: bytes) -> dict[bytes, str]:
    """The first value of each wanted header (names lower-case)."""
    found: dict[bytes, str] = {}
    for raw, value in headers:
        key = raw.lower()
        if key in names and key not in found:
            found[key] = value.decode("latin-1")
    return found
