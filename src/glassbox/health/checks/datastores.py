"""Redis and PostgreSQL checks that reuse the application's clients and pools.

Give the check the client or pool the application already has; it then costs one
round trip (``PING`` / ``SELECT 1``) on a pooled connection. Given only a URL, the
check keeps one client of its own for its lifetime (per event loop) and never opens
a connection per probe.
"""

from __future__ import annotations

import inspect
import time
from typing import Any
from urllib.parse import urlsplit

from glassbox.exceptions import ConfigurationError
from glassbox.health.checks.base import Check, PerLoop, exactly_one
from glassbox.health.result import CheckResult

__all__ = ["Postgres", "Redis"]


def _check_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        raise ConfigurationError(
            f"{what} URL must look like {schemes[0]}://host:port/..., got scheme"
            f" {parts.scheme!r} (the URL itself is not shown: it may hold a password)"
        )
    return url


def _is_async_client(client: Any) -> bool:
    """redis.asyncio clients: ``execute_command`` is a coroutine function."""
    return inspect.iscoroutinefunction(
        getattr(client, "execute_command", None)
    ) or inspect.iscoroutinefunction(getattr(client, "ping", None))


class Redis(Check):
    """``PING`` through a redis-py client (async or sync) or a ``redis://`` URL."""

    component_type = "datastore"
    measurement = "responseTime"

    def __init__(
        self, client: Any = None, *, url: str | None = None, name: str = "redis", **kw: Any
    ) -> None:
        super().__init__(name, **kw)
        exactly_one(name, client=client, url=url)
        self._url = _check_url(url, ("redis", "rediss", "unix"), "Redis") if url else None
        self._client = client
        self._own = PerLoop()
        # a synchronous client blocks: the runner then calls probe() in its own thread
        # pool, with its guard against piling up threads behind a hung server
        self._blocking = client is not None and not _is_async_client(client)

    @property
    def runs_in_thread(self) -> bool:
        return self._blocking

    def probe(self) -> Any:
        if self._blocking:
            start = time.perf_counter()
            reply = self._client.ping()
            return _pong(reply, (time.perf_counter() - start) * 1000)
        return self._probe_async()

    async def _probe_async(self) -> CheckResult:
        client = self._client
        if client is None:
            import redis.asyncio

            url = self._url
            assert url is not None
            client = self._own.get(
                lambda: redis.asyncio.from_url(
                    url,
                    socket_connect_timeout=self.timeout,
                    socket_timeout=self.timeout,
                    max_connections=2,
                )
            )
        start = time.perf_counter()
        reply = await client.ping()
        return _pong(reply, (time.perf_counter() - start) * 1000)


def _pong(reply: Any, elapsed_ms: float) -> CheckResult:
    if reply not in (True, b"PONG", "PONG"):
        return CheckResult.failed(f"unexpected PING reply {reply!r}"[:120])
    return CheckResult.passed(round(elapsed_ms, 3), "ms")


def _postgres_kind(pool: Any) -> str:
    """What ``pool`` is, by duck typing (no driver is imported to find out)."""
    if hasattr(pool, "fetchval"):
        return "asyncpg"  # pool or connection
    if hasattr(pool, "getconn") and hasattr(pool, "connection"):
        return "async_pool" if inspect.iscoroutinefunction(pool.getconn) else "pool"
    if hasattr(pool, "sync_engine") and hasattr(pool, "connect"):
        return "async_engine"  # SQLAlchemy AsyncEngine
    if hasattr(pool, "connect") and hasattr(pool, "dispose") and hasattr(pool, "raw_connection"):
        return "engine"  # SQLAlchemy Engine
    if hasattr(pool, "execute") and hasattr(pool, "transaction"):
        return "async_connection" if inspect.iscoroutinefunction(pool.execute) else "connection"
    if callable(pool):
        return "async_factory" if inspect.iscoroutinefunction(pool) else "factory"
    raise ConfigurationError(
        f"health check Postgres: cannot run SELECT 1 on a {type(pool).__name__}; pass an"
        " asyncpg pool, a psycopg ConnectionPool/AsyncConnectionPool or connection, a"
        " SQLAlchemy Engine/AsyncEngine, a function opening a connection, or dsn="
    )


#: Kinds whose calls block: the runner calls probe() in its worker thread.
_BLOCKING = frozenset({"pool", "engine", "connection", "factory"})


class Postgres(Check):
    """``SELECT 1`` through what the app already has, or a DSN.

    Accepted: an asyncpg pool or connection; a psycopg (v3) ``AsyncConnectionPool``,
    ``ConnectionPool``, ``AsyncConnection`` or ``Connection``; a SQLAlchemy ``AsyncEngine``
    or ``Engine``; a function opening a connection (``functools.partial(psycopg.connect,
    dsn)``, ``pool.connection``), used as ``with factory() as conn``. Synchronous ones run
    in the health runner's worker thread under the check's timeout, never on the event
    loop; a pool is asked for a connection with that timeout.
    """

    component_type = "datastore"
    measurement = "responseTime"

    def __init__(
        self, pool: Any = None, *, dsn: str | None = None, name: str = "postgres", **kw: Any
    ) -> None:
        super().__init__(name, **kw)
        exactly_one(name, pool=pool, dsn=dsn)
        self._dsn = _check_url(dsn, ("postgresql", "postgres"), "PostgreSQL") if dsn else None
        self._pool = pool
        self._kind = _postgres_kind(pool) if pool is not None else "dsn"
        self._own = PerLoop()

    @property
    def runs_in_thread(self) -> bool:
        return self._kind in _BLOCKING

    def probe(self) -> Any:
        if self._kind in _BLOCKING:
            start = time.perf_counter()
            value = self._select_one_blocking(self._pool)
            return _one(value, (time.perf_counter() - start) * 1000)
        return self._probe_async()

    def _select_one_blocking(self, pool: Any) -> Any:
        if self._kind == "pool":  # psycopg_pool.ConnectionPool
            with pool.connection(timeout=self.timeout) as conn:
                return conn.execute("SELECT 1").fetchone()[0]
        if self._kind == "engine":  # SQLAlchemy Engine
            with pool.connect() as conn:
                return conn.exec_driver_sql("SELECT 1").scalar()
        if self._kind == "connection":  # psycopg Connection: leave its state as it was
            with pool.transaction():
                return pool.execute("SELECT 1").fetchone()[0]
        opened = pool()
        if not hasattr(opened, "__enter__"):
            raise ConfigurationError(
                f"health check {self.name!r}: the connection function returned a"
                f" {type(opened).__name__}, which cannot be used in a with block"
            )
        with opened as conn:
            return conn.execute("SELECT 1").fetchone()[0]

    async def _select_one(self, pool: Any) -> Any:
        if self._kind == "asyncpg":
            return await pool.fetchval("SELECT 1")
        if self._kind == "async_pool":  # psycopg_pool.AsyncConnectionPool
            async with pool.connection(timeout=self.timeout) as conn:
                cur = await conn.execute("SELECT 1")
                return (await cur.fetchone())[0]
        if self._kind == "async_engine":  # SQLAlchemy AsyncEngine
            async with pool.connect() as conn:
                return (await conn.exec_driver_sql("SELECT 1")).scalar()
        if self._kind == "async_connection":  # psycopg AsyncConnection
            async with pool.transaction():
                cur = await pool.execute("SELECT 1")
                return (await cur.fetchone())[0]
        async with await pool() as conn:  # async factory
            cur = await conn.execute("SELECT 1")
            return (await cur.fetchone())[0]

    async def _own_connection(self) -> Any:
        import psycopg

        holder = self._own.get(lambda: {"conn": None})
        conn = holder["conn"]
        if conn is None or conn.closed or conn.broken:
            assert self._dsn is not None
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=max(1, int(self.timeout + 0.999)), autocommit=True
            )
            holder["conn"] = conn
        return conn

    async def _probe_async(self) -> CheckResult:
        start = time.perf_counter()
        if self._pool is not None:
            value = await self._select_one(self._pool)
        else:
            conn = await self._own_connection()
            try:
                cur = await conn.execute("SELECT 1")
                value = (await cur.fetchone())[0]
            except Exception:
                await conn.close()
                raise
        return _one(value, (time.perf_counter() - start) * 1000)


def _one(value: Any, elapsed_ms: float) -> CheckResult:
    if value != 1:
        return CheckResult.failed(f"SELECT 1 returned {value!r}"[:120])
    return CheckResult.passed(round(elapsed_ms, 3), "ms")
