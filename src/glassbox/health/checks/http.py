"""An HTTP dependency: healthy when a GET answers 2xx (or 3xx) within the timeout."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from glassbox.exceptions import ConfigurationError
from glassbox.health.checks.base import Check, PerLoop
from glassbox.health.result import CheckResult

__all__ = ["Http", "Qdrant"]


class Http(Check):
    """GET ``url`` with one shared httpx client (connection reuse, no per-probe client)."""

    component_type = "component"
    measurement = "responseTime"

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        expect_status: range = range(200, 400),
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"health check URL {url!r} must be an absolute http(s) URL like https://host/path"
            )
        super().__init__(name or parts.hostname.replace(":", "-"), **kw)
        self.url = url
        self.expect_status = expect_status
        self._headers = headers or {}
        self._clients = PerLoop()

    async def probe(self) -> CheckResult:
        import httpx

        client = self._clients.get(
            lambda: httpx.AsyncClient(
                timeout=self.timeout, headers=self._headers, follow_redirects=False
            )
        )
        start = time.perf_counter()
        response = await client.get(self.url)
        elapsed = round((time.perf_counter() - start) * 1000, 3)
        if response.status_code not in self.expect_status:
            return CheckResult.failed(f"GET answered {response.status_code}", elapsed, "ms")
        return CheckResult.passed(elapsed, "ms")


class Qdrant(Http):
    """Qdrant's readiness endpoint (``/readyz``)."""

    component_type = "datastore"

    def __init__(self, url: str, *, name: str = "qdrant", **kw: Any) -> None:
        super().__init__(url.rstrip("/") + "/readyz", name=name, **kw)
