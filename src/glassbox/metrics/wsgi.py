"""WSGI RED middleware (Flask, Django under WSGI, any WSGI app); serves ``/metrics``.

The route label comes from ``environ["glassbox.route"]``, which the Flask and Django
adapters set from the matched URL rule; without it every request is ``<unmatched>``.
The duration ends when the server closes the response iterable, so streamed bodies
are timed to their last byte.
"""

from __future__ import annotations

import contextlib
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any

from glassbox._auth import Protection
from glassbox.logs import AccessLog, RequestContext, current_request, sane_request_id
from glassbox.metrics._red import RedStore
from glassbox.metrics.asgi import TraceContext, path_set
from glassbox.metrics.catalogue import (
    DEFAULT_EXCLUDED_PATHS,
    OTHER_METHOD,
    STANDARD_METHODS,
    UNMATCHED_ROUTE,
    RedCatalogue,
)
from glassbox.metrics.exposition import Render, Source, build_response, renderer
from glassbox.metrics.registry import REGISTRY, Registry

if TYPE_CHECKING:
    from glassbox.tracing import ServerSpans

__all__ = ["ROUTE_KEY", "WSGIMetricsMiddleware"]

ROUTE_KEY = "glassbox.route"
_REQUEST_ID_KEY = "glassbox.request_id"

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_VALID_STATUS = frozenset(str(code) for code in range(100, 600))


class _Observation:
    __slots__ = (
        "method",
        "request_bytes",
        "sent",
        "span",
        "span_id",
        "span_token",
        "start",
        "started",
        "status",
        "token",
        "trace_id",
    )

    def __init__(self, method: str, request_bytes: int) -> None:
        self.method = method
        self.request_bytes = request_bytes
        self.started = False
        self.status = "500"
        self.token: Any = None
        self.span: Any = None
        self.span_token: Any = None
        self.trace_id: str | None = None
        self.span_id: str | None = None
        self.sent = 0
        self.start = perf_counter()


class _Body:
    """Wraps the response iterable: counts bytes and records when closed."""

    def __init__(
        self,
        inner: Iterable[bytes],
        finish: Callable[[BaseException | None], None],
        obs: _Observation,
    ) -> None:
        self._inner = inner
        self._finish = finish
        self._obs = obs
        self._error: BaseException | None = None
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                self._obs.sent += len(chunk)
                yield chunk
        except BaseException as exc:
            self._error = exc
            self._obs.status = "500" if not self._obs.started else self._obs.status
            self._complete()
            raise
        self._complete()

    def _complete(self) -> None:
        if not self._done:
            self._done = True
            self._finish(self._error)

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._complete()


def _scope(environ: Environ) -> dict[str, Any]:
    """The parts of an ASGI-like scope that :class:`ServerSpans` reads."""
    port = environ.get("SERVER_PORT", "")
    number = int(port) if port.isascii() and port.isdigit() else None
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return {
        "path": environ.get("PATH_INFO", ""),
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "http_version": protocol.partition("/")[2] or "1.1",
        "server": (environ.get("SERVER_NAME", ""), number),
    }


class WSGIMetricsMiddleware:
    """Records RED metrics for a WSGI app and answers ``metrics_path``."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        catalogue: RedCatalogue,
        registry: Registry = REGISTRY,
        excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        metrics_path: str | None = "/metrics",
        source: Source | None = None,
        protection: Protection = Protection(),  # noqa: B008 - immutable value object
        exemplars: bool = True,
        access_log: AccessLog | None = None,
        request_id: bool = False,
        spans: ServerSpans | None = None,
    ) -> None:
        self.app = app
        self._spans = spans
        self._access_log = access_log
        self._request_id = request_id
        self.store: RedStore = registry.red_store(catalogue)
        self._excluded = path_set(excluded_paths)
        self._metrics_paths = path_set([metrics_path]) if metrics_path else frozenset()
        self._render: Render = renderer(source if source is not None else registry)
        self._protection = protection
        trace = TraceContext()
        self._trace = trace if exemplars and trace.available else None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in self._metrics_paths:
            return self._serve_metrics(environ, start_response)
        if path in self._excluded:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in STANDARD_METHODS:
            method = OTHER_METHOD
        length = environ.get("CONTENT_LENGTH") or ""
        obs = _Observation(method, int(length) if length.isascii() and length.isdigit() else 0)
        self.store.in_progress[0] += 1
        extra: list[tuple[str, str]] = []
        trace_hex = span_hex = None
        if self._spans is not None:
            obs.span, obs.span_token = self._spans.start(
                method, _scope(environ), environ.get("HTTP_TRACEPARENT")
            )
            ctx = obs.span.get_span_context()
            trace_hex, span_hex = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
            obs.trace_id, obs.span_id = trace_hex, span_hex
            flags = "01" if ctx.trace_flags.sampled else "00"
            extra.append(("traceresponse", f"00-{trace_hex}-{span_hex}-{flags}"))
        request_id: str | None = None
        if self._request_id or self._access_log is not None or trace_hex is not None:
            request_id = sane_request_id(environ.get("HTTP_X_REQUEST_ID")) or (
                trace_hex[:16] if trace_hex else os.urandom(8).hex()
            )
            environ[_REQUEST_ID_KEY] = request_id
            obs.token = current_request().set(RequestContext(request_id, trace_hex, span_hex))
            if self._request_id:
                extra.append(("X-Request-ID", request_id))

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            obs.status = status[:3]
            obs.started = True
            if extra:
                headers = [*headers, *extra]
            return start_response(status, headers, exc_info)

        def finish(error: BaseException | None) -> None:
            self._record(environ, obs, error)

        try:
            result = self.app(environ, capture)
        except BaseException as exc:
            obs.status = "500"
            finish(exc)
            raise
        return _Body(result, finish, obs)

    def _record(self, environ: Environ, obs: _Observation, error: BaseException | None) -> None:
        elapsed = perf_counter() - obs.start
        store = self.store
        store.in_progress[0] -= 1
        route = environ.get(ROUTE_KEY)
        if not isinstance(route, str):
            route = UNMATCHED_ROUTE
        status = obs.status if obs.status in _VALID_STATUS else "500"
        key = (obs.method, route, status)
        row = store.series.get(key)
        if row is None:
            row = store.series[key] = store.new_series()
        row[bisect_left(store.catalogue.buckets, elapsed)] += 1
        row[-3] += elapsed
        row[-2] += obs.request_bytes
        row[-1] += obs.sent
        if error is not None:
            ekey = (obs.method, route, type(error).__name__)
            store.exceptions[ekey] = store.exceptions.get(ekey, 0) + 1
        if self._trace is not None:
            span = self._trace.current()
            if span is not None:
                store.record_exemplar(key, elapsed, span[0], span[1])
        if self._access_log is not None:
            self._access_log.write(
                method=obs.method,
                route=route,
                path=environ.get("PATH_INFO", ""),
                status=int(status),
                duration=elapsed,
                trace_id=obs.trace_id,
                span_id=obs.span_id,
                request_id=environ.get(_REQUEST_ID_KEY),
            )
        if obs.span is not None and self._spans is not None:
            # Always detached: a WSGI server reuses the thread for the next request.
            self._spans.end(
                obs.span,
                obs.span_token,
                method=obs.method,
                route=route,
                status=int(status),
                error=error,
                detach=True,
            )
        if obs.token is not None:
            with contextlib.suppress(ValueError):  # closed from another context
                current_request().reset(obs.token)

    def _serve_metrics(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        status, headers, body = build_response(
            self._render,
            method=environ.get("REQUEST_METHOD", "GET"),
            accept=environ.get("HTTP_ACCEPT"),
            accept_encoding=environ.get("HTTP_ACCEPT_ENCODING"),
            authorization=environ.get("HTTP_AUTHORIZATION"),
            protection=self._protection,
        )
        reason = {200: "OK", 401: "Unauthorized", 405: "Method Not Allowed"}[status]
        start_response(
            f"{status} {reason}", [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        )
        return [body]
