"""Redis and PostgreSQL checks against real servers: outage, recovery, hangs, pools."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

import glassbox
from glassbox.health import checks
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


class Served:
    """An instrumented app under a real uvicorn server in a thread, on a free port."""

    def __init__(self, *health: object) -> None:
        import uvicorn

        from tests.conftest import free_port

        app = Starlette()
        glassbox.instrument(
            app,
            service="svc",
            registry=glassbox.Registry(),
            health=health,
            health_pass_ttl=0,
            health_fail_ttl=0,
        )
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)


def _outage_and_recovery(served: Served, server: object, check_timeout: float) -> None:
    assert served.get("/health/ready").status_code == 200
    server.kill()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    ready = served.get("/health/ready")
    assert time.perf_counter() - t0 < check_timeout + 0.1
    assert ready.status_code == 503
    assert ready.json()["status"] == "fail"
    assert served.get("/health/live").status_code == 200
    server.start()  # type: ignore[attr-defined]
    wait_for(lambda: served.get("/health/ready").status_code == 200, 15, "readiness to recover")


def test_redis_by_url_outage_and_recovery(redis_server: object) -> None:
    check = checks.Redis(url=redis_server.url, timeout=0.5)  # type: ignore[attr-defined]
    with Served(check) as served:
        body = served.get("/health/detailed").json()
        assert body["checks"]["redis:responseTime"][0]["observedUnit"] == "ms"
        _outage_and_recovery(served, redis_server, 0.5)


def test_redis_reuses_the_applications_client(redis_server: object) -> None:
    import redis.asyncio

    url = redis_server.url  # type: ignore[attr-defined]
    before = asyncio.run(_clients_connected(url))
    client = redis.asyncio.from_url(url)
    with Served(checks.Redis(client)) as served:
        for _ in range(20):
            assert served.get("/health/ready").status_code == 200
    after = asyncio.run(_clients_connected(url))
    # one pooled connection for 20 probes (+1: our own second INFO), not one per probe
    assert after - before <= 2


async def _clients_connected(url: str) -> int:
    import redis.asyncio

    probe = redis.asyncio.from_url(url)
    try:
        stats = await probe.info("stats")
        return int(stats["total_connections_received"])
    finally:
        await probe.aclose()


def test_postgres_by_dsn_outage_and_recovery(postgres_server: object) -> None:
    check = checks.Postgres(dsn=postgres_server.dsn, timeout=0.5)  # type: ignore[attr-defined]
    with Served(check) as served:
        _outage_and_recovery(served, postgres_server, 0.5)


def test_postgres_reuses_a_psycopg_pool(postgres_server: object) -> None:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(postgres_server.dsn, min_size=1, max_size=2, open=False)  # type: ignore[attr-defined]
    runner = glassbox.health.HealthRunner(
        [checks.Postgres(pool)], registry=glassbox.Registry(), pass_ttl=0
    )

    async def main() -> list[str]:
        await pool.open()
        try:
            out = []
            for _ in range(10):
                out.append((await runner.run(runner.checks))["postgres"].status.value)
            return out
        finally:
            await pool.close()

    assert asyncio.run(main()) == ["pass"] * 10
    assert runner.runs["postgres"] == 10


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                accepted.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def test_a_dependency_that_never_answers_costs_timeout_plus_100ms(silent_server: int) -> None:
    timeout = 0.4
    with Served(
        checks.Redis(url=f"redis://127.0.0.1:{silent_server}/0", timeout=timeout),
        checks.Postgres(dsn=f"postgresql://x@127.0.0.1:{silent_server}/db", timeout=timeout),
        checks.Http(f"http://127.0.0.1:{silent_server}/", name="api", timeout=timeout),
    ) as served:
        for _ in range(3):
            t0 = time.perf_counter()
            response = served.get("/health/ready")
            assert time.perf_counter() - t0 < timeout + 0.1
            assert response.status_code == 503
            entries = response.json()["checks"]
            assert {e[0]["status"] for e in entries.values()} == {"fail"}


def test_postgres_with_a_sync_psycopg_pool_runs_in_a_thread_outage_and_recovery(
    postgres_server: object,
) -> None:
    from psycopg_pool import ConnectionPool

    dsn = postgres_server.dsn  # type: ignore[attr-defined]
    with ConnectionPool(dsn, min_size=1, max_size=2, timeout=2) as pool:
        check = checks.Postgres(pool, timeout=0.5)
        assert check.runs_in_thread
        with Served(check) as served:
            body = served.get("/health/detailed").json()
            assert body["checks"]["postgres:responseTime"][0]["status"] == "pass"
            _outage_and_recovery(served, postgres_server, 0.5)


def _backends(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_postgres_with_a_sync_connection_and_a_connection_function(
    postgres_server: object,
) -> None:
    import functools

    import psycopg

    dsn = postgres_server.dsn  # type: ignore[attr-defined]
    with psycopg.connect(dsn) as conn:
        shared = checks.Postgres(conn, name="shared")
        opener = checks.Postgres(functools.partial(psycopg.connect, dsn), name="opener")
        assert shared.runs_in_thread
        assert opener.runs_in_thread
        runner = glassbox.health.HealthRunner(
            [shared, opener], registry=glassbox.Registry(), pass_ttl=0
        )
        before = _backends(dsn)
        for _ in range(5):
            results = asyncio.run(runner.run(runner.checks))
            assert {r.status.value for r in results.values()} == {"pass"}
        # the app's connection is left outside any transaction; opened ones are closed
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert _backends(dsn) == before


def test_postgres_with_an_async_psycopg_connection(postgres_server: object) -> None:
    import psycopg

    dsn = postgres_server.dsn  # type: ignore[attr-defined]

    async def main() -> str:
        conn = await psycopg.AsyncConnection.connect(dsn)
        try:
            check = checks.Postgres(conn)
            assert not check.runs_in_thread
            runner = glassbox.health.HealthRunner([check], registry=glassbox.Registry())
            return (await runner.run(runner.checks))["postgres"].status.value
        finally:
            await conn.close()

    assert asyncio.run(main()) == "pass"


def test_postgres_with_a_sqlalchemy_engine(postgres_server: object) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    dsn = postgres_server.dsn.replace("postgresql://", "postgresql+psycopg://")  # type: ignore[attr-defined]
    engine = sqlalchemy.create_engine(dsn, pool_size=1)
    try:
        check = checks.Postgres(engine)
        assert check.runs_in_thread
        runner = glassbox.health.HealthRunner([check], registry=glassbox.Registry())
        assert asyncio.run(runner.run(runner.checks))["postgres"].status.value == "pass"
    finally:
        engine.dispose()


def test_postgres_rejects_what_it_cannot_query() -> None:
    with pytest.raises(glassbox.ConfigurationError, match="cannot run SELECT 1 on a str"):
        checks.Postgres("postgresql://localhost/db")


def test_a_sync_pool_whose_server_never_answers_fails_within_the_timeout(
    silent_server: int,
) -> None:
    from psycopg_pool import ConnectionPool

    timeout = 0.4
    dsn = f"postgresql://x@127.0.0.1:{silent_server}/db?connect_timeout=2"
    pool = ConnectionPool(dsn, min_size=1, open=False)
    pool.open(wait=False)
    try:
        with Served(checks.Postgres(pool, timeout=timeout)) as served:
            for _ in range(3):
                t0 = time.perf_counter()
                response = served.get("/health/ready")
                assert time.perf_counter() - t0 < timeout + 0.1
                assert response.status_code == 503
    finally:
        pool.close(timeout=0)
