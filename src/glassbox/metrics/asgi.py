"""Pure-ASGI RED middleware; serves ``/metrics`` too. Imports no framework."""

from __future__ import annotations

import asyncio
import os
import zlib
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter
from typing import Any

from glassbox._auth import Protection
from glassbox.health.endpoints import HealthEndpoints, Kind, health_paths
from glassbox.logs import AccessLog, RequestContext, current_request, sane_request_id
from glassbox.metrics.catalogue import (
    DEFAULT_EXCLUDED_PATHS,
    OTHER_METHOD,
    STANDARD_METHODS,
    RedCatalogue,
)
from glassbox.metrics.exposition import (
    Source,
    content_type,
    deny,
    wants_gzip,
    wants_openmetrics,
)
from glassbox.metrics.registry import REGISTRY, Registry
from glassbox.metrics.routes import RouteResolver, unmatched
from glassbox.tracing import ServerSpans, header_values

__all__ = ["ASGIApp", "MetricsMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_METRICS = object()
_EXCLUDED = object()
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_STATUS = {code: str(code) for code in range(100, 600)}
#: Characters rendered before a chunk of the /metrics body is sent.
_CHUNK_CHARS = 256 * 1024


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            try:
                return bytes(value).decode("latin-1")
            except (TypeError, ValueError):
                return None
    return None


def path_set(paths: Iterable[str]) -> frozenset[str]:
    """Exact paths plus their trailing-slash twins."""
    out: set[str] = set()
    for path in paths:
        out.add(path)
        out.add(path.rstrip("/") or "/")
        out.add(path.rstrip("/") + "/")
    return frozenset(out)


class TraceContext:
    """Reads the active OpenTelemetry span for exemplars, if OpenTelemetry is installed."""

    def __init__(self) -> None:
        try:
            from opentelemetry import trace
        except ImportError:  # pragma: no cover - otel is optional
            self._get: Callable[[], Any] | None = None
        else:
            self._get = trace.get_current_span

    @property
    def available(self) -> bool:
        return self._get is not None

    def current(self) -> tuple[int, int] | None:
        """(trace_id, span_id) of the sampled current span, else None."""
        if self._get is None:
            return None
        ctx = self._get().get_span_context()
        if ctx.is_valid and ctx.trace_flags.sampled:
            return ctx.trace_id, ctx.span_id
        return None


class MetricsMiddleware:
    """Records RED metrics for every HTTP request and answers ``metrics_path``.

    ``route_resolver`` maps the scope, after the app ran, to the route template
    (see :mod:`glassbox.metrics.routes`); without one, every request shares the
    ``<unmatched>`` route unless something put ``glassbox.route`` in the scope.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        catalogue: RedCatalogue,
        registry: Registry = REGISTRY,
        route_resolver: RouteResolver = unmatched,
        excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        metrics_path: str | None = "/metrics",
        source: Source | None = None,
        protection: Protection = Protection(),  # noqa: B008 - immutable value object
        exemplars: bool = True,
        spans: ServerSpans | None = None,
        access_log: AccessLog | None = None,
        request_id: bool = False,
        health: HealthEndpoints | None = None,
        health_prefix: str = "/health",
    ) -> None:
        self.app = app
        self._spans = spans
        self._access_log = access_log
        self._request_id = request_id
        self._full = spans is not None or access_log is not None or request_id
        self._exemplars = exemplars
        self.store = registry.red_store(catalogue)
        self._bounds = self.store.catalogue.buckets
        self._resolve = route_resolver
        # a direct view of the resolver's route map, read inline on the hot path
        self._by_route: dict[int, tuple[Any, str]] = getattr(route_resolver, "by_route", {})
        # one dict lookup per request decides: measure, pass through, or serve /metrics
        self._special: dict[str, object] = dict.fromkeys(path_set(excluded_paths), _EXCLUDED)
        if metrics_path:
            self._special.update(dict.fromkeys(path_set([metrics_path]), _METRICS))
        self._health_endpoints = health
        if health is not None:
            self._special.update(health_paths(health_prefix))
        self._source: Source = source if source is not None else registry
        self._protection = protection
        trace = TraceContext()
        self._trace = trace if exemplars and trace.available else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path")
        if root and path.startswith(root):  # uvicorn --root-path puts it in front
            path = path[len(root) :] or "/"
        special = self._special.get(path)
        if special is not None:
            if special is _METRICS:
                await self.serve_metrics(scope, send)
            elif special is _EXCLUDED:
                await self.app(scope, receive, send)
            else:  # a health endpoint: answered here, no middleware layer of its own
                await self._health(special, scope, send)  # type: ignore[arg-type]
            return

        if self._full:
            await self._call_full(scope, receive, send)
            return

        status = 0
        sent = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                sent += len(message.get("body", b""))
            await send(message)

        inflight = self.store.in_progress
        inflight[0] += 1
        error: BaseException | None = None
        start = perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            if not status:
                status = 499  # the client went away before a response started
            raise
        except BaseException as exc:
            error = exc
            if not status:
                status = 500
            raise
        finally:
            # The hot path, inlined (a call frame costs a measurable share of the
            # overhead budget, see benchmarks/).
            elapsed = perf_counter() - start
            inflight[0] -= 1
            method = scope.get("method", "GET")
            if method not in STANDARD_METHODS:
                method = OTHER_METHOD
            matched = scope.get("route")
            hit = self._by_route.get(id(matched))
            route = hit[1] if hit is not None and hit[0] is matched else self._resolve(scope)
            key = (method, route, _STATUS.get(status) or "500")
            series = self.store.series
            row = series.get(key)
            if row is None:
                row = series[key] = self.store.new_series()
            row[bisect_left(self._bounds, elapsed)] += 1
            row[-3] += elapsed
            row[-1] += sent
            if error is not None or method in _BODY_METHODS or self._trace is not None:
                self._record_extras(scope, key, elapsed, error, None)

    def _record_extras(
        self,
        scope: Scope,
        key: tuple[str, str, str],
        elapsed: float,
        error: BaseException | None,
        span_ids: tuple[int, int] | None,
    ) -> None:
        """The rarer parts: request body size, exceptions, exemplars."""
        store = self.store
        method, route, _ = key
        if method in _BODY_METHODS:
            length = _header(scope, b"content-length")
            if length is not None and length.isascii() and length.isdigit():
                store.series[key][-2] += int(length)
        if error is not None:
            ekey = (method, route, type(error).__name__)
            store.exceptions[ekey] = store.exceptions.get(ekey, 0) + 1
        if self._exemplars:
            if span_ids is None and self._trace is not None:
                span_ids = self._trace.current()
            if span_ids is not None:
                store.record_exemplar(key, elapsed, span_ids[0], span_ids[1])

    async def _call_full(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Metrics plus request id, the server span and the access-log line."""
        found = header_values(scope.get("headers") or (), b"traceparent", b"x-request-id")
        incoming_id = found.get(b"x-request-id")
        method = scope.get("method", "GET")
        if method not in STANDARD_METHODS:
            method = OTHER_METHOD
        spans = self._spans
        span = token = None
        recording = False
        span_ids: tuple[int, int] | None = None
        trace_hex = span_hex = None
        if spans is not None:
            # An unsampled request (most of them at a low sample ratio) gets no SDK span:
            # ids, a non-recording span in the OpenTelemetry context (outgoing calls
            # propagate sampled=0) and the traceresponse header; no end() for it.
            span, token, trace_hex, span_hex, flags, recording = spans.open(
                method, scope, found.get(b"traceparent")
            )
            if recording and self._exemplars and flags == "01":
                ctx = span.get_span_context()
                span_ids = (ctx.trace_id, ctx.span_id)
            extra = [(b"traceresponse", f"00-{trace_hex}-{span_hex}-{flags}".encode())]
        else:
            extra = []
        request_id = (incoming_id and sane_request_id(incoming_id)) or (
            trace_hex[:16] if trace_hex else os.urandom(8).hex()
        )
        if self._request_id:
            extra.append((b"x-request-id", request_id.encode()))
        request_var = current_request()
        request_token = request_var.set(RequestContext(request_id, trace_hex, span_hex))

        status = 0
        sent = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                if extra:
                    message = dict(message)
                    message["headers"] = [*message.get("headers", ()), *extra]
            else:
                sent += len(message.get("body", b""))
            await send(message)

        inflight = self.store.in_progress
        inflight[0] += 1
        error: BaseException | None = None
        start = perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            if not status:
                status = 499
            raise
        except BaseException as exc:
            error = exc
            if not status:
                status = 500
            raise
        finally:
            # The RED recording, inlined as in __call__.
            elapsed = perf_counter() - start
            inflight[0] -= 1
            matched = scope.get("route")
            hit = self._by_route.get(id(matched))
            route = hit[1] if hit is not None and hit[0] is matched else self._resolve(scope)
            key = (method, route, _STATUS.get(status) or "500")
            series = self.store.series
            row = series.get(key)
            if row is None:
                row = series[key] = self.store.new_series()
            row[bisect_left(self._bounds, elapsed)] += 1
            row[-3] += elapsed
            row[-1] += sent
            # Exemplars: a sampled span's ids; without spans of its own, the current span
            # (an outer instrumentation's) if any. An unsampled span never gives one.
            if (
                error is not None
                or method in _BODY_METHODS
                or span_ids is not None
                or (spans is None and self._trace is not None)
            ):
                self._record_extras(scope, key, elapsed, error, span_ids)
            if self._access_log is not None:
                self._access_log.write(
                    method=method,
                    route=route,
                    path=scope.get("path", ""),
                    status=status,
                    duration=elapsed,
                    trace_id=trace_hex,
                    span_id=span_hex,
                    request_id=request_id,
                )
            # After an unhandled exception the span and request ids stay current in this
            # task, so the outer error handler's log line still carries them.
            if spans is not None:
                if recording:
                    spans.end(
                        span,
                        token,
                        method=method,
                        route=route,
                        status=status,
                        error=error,
                        detach=error is None,
                    )
                elif error is None:
                    spans.close(token)
            if error is None:
                request_var.reset(request_token)

    async def _health(self, kind: Kind, scope: Scope, send: Send) -> None:
        assert self._health_endpoints is not None
        status, headers, body = await self._health_endpoints.answer(
            kind, scope.get("method", "GET"), _header(scope, b"authorization")
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def serve_metrics(self, scope: Scope, send: Send) -> None:
        """Answer a scrape without holding the event loop.

        A multiprocess merge (file I/O) runs in a worker thread; rendering runs on
        the loop in small steps, yielding to other requests between them, and the
        body is streamed (gzip-compressed incrementally when the scraper accepts it).
        """
        method = scope.get("method", "GET")
        refused = deny(method, _header(scope, b"authorization"), self._protection)
        if refused is not None:
            status, headers, body = refused
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        openmetrics = wants_openmetrics(_header(scope, b"accept"))
        compress = wants_gzip(_header(scope, b"accept-encoding"))
        headers = [
            (b"content-type", content_type(openmetrics)),
            (b"cache-control", b"no-store"),
            (b"vary", b"Accept, Accept-Encoding"),
        ]
        if compress:
            headers.append((b"content-encoding", b"gzip"))
        source = self._source
        if source.merges:
            view = await asyncio.get_running_loop().run_in_executor(None, source.view)
        else:
            view = source.view()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        gz = zlib.compressobj(1, zlib.DEFLATED, 31) if compress else None
        out: list[str] = []
        for _ in view.render_steps(out, openmetrics=openmetrics):
            if sum(map(len, out)) >= _CHUNK_CHARS:
                await self._send_chunk(send, out, gz)
            await asyncio.sleep(0)
        await self._send_chunk(send, out, gz, last=True)

    @staticmethod
    async def _send_chunk(
        send: Send, out: list[str], gz: zlib._Compress | None, *, last: bool = False
    ) -> None:
        data = "".join(out).encode("utf-8")
        out.clear()
        if gz is not None:
            data = gz.compress(data) + (gz.flush() if last else b"")
        if data or last:
            await send({"type": "http.response.body", "body": data, "more_body": not last})
