"""MongoDB: the ``ping`` command through the app's client (pymongo, motor) or a URL."""

from __future__ import annotations

import inspect
import time
from typing import Any
from urllib.parse import urlsplit

from glassbox.exceptions import ConfigurationError
from glassbox.health.checks.base import Check, PerLoop, exactly_one
from glassbox.health.result import CheckResult

__all__ = ["MongoDB"]


class MongoDB(Check):
    """``{ping: 1}`` on the admin database; one client kept per event loop when given a URL."""

    component_type = "datastore"
    measurement = "responseTime"

    def __init__(
        self, client: Any = None, *, url: str | None = None, name: str = "mongodb", **kw: Any
    ) -> None:
        super().__init__(name, **kw)
        exactly_one(name, client=client, url=url)
        if url is not None and urlsplit(url).scheme not in ("mongodb", "mongodb+srv"):
            raise ConfigurationError(
                f"health check {name!r}: MongoDB URL must look like mongodb://host:port"
                " (the URL itself is not shown: it may hold a password)"
            )
        self._client = client
        self._url = url
        self._own = PerLoop()
        # pymongo's MongoClient blocks: the runner then calls probe() in its thread pool
        self._blocking = client is not None and not inspect.iscoroutinefunction(
            client.admin.command
        )

    @property
    def runs_in_thread(self) -> bool:
        return self._blocking

    def _url_client(self) -> Any:
        from pymongo import AsyncMongoClient

        ms = int(self.timeout * 1000)
        return self._own.get(
            lambda: AsyncMongoClient(
                self._url,
                serverSelectionTimeoutMS=ms,
                connectTimeoutMS=ms,
                socketTimeoutMS=ms,
                maxPoolSize=2,
                appname="glassbox-health",
            )
        )

    def probe(self) -> Any:
        if self._blocking:
            start = time.perf_counter()
            reply = self._client.admin.command("ping")
            return _ok(reply, start)
        return self._probe_async()

    async def _probe_async(self) -> CheckResult:
        client = self._client if self._client is not None else self._url_client()
        start = time.perf_counter()
        reply = client.admin.command("ping")
        if inspect.isawaitable(reply):
            reply = await reply
        return _ok(reply, start)


def _ok(reply: Any, start: float) -> CheckResult:
    elapsed = round((time.perf_counter() - start) * 1000, 3)
    if float(reply.get("ok", 0)) != 1.0:
        return CheckResult.failed(f"ping answered ok={reply.get('ok')!r}", elapsed, "ms")
    return CheckResult.passed(elapsed, "ms")
