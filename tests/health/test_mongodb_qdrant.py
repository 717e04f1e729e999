"""MongoDB and Qdrant checks against stand-ins that speak the real protocols."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import glassbox
from glassbox.health import HealthRunner, checks
from tests.conftest import free_port, wait_for
from tests.standins.mongo import MongoStandIn


@pytest.fixture
def mongo() -> Iterator[MongoStandIn]:
    server = MongoStandIn(free_port())
    server.start()
    yield server
    server.close()


def _status(runner: HealthRunner, name: str) -> str:
    return asyncio.run(runner.run(runner.checks))[name].status.value


def test_mongodb_ping_over_the_wire_protocol(mongo: MongoStandIn) -> None:
    runner = HealthRunner(
        [checks.MongoDB(url=f"mongodb://127.0.0.1:{mongo.port}/?directConnection=true")],
        pass_ttl=0,
        fail_ttl=0,
        registry=glassbox.Registry(),
    )
    assert _status(runner, "mongodb") == "pass"
    assert "ping" in mongo.commands
    mongo.stop()
    assert _status(runner, "mongodb") == "fail"
    mongo.start()
    wait_for(lambda: _status(runner, "mongodb") == "pass", 15, "mongodb check to recover")


def test_mongodb_reuses_the_applications_client(mongo: MongoStandIn) -> None:
    from pymongo import MongoClient

    client: MongoClient = MongoClient(  # type: ignore[type-arg]
        f"mongodb://127.0.0.1:{mongo.port}/?directConnection=true", serverSelectionTimeoutMS=500
    )
    try:
        runner = HealthRunner([checks.MongoDB(client)], pass_ttl=0, registry=glassbox.Registry())
        for _ in range(5):
            assert _status(runner, "mongodb") == "pass"
        assert mongo.commands.count("ping") == 5
    finally:
        client.close()


def test_qdrant_readyz() -> None:
    import uvicorn

    state = {"ready": True}

    async def readyz(request: object) -> PlainTextResponse:
        if state["ready"]:
            return PlainTextResponse("all shards are ready")
        return PlainTextResponse("some shards are not ready", status_code=503)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/readyz", readyz)]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 10, "the qdrant stand-in")
        runner = HealthRunner(
            [checks.Qdrant(f"http://127.0.0.1:{port}")],
            pass_ttl=0,
            fail_ttl=0,
            registry=glassbox.Registry(),
        )
        assert _status(runner, "qdrant") == "pass"
        state["ready"] = False
        result = asyncio.run(runner.run(runner.checks))["qdrant"]
        assert result.status.value == "fail"
        assert result.output == "GET answered 503"
    finally:
        server.should_exit = True
        thread.join(10)
