"""The benchmarked applications: one route, ``GET /items/{item_id}`` -> ``200 ok``.

Every variant is built by a zero-argument factory, so uvicorn serves it with
``uvicorn --factory benchmarks.apps:<factory>`` (``--app-dir`` = the repository root)
and the in-process runner calls the same factory. Building the app inside a factory
keeps each server process free of the other variants' global state (starlette-exporter
and OpenTelemetry keep theirs in module globals).

Variants
--------
``bare_starlette``   Starlette, no middleware: the baseline.
``floor``            Starlette + :class:`FloorMiddleware`, the least a RED middleware can
                     do in pure Python (the physical limit glassbox is compared with).
``glassbox``         Starlette + ``glassbox.instrument`` (exemplars and process metrics off,
                     and every non-metric per-request feature of this glassbox version off).
``glassbox_defaults``  the same call with instrument()'s defaults for everything else
                     (JSON logs, access log, request id, tracing, as far as they exist).
``glassbox_trace100``  ``glassbox`` + tracing at 100%: ``tracer_provider=`` an SDK
                     TracerProvider (ALWAYS_ON, BatchSpanProcessor -> the dropping exporter
                     of ``otel``). In-process (A) only, like the next four.
``glassbox_trace10``  the same with the provider's sampler ParentBased(TraceIdRatioBased(0.1)).
``glassbox_trace10_own``  ``glassbox`` + ``tracing=True, trace_sample_ratio=0.1`` and no
                     provider: glassbox configures the global one and samples heads itself
                     (no exporter without OTEL_EXPORTER_OTLP_ENDPOINT); own process in A.
``floor_trace10``    ``floor`` + the least tracing at 10% can do (:class:`FloorTraceMiddleware`):
                     90% of requests nothing more, 10% a bare ``start_span`` + ``end`` on a
                     provider like ``glassbox_trace100``'s (batch -> dropped). A (in-process) only.
``glassbox_reqid``   ``glassbox`` + ``request_id=True`` (logs, access log, tracing off).
``glassbox_access``  ``glassbox`` + JSON logs and the access log (+ request id), written to
                     ``benchmarks/.work/access-log.jsonl`` instead of the terminal.
``prom_client``      Starlette + :class:`PromClientMiddleware`, a careful hand-written
                     prometheus_client middleware (Counter + Histogram, cached children).
``starlette_exporter``  Starlette + ``starlette_exporter.PrometheusMiddleware`` (defaults).
``otel``             Starlette + ``OpenTelemetryMiddleware`` with an SDK TracerProvider
                     (ALWAYS_ON, BatchSpanProcessor -> exporter that drops the spans) and
                     an SDK MeterProvider (InMemoryMetricReader, never collected).
``bare_fastapi``     FastAPI, no middleware: the baseline of the next one.
``instrumentator``   FastAPI + prometheus-fastapi-instrumentator (defaults, own registry).
``glassbox_scrape``  ``glassbox`` with 200 routes x 5 statuses already in its registry,
                     and those routes served (the scrape-interference server).
``prom_client_scrape``  ``prom_client`` with the same series (scrape-interference reference).
"""

from __future__ import annotations

import contextlib
import os
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glassbox.metrics.catalogue import DEFAULT_BUCKETS

ROUTE_TEMPLATE = "/items/{item_id}"
#: Size of the registry used by the render and scrape benchmarks.
POPULATED_ROUTES = 200
POPULATED_STATUSES: tuple[str, ...] = ("200", "201", "404", "429", "500")
POPULATED_OBSERVATIONS = 8


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _starlette() -> Starlette:
    return Starlette(routes=[Route(ROUTE_TEMPLATE, hello)])


def bare_starlette() -> Starlette:
    return _starlette()


# -- the floor -----------------------------------------------------------------------------

FloorSeries = dict[tuple[str, str, int], list[Any]]


class FloorMiddleware:
    """The minimal pure-ASGI RED middleware: the cost floor of recording RED metrics.

    Per request: a ``send`` wrapper that captures the status, two ``perf_counter``
    readings, one dict lookup keyed by (method, route template, status), a bisect into
    the bucket bounds and three list increments (bucket, count, sum). No locks, no
    label validation, no exposition.
    """

    def __init__(
        self, app: ASGIApp, series: FloorSeries, bounds: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        self.app = app
        self.series = series
        self.bounds = tuple(bounds)
        self.width = len(self.bounds) + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = perf_counter() - start
            route = scope.get("route")
            key = (scope["method"], route.path if route is not None else "<unmatched>", status)
            row = self.series.get(key)
            if row is None:
                row = self.series[key] = [0] * self.width + [0, 0.0]
            row[bisect_left(self.bounds, elapsed)] += 1
            row[-2] += 1
            row[-1] += elapsed


def floor() -> Starlette:
    app = _starlette()
    series: FloorSeries = {}
    app.add_middleware(FloorMiddleware, series=series)
    app.state.floor_series = series
    return app


class FloorTraceMiddleware:
    """:class:`FloorMiddleware` plus the least tracing at 10% head sampling can do.

    One ``random()`` per request decides; an unsampled request (90%) does nothing more
    than the floor's RED work - no ids, no context, no header. A sampled one gets
    ``tracer.start_span(method)`` before the app runs and ``span.end()`` after: no
    attributes, no kind, no name update, the span not made current. That is the cost of
    an SDK span itself, which no tracing middleware can avoid for the requests it samples.
    """

    def __init__(
        self, app: ASGIApp, series: FloorSeries, tracer: Any, ratio: float = 0.1,
        bounds: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.app = app
        self.series = series
        self.tracer = tracer
        self.ratio = ratio
        self.bounds = tuple(bounds)
        self.width = len(self.bounds) + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        span = self.tracer.start_span(scope["method"]) if random.random() < self.ratio else None
        start = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = perf_counter() - start
            route = scope.get("route")
            key = (scope["method"], route.path if route is not None else "<unmatched>", status)
            row = self.series.get(key)
            if row is None:
                row = self.series[key] = [0] * self.width + [0, 0.0]
            row[bisect_left(self.bounds, elapsed)] += 1
            row[-2] += 1
            row[-1] += elapsed
            if span is not None:
                span.end()


def floor_trace10() -> Starlette:
    """The floor + 10% of requests traced by a bare SDK span, on the same kind of provider
    as glassbox_trace100/10: ALWAYS_ON, BatchSpanProcessor -> the dropping exporter."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    provider, exporter = dropping_tracer_provider(ALWAYS_ON)
    app = _starlette()
    series: FloorSeries = {}
    app.add_middleware(
        FloorTraceMiddleware, series=series, tracer=provider.get_tracer("floor"), ratio=0.1
    )
    app.state.floor_series = series
    app.state.bench_spans = (provider, exporter)
    return app


# -- prometheus_client, by hand ------------------------------------------------------------


class PromClientMiddleware:
    """A careful prometheus_client RED middleware on its own ``CollectorRegistry``.

    Counter ``http_requests_total`` and Histogram ``http_request_duration_seconds``
    (glassbox's bucket bounds) labelled method/route/status. The labelled children are
    cached per (method, route, status), so a request costs one dict lookup, one
    ``inc()`` and one ``observe()`` (each takes prometheus_client's value lock).
    ``/metrics`` is rendered with ``generate_latest`` in a worker thread.
    """

    def __init__(self, app: ASGIApp, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.app = app
        self.registry = registry
        labels = ("method", "route", "status")
        self.requests = Counter(
            "http_requests_total", "HTTP requests.", labels, registry=registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds", "HTTP request duration in seconds.", labels,
            buckets=DEFAULT_BUCKETS, registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/metrics":
            await self._serve_metrics(send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = perf_counter() - start
            route = scope.get("route")
            key = (scope["method"], route.path if route is not None else "<unmatched>", status)
            children = self._children.get(key)
            if children is None:
                values = (key[0], key[1], str(key[2]))
                children = self._children[key] = (
                    self.requests.labels(*values), self.duration.labels(*values),
                )
            children[0].inc()
            children[1].observe(elapsed)

    async def _serve_metrics(self, send: Send) -> None:
        import asyncio

        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, generate_latest, self.registry)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def prom_client() -> Starlette:
    from prometheus_client import CollectorRegistry

    app = _starlette()
    registry = CollectorRegistry()
    app.add_middleware(PromClientMiddleware, registry=registry)
    app.state.prom_registry = registry
    return app


# -- glassbox -------------------------------------------------------------------------------

#: The call of the issue: ``instrument(app, service=..., registry=Registry(),
#: process_metrics=False, exemplars=False)``, one process (no multiprocess directory).
GLASSBOX_OPTIONS: dict[str, Any] = {
    "service": "bench",
    "process_metrics": False,
    "exemplars": False,
    "multiprocess": False,
}
#: Per-request features besides RED metrics that ``instrument()`` may turn on by default;
#: the metrics variants switch off those this glassbox version has (``glassbox_defaults``
#: keeps them, to show what they cost).
NON_METRIC_FEATURES = ("logs", "access_log", "request_id", "tracing")


def glassbox_metrics_options() -> dict[str, Any]:
    """``GLASSBOX_OPTIONS`` plus ``False`` for each of ``NON_METRIC_FEATURES`` that exists."""
    import glassbox as gb

    fields = getattr(gb.Settings, "model_fields", {})
    return {**GLASSBOX_OPTIONS, **{k: False for k in NON_METRIC_FEATURES if k in fields}}


def glassbox() -> Starlette:
    """glassbox's RED metrics alone (the metrics middleware under test)."""
    import glassbox as gb

    app = _starlette()
    gb.instrument(app, registry=gb.Registry(), **glassbox_metrics_options())
    return app


def glassbox_defaults() -> Starlette:
    """The issue's call as is: whatever else ``instrument()`` turns on by default runs too.

    It may configure process-wide state (logging, the global tracer provider, which
    FastAPI's own telemetry then uses), so the in-process benchmark gives it a process
    of its own.
    """
    import glassbox as gb

    app = _starlette()
    gb.instrument(app, registry=gb.Registry(), **GLASSBOX_OPTIONS)
    return app


# -- glassbox with logs and traces (in-process only) ------------------------------------------

#: Where ``glassbox_access`` writes its JSON lines (stdout stays quiet).
ACCESS_LOG_PATH = Path(__file__).resolve().parent / ".work" / "access-log.jsonl"
#: Settings that send spans somewhere without being passed: unset for ``glassbox_trace10_own``.
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _glassbox_with(tracer_provider: Any = None, **features: Any) -> Starlette:
    """``glassbox`` (metrics-only options) with some non-metric ``features`` turned on."""
    import glassbox as gb

    app = _starlette()
    options = {**glassbox_metrics_options(), **features}
    gb.instrument(app, registry=gb.Registry(), tracer_provider=tracer_provider, **options)
    return app


def _glassbox_traced(sampler: Any) -> Starlette:
    provider, exporter = dropping_tracer_provider(sampler)
    app = _glassbox_with(provider, tracing=True)
    app.state.bench_spans = (provider, exporter)
    return app


def glassbox_trace100() -> Starlette:
    """Tracing at 100%: an SDK provider like ``otel``'s (ALWAYS_ON, batch -> dropped)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    return _glassbox_traced(ALWAYS_ON)


def glassbox_trace10() -> Starlette:
    """Tracing at 10%, decided by the given provider's ParentBased(TraceIdRatioBased(0.1))."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    return _glassbox_traced(ParentBased(TraceIdRatioBased(0.1)))


def glassbox_trace10_own() -> Starlette:
    """Tracing at 10% with glassbox's own provider and head sampling.

    glassbox then installs the process-global TracerProvider (so this runs in a process
    of its own); with no OTLP endpoint set it has no exporter: sampled spans are built
    and ended but sent nowhere.
    """
    import opentelemetry.sdk.trace  # noqa: F401 - without the SDK glassbox turns tracing off

    for name in OTLP_ENDPOINT_VARIABLES:  # this process only (the variant is isolated)
        os.environ.pop(name, None)
    return _glassbox_with(tracing=True, trace_sample_ratio=0.1)


def glassbox_reqid() -> Starlette:
    """The request id alone (read or made, set in a context variable, echoed as a header)."""
    return _glassbox_with(request_id=True)


def glassbox_access() -> Starlette:
    """JSON logs and one access-log line per request, into ``ACCESS_LOG_PATH``.

    glassbox's logging writes to ``sys.stdout`` as it is when ``instrument()`` runs, so
    stdout is redirected to the file for that call only. The logging configuration is
    process-wide; no other variant logs per request.
    """
    ACCESS_LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
    stream = ACCESS_LOG_PATH.open("w", encoding="utf-8")  # kept open: the app writes to it
    with contextlib.redirect_stdout(stream):
        app = _glassbox_with(logs=True, log_format="json", access_log=True, request_id=True)
    app.state.access_stream = stream
    return app


def populate_glassbox(registry: Any, seed: int = 1) -> None:
    """Fill ``registry``'s ``http`` RED store with 200 routes x 5 statuses."""
    from glassbox.metrics.catalogue import red_catalogue

    store = registry.red_store(red_catalogue())
    for method, route, status, seconds in populated_observations(seed):
        store.observe(method, route, status, seconds, 0, 2)


def populate_prometheus(
    registry: Any,
    seed: int = 1,
    names: tuple[str, str] = ("http_requests_total", "http_request_duration_seconds"),
) -> None:
    """The same series as :func:`populate_glassbox` in a prometheus_client Counter+Histogram.

    ``names``: of the counter and the histogram (another pair when ``registry`` already
    holds the default ones).
    """
    from prometheus_client import Counter, Histogram

    labels = ("method", "route", "status")
    counter = Counter(names[0], "HTTP requests.", labels, registry=registry)
    histogram = Histogram(
        names[1], "HTTP request duration in seconds.", labels,
        buckets=DEFAULT_BUCKETS, registry=registry,
    )
    for method, route, status, seconds in populated_observations(seed):
        counter.labels(method, route, status).inc()
        histogram.labels(method, route, status).observe(seconds)


def populated_routes() -> list[str]:
    return [f"/api/v1/resource_{r:03d}/{{item_id}}" for r in range(POPULATED_ROUTES)]


async def by_id(request: Request) -> PlainTextResponse:
    """Answers with one of ``POPULATED_STATUSES``, chosen by the id."""
    item_id = request.path_params["item_id"]
    status = POPULATED_STATUSES[int(item_id) % len(POPULATED_STATUSES) if item_id.isdigit() else 0]
    return PlainTextResponse("ok", status_code=int(status))


def populated_observations(seed: int = 1) -> list[tuple[str, str, str, float]]:
    rng = random.Random(seed)
    out = []
    for route in populated_routes():
        for status in POPULATED_STATUSES:
            for _ in range(POPULATED_OBSERVATIONS):
                out.append(("GET", route, status, rng.lognormvariate(-4.0, 1.5)))
    return out


def glassbox_scrape() -> Starlette:
    """glassbox with the 200 x 5 series already recorded (scrape-interference server).

    Besides ``/items/{item_id}`` it serves the 200 populated routes (status chosen by the
    id), so a load can keep every recorded series changing.
    """
    import glassbox as gb

    app = Starlette(
        routes=[Route(ROUTE_TEMPLATE, hello), *(Route(t, by_id) for t in populated_routes())]
    )
    registry = gb.Registry()
    gb.instrument(app, registry=registry, **glassbox_metrics_options())
    populate_glassbox(registry)
    return app


def prom_client_scrape() -> Starlette:
    """:func:`prom_client` with the same 200 x 5 series (scrape-interference reference)."""
    app = prom_client()
    populate_prometheus(app.state.prom_registry, names=("bench_requests_total", "bench_duration"))
    return app


# -- starlette-exporter ---------------------------------------------------------------------


def starlette_exporter() -> Starlette:
    from starlette_exporter import PrometheusMiddleware, handle_metrics

    app = _starlette()
    app.add_middleware(PrometheusMiddleware, app_name="bench", group_paths=True)
    app.add_route("/metrics", handle_metrics)
    return app


# -- FastAPI ---------------------------------------------------------------------------------


def bare_fastapi() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get(ROUTE_TEMPLATE, response_class=PlainTextResponse)
    async def item(item_id: str) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return app


def instrumentator() -> Any:
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    app = bare_fastapi()
    registry = CollectorRegistry()
    Instrumentator(registry=registry).instrument(app).expose(app)
    app.state.prom_registry = registry
    return app


# -- OpenTelemetry ---------------------------------------------------------------------------


def dropping_tracer_provider(sampler: Any) -> tuple[Any, Any]:
    """An SDK TracerProvider (``sampler``, BatchSpanProcessor with default sizes) whose
    exporter counts the spans it is handed and drops them: (provider, exporter)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpanExporter(SpanExporter):
        """Counts the spans it is handed and drops them."""

        def __init__(self) -> None:
            self.exported = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

    exporter = DropSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def otel() -> Starlette:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    tracer_provider, exporter = dropping_tracer_provider(ALWAYS_ON)
    resource = Resource.create({"service.name": "bench"})
    meter_provider = MeterProvider(resource=resource, metric_readers=[InMemoryMetricReader()])
    app = _starlette()
    app.add_middleware(
        OpenTelemetryMiddleware, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    app.state.otel = (tracer_provider, exporter)
    return app


# -- the catalogue of variants ---------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    """Also the name of its factory in this module (for ``uvicorn --factory``)."""
    label: str
    factory: Callable[[], Any]
    baseline: str | None
    """Name of the variant this one is compared with (None for a baseline)."""
    isolated: bool = False
    """Changes process-wide state: measured in-process in a process of its own."""
    http: bool = True
    """Also served over HTTP (part B); False: an in-process (A) variant only."""
    companions: tuple[str, ...] = ()
    """Isolated only: variants measured alongside in its process (besides the baseline)."""
    imports: tuple[str, ...] = ("glassbox",)
    """Isolated only: modules it needs (checked without building it, which would change
    the runner's process)."""


VARIANTS: tuple[Variant, ...] = (
    Variant("bare_starlette", "bare Starlette", bare_starlette, None),
    Variant("floor", "floor (minimal pure-ASGI RED)", floor, "bare_starlette"),
    Variant("glassbox", "glassbox (RED metrics)", glassbox, "bare_starlette"),
    Variant(
        "glassbox_defaults", "glassbox, instrument() defaults", glassbox_defaults,
        "bare_starlette", isolated=True,
    ),
    Variant(
        "glassbox_trace100", "glassbox + tracing 100% (SDK provider, batch -> dropped)",
        glassbox_trace100, "bare_starlette", http=False,
    ),
    Variant(
        "glassbox_trace10", "glassbox + tracing 10% (provider's ParentBased ratio sampler)",
        glassbox_trace10, "bare_starlette", http=False,
    ),
    Variant(
        "glassbox_trace10_own", "glassbox + tracing 10% (trace_sample_ratio, own provider)",
        glassbox_trace10_own, "bare_starlette", isolated=True, http=False,
        companions=("glassbox",), imports=("glassbox", "opentelemetry.sdk.trace"),
    ),
    Variant(
        "floor_trace10", "floor + tracing 10% (bare SDK span: start_span + end)",
        floor_trace10, "bare_starlette", http=False,
    ),
    Variant(
        "glassbox_reqid", "glassbox + request id", glassbox_reqid, "bare_starlette", http=False
    ),
    Variant(
        "glassbox_access", "glassbox + JSON access log + request id", glassbox_access,
        "bare_starlette", http=False,
    ),
    Variant("prom_client", "prometheus_client by hand", prom_client, "bare_starlette"),
    Variant("starlette_exporter", "starlette-exporter", starlette_exporter, "bare_starlette"),
    Variant("otel", "OpenTelemetry ASGI (SDK, always-on)", otel, "bare_starlette"),
    Variant("bare_fastapi", "bare FastAPI", bare_fastapi, None),
    Variant("instrumentator", "prometheus-fastapi-instrumentator", instrumentator, "bare_fastapi"),
)

BY_NAME: dict[str, Variant] = {v.name: v for v in VARIANTS}


def request_count(name: str, app: Any) -> int | None:
    """Requests to ``ROUTE_TEMPLATE`` that the variant's own metrics recorded (None: n/a)."""
    if name.startswith("glassbox"):
        store = app.state.glassbox.registry.red["http"]
        width = len(store.catalogue.buckets) + 1
        row = store.series.get(("GET", ROUTE_TEMPLATE, "200"))
        return 0 if row is None else int(sum(row[:width]))
    if name in ("floor", "floor_trace10"):
        frow = app.state.floor_series.get(("GET", ROUTE_TEMPLATE, 200))
        return 0 if frow is None else int(frow[-2])
    if name == "prom_client":
        value = app.state.prom_registry.get_sample_value(
            "http_requests_total", {"method": "GET", "route": ROUTE_TEMPLATE, "status": "200"}
        )
        return int(value or 0)
    if name == "instrumentator":
        value = app.state.prom_registry.get_sample_value(
            "http_requests_total", {"method": "GET", "handler": ROUTE_TEMPLATE, "status": "2xx"}
        )
        return int(value or 0)
    if name == "starlette_exporter":
        from prometheus_client import REGISTRY

        value = REGISTRY.get_sample_value(
            "starlette_requests_total",
            {"method": "GET", "path": ROUTE_TEMPLATE, "status_code": "200", "app_name": "bench"},
        )
        return int(value or 0)
    return None
