"""Bounded cardinality by construction: random paths and methods add no series."""

from __future__ import annotations

import asyncio
import random
import string

from starlette.testclient import TestClient

import glassbox
from tests.metrics.helpers import parse
from tests.metrics.test_asgi import starlette_app


def _series_count(text: str) -> int:
    return len(parse(text))


def test_ten_thousand_random_paths_and_methods_do_not_grow_series() -> None:
    registry = glassbox.Registry()
    app = glassbox.instrument(
        starlette_app(), service="svc", registry=registry, process_metrics=False
    )
    client = TestClient(app)
    rng = random.Random(1234)
    methods = [
        "GET",
        "POST",
        "PUT",
        "DELETE",
        "PATCH",
        "HEAD",
        "OPTIONS",
        "PROPFIND",
        "FOO",
        "M-SEARCH",
    ]

    def random_path() -> str:
        depth = rng.randint(1, 4)
        return "/" + "/".join(
            "".join(
                rng.choices(string.ascii_letters + string.digits + "-_.~", k=rng.randint(1, 12))
            )
            for _ in range(depth)
        )

    async def one(method: str, path: str) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"test")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: object) -> None:
            return None

        await app(scope, receive, send)

    def burst(n: int) -> None:
        async def run() -> None:
            for _ in range(n):
                await one(rng.choice(methods), random_path())

        asyncio.run(run())

    burst(1_000)  # warm-up: every (method, status) combination shows up
    after_warmup = _series_count(client.get("/metrics").text)
    burst(9_000)
    after_all = _series_count(client.get("/metrics").text)
    assert after_all == after_warmup
    store = registry.red["http"]
    assert len(store.series) <= 8 * 3  # 7 standard methods seen + _OTHER, x a few statuses
    assert sum(sum(row[: len(store.bounds) + 1]) for row in store.series.values()) == 10_000
    assert {route for _, route, _ in store.series} == {"<unmatched>"}
