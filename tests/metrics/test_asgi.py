"""The RED middleware on Starlette and FastAPI apps, driven in-process."""

from __future__ import annotations

import asyncio
import base64
import gzip

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.testclient import TestClient

import glassbox
from glassbox.metrics.asgi import MetricsMiddleware
from glassbox.metrics.catalogue import red_catalogue
from tests.metrics.helpers import parse, series_of, value


async def ok(request: object) -> Response:
    return PlainTextResponse("ok")


async def boom(request: object) -> Response:
    raise RuntimeError("kaboom")


def starlette_app() -> Starlette:
    users = Router(routes=[Route("/{user_id:int}", ok), Route("/", ok)])
    return Starlette(
        routes=[
            Route("/items/{item_id}", ok, methods=["GET", "POST"]),
            Route("/boom", boom),
            Mount("/users", routes=users.routes),
            Mount("/v1", routes=[Mount("/nested/{tenant}", routes=[Route("/deep/{x}", ok)])]),
        ]
    )


@pytest.fixture
def registry() -> glassbox.Registry:
    return glassbox.Registry()


def test_route_templates_resolve_mounts_and_params(registry: glassbox.Registry) -> None:
    app = glassbox.instrument(starlette_app(), service="svc", registry=registry)
    client = TestClient(app)
    for i in range(3):
        assert client.get(f"/items/{i}").status_code == 200
    assert client.get("/users/7").status_code == 200
    assert client.get("/v1/nested/acme/deep/1").status_code == 200
    assert client.get("/no/such/path").status_code == 404
    samples = parse(client.get("/metrics").text)
    total = "http_requests_total"
    assert value(samples, total, method="GET", route="/items/{item_id}", status="200") == 3
    assert value(samples, total, method="GET", route="/users/{user_id}", status="200") == 1
    assert (
        value(samples, total, method="GET", route="/v1/nested/{tenant}/deep/{x}", status="200") == 1
    )
    assert value(samples, total, method="GET", route="<unmatched>", status="404") == 1
    routes = {s["route"] for s in series_of(samples, total)}
    assert not any(r.startswith("/items/0") or r == "/no/such/path" for r in routes)


def test_fastapi_router_prefix_is_part_of_the_route(registry: glassbox.Registry) -> None:
    app = FastAPI()
    api = APIRouter(prefix="/api/v2")

    @api.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    app.include_router(api)
    glassbox.instrument(app, service="svc", registry=registry)
    client = TestClient(app)
    assert client.get("/api/v2/orders/5").status_code == 200
    assert client.get("/api/v2/orders/notanint").status_code == 422
    samples = parse(client.get("/metrics").text)
    total = "http_requests_total"
    assert value(samples, total, method="GET", route="/api/v2/orders/{order_id}", status="200") == 1
    assert value(samples, total, method="GET", route="/api/v2/orders/{order_id}", status="422") == 1


def test_routes_added_after_instrument_are_resolved(registry: glassbox.Registry) -> None:
    app = FastAPI()
    glassbox.instrument(app, service="svc", registry=registry)

    @app.get("/late/{x}")
    async def late(x: str) -> str:
        return x

    client = TestClient(app)
    assert client.get("/late/a").status_code == 200
    samples = parse(client.get("/metrics").text)
    assert value(samples, "http_requests_total", method="GET", route="/late/{x}", status="200") == 1


def test_unhandled_exception_counts_as_500_and_propagates(registry: glassbox.Registry) -> None:
    app = glassbox.instrument(starlette_app(), service="svc", registry=registry)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/boom").status_code == 500
    samples = parse(client.get("/metrics").text)
    assert value(samples, "http_requests_total", method="GET", route="/boom", status="500") == 1
    assert (
        value(
            samples,
            "http_exceptions_total",
            method="GET",
            route="/boom",
            exception_type="RuntimeError",
        )
        == 1
    )
    with pytest.raises(RuntimeError, match="kaboom"):
        TestClient(app).get("/boom")


def test_odd_methods_fold_into_one_value(registry: glassbox.Registry) -> None:
    app = glassbox.instrument(starlette_app(), service="svc", registry=registry)
    client = TestClient(app)
    for method in ("PROPFIND", "BREW", "X-CUSTOM"):
        client.request(method, "/items/1")
    samples = parse(client.get("/metrics").text)
    methods = {s["method"] for s in series_of(samples, "http_requests_total")}
    assert methods == {"_OTHER"}


def test_metrics_and_health_are_excluded_by_default_and_configurable(
    registry: glassbox.Registry,
) -> None:
    app = glassbox.instrument(
        starlette_app(), service="svc", registry=registry, exclude=("/items/1",)
    )
    client = TestClient(app)
    client.get("/metrics")
    client.get("/health/live")
    client.get("/items/1")
    client.get("/items/2")
    samples = parse(client.get("/metrics").text)
    routes = [s for s in series_of(samples, "http_requests_total")]
    assert routes == [{"method": "GET", "route": "/items/{item_id}", "status": "200"}]
    assert value(samples, "http_requests_total", **routes[0]) == 1


def test_namespace_renames_red_metrics(registry: glassbox.Registry) -> None:
    app = glassbox.instrument(starlette_app(), service="kato", namespace="kato", registry=registry)
    client = TestClient(app)
    client.get("/items/1")
    samples = parse(client.get("/metrics").text)
    assert (
        value(samples, "kato_requests_total", method="GET", route="/items/{item_id}", status="200")
        == 1
    )
    assert (
        value(
            samples,
            "kato_request_duration_seconds_count",
            method="GET",
            route="/items/{item_id}",
            status="200",
        )
        == 1
    )
    assert value(samples, "service_info", service="kato", version="0.0.0", env="dev") == 1
    assert not series_of(samples, "http_requests_total")


def test_histogram_buckets_sizes_and_in_progress(registry: glassbox.Registry) -> None:
    app = glassbox.instrument(
        starlette_app(), service="svc", registry=registry, buckets=(0.1, 1.0, 30.0)
    )
    client = TestClient(app)
    client.post("/items/1", content=b"x" * 123)
    samples = parse(client.get("/metrics").text)
    labels = {"method": "POST", "route": "/items/{item_id}", "status": "200"}
    les = sorted(s["le"] for s in series_of(samples, "http_request_duration_seconds_bucket"))
    assert les == sorted(["0.1", "1.0", "30.0", "+Inf"])
    assert value(samples, "http_request_duration_seconds_bucket", **labels, le="+Inf") == 1
    assert value(samples, "http_request_size_bytes_sum", **labels) == 123
    assert value(samples, "http_response_size_bytes_sum", **labels) == 2
    assert value(samples, "http_requests_in_progress") == 0


def test_openmetrics_negotiation_and_gzip(registry: glassbox.Registry) -> None:
    app = glassbox.instrument(starlette_app(), service="svc", registry=registry)
    client = TestClient(app)
    client.get("/items/1")
    om = client.get(
        "/metrics",
        headers={"accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
    )
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    assert "# TYPE http_requests counter" in om.text
    plain = client.get("/metrics", headers={"accept": "text/plain", "accept-encoding": "gzip"})
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert plain.headers["content-encoding"] == "gzip"
    assert "# TYPE http_requests_total counter" in plain.text  # httpx decoded the gzip body
    raw = client.get("/metrics", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert gzip.compress(raw.content)  # plain body is the uncompressed exposition
    head = client.head("/metrics")
    assert head.status_code == 200
    assert head.content == b""


def test_exemplars_carry_the_active_trace_id(registry: glassbox.Registry) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    inner = glassbox.instrument(starlette_app(), service="svc", registry=registry)
    seen: list[str] = []

    async def traced(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await inner(scope, receive, send)
            return
        with tracer.start_as_current_span("server") as span:
            seen.append(f"{span.get_span_context().trace_id:032x}")
            await inner(scope, receive, send)

    client = TestClient(traced)
    client.get("/items/1")
    body = client.get("/metrics", headers={"accept": "application/openmetrics-text"}).text
    exemplar_lines = [line for line in body.splitlines() if "# {trace_id=" in line]
    assert len(exemplar_lines) == 1
    assert f'trace_id="{seen[0]}"' in exemplar_lines[0]
    assert 'route="/items/{item_id}"' in exemplar_lines[0]
    plain = client.get("/metrics").text
    assert "trace_id" not in plain  # the 0.0.4 text format has no exemplars
    assert trace.get_current_span().get_span_context().is_valid is False


@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_metrics_protection(
    registry: glassbox.Registry, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if scheme == "bearer":
        monkeypatch.setenv("GLASSBOX_METRICS_TOKEN", "s3cret-token")
        good = "Bearer s3cret-token"
    else:
        monkeypatch.setenv("GLASSBOX_METRICS_BASIC_AUTH", "prom:pa55word")
        good = "Basic " + base64.b64encode(b"prom:pa55word").decode()
    app = glassbox.instrument(starlette_app(), service="svc", registry=registry)
    client = TestClient(app)
    for path in ("/metrics", "/metrics/"):
        denied = client.get(path)
        assert denied.status_code == 401
        assert "www-authenticate" in denied.headers
        assert "http_requests_total" not in denied.text
    assert client.head("/metrics").status_code == 401
    assert client.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"authorization": good}).status_code == 200
    # path tricks never reach an unprotected copy of the exposition
    for trick in ("//metrics", "/metrics%2F", "/%6detrics", "/metrics?x=1", "/./metrics"):
        response = client.get(trick)
        assert response.status_code in (401, 404), trick
        assert "http_requests_total" not in response.text, trick


async def _plain(scope, receive, send):  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


async def _call(app: object, path: str, headers: list | None = None) -> list[dict]:  # type: ignore[type-arg]
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers or []}
    sent: list[dict] = []  # type: ignore[type-arg]

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:  # type: ignore[type-arg]
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[operator]
    return sent


def test_a_slow_multiprocess_merge_runs_off_the_event_loop(registry: glassbox.Registry) -> None:
    """Building a merged view (file I/O) must not stall a concurrent request."""
    import threading
    import time

    started = threading.Event()

    class SlowMerge:
        merges = True

        def view(self) -> glassbox.Registry:
            started.set()
            time.sleep(0.5)
            return registry

    mw = MetricsMiddleware(_plain, catalogue=red_catalogue(), registry=registry, source=SlowMerge())

    async def main() -> tuple[float, float]:
        t0 = time.perf_counter()
        scrape = asyncio.create_task(_call(mw, "/metrics"))
        while not started.is_set():
            await asyncio.sleep(0.001)
        await _call(mw, "/other")
        fast = time.perf_counter() - t0
        await scrape
        return fast, time.perf_counter() - t0

    fast, slow = asyncio.run(main())
    assert slow >= 0.5
    assert fast < 0.4


def test_a_large_scrape_yields_to_other_tasks_and_streams(registry: glassbox.Registry) -> None:
    """Rendering 2,000 series happens in steps: other tasks run between them."""
    import gzip as gzip_mod

    mw = MetricsMiddleware(_plain, catalogue=red_catalogue(), registry=registry)
    store = registry.red["http"]
    for i in range(2000):
        store.observe("GET", f"/r{i}", "200", 0.01)

    async def main() -> tuple[int, list[dict]]:  # type: ignore[type-arg]
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        sent = await _call(mw, "/metrics", [(b"accept-encoding", b"gzip")])
        done = True
        await task
        return ticks, sent

    ticks, sent = asyncio.run(main())
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert ticks >= 2000 // 32  # at least one tick per rendering step
    assert len(bodies) > 1  # streamed in chunks
    assert bodies[-1]["more_body"] is False
    text = gzip_mod.decompress(b"".join(m["body"] for m in bodies)).decode()
    assert text == registry.render()


def test_endpoint_fallback_for_starlette_releases_without_scope_route() -> None:
    """Before Starlette 1.7 only scope["endpoint"] names the match; shared endpoints too."""
    from glassbox.metrics.routes import StarletteRoutes

    app = starlette_app()
    resolve = StarletteRoutes(app)
    cases = {
        "/items/3": "/items/{item_id}",
        "/users/7": "/users/{user_id}",
        "/users/": "/users/",
        "/v1/nested/acme/deep/1": "/v1/nested/{tenant}/deep/{x}",
    }
    for path, template in cases.items():
        scope = {"type": "http", "path": path, "root_path": "", "endpoint": ok}
        assert resolve(scope) == template, path
    assert resolve({"type": "http", "path": "/boom", "endpoint": boom}) == "/boom"
    assert resolve({"type": "http", "path": "/x", "endpoint": object()}) == "<unmatched>"


def test_a_mount_wrapped_in_middleware_keeps_its_prefix_and_does_not_rewalk(
    registry: glassbox.Registry,
) -> None:
    from starlette.middleware.gzip import GZipMiddleware

    from glassbox.metrics.routes import StarletteRoutes

    sub = Starlette(routes=[Route("/items/{id}", ok)])
    app = Starlette(routes=[Route("/items/{id}", ok), Mount("/api", app=GZipMiddleware(sub))])
    glassbox.instrument(app, service="svc", registry=registry, logs=False, tracing=False)
    client = TestClient(app)
    walks = 0
    original = StarletteRoutes.rebuild

    def counting(self: StarletteRoutes) -> None:
        nonlocal walks
        walks += 1
        original(self)

    StarletteRoutes.rebuild = counting  # type: ignore[method-assign]
    try:
        for i in range(20):
            assert client.get(f"/api/items/{i}").status_code == 200
    finally:
        StarletteRoutes.rebuild = original  # type: ignore[method-assign]
    samples = parse(client.get("/metrics").text)
    assert (
        value(samples, "http_requests_total", method="GET", route="/api/items/{id}", status="200")
        == 20
    )
    assert walks <= 1
