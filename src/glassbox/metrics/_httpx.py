"""Transports that meter an httpx client's requests (imported only with httpx in use)."""

from __future__ import annotations

import time
from types import TracebackType

import httpx

from glassbox.exceptions import ConfigurationError
from glassbox.metrics.client import ERROR_STATUS, ClientMeter

__all__ = ["MeteredAsyncTransport", "MeteredTransport", "wrap_transports"]


class MeteredTransport(httpx.BaseTransport):
    """Wraps a sync transport: one count and one duration per request."""

    def __init__(self, inner: httpx.BaseTransport, meter: ClientMeter) -> None:
        self.inner, self.meter = inner, meter

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        try:
            response = self.inner.handle_request(request)
        except Exception:
            self.meter.record(request.method, ERROR_STATUS, time.perf_counter() - start)
            raise
        self.meter.record(request.method, str(response.status_code), time.perf_counter() - start)
        return response

    def __enter__(self) -> MeteredTransport:
        self.inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.inner.__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        self.inner.close()


class MeteredAsyncTransport(httpx.AsyncBaseTransport):
    """Wraps an async transport: one count and one duration per request."""

    def __init__(self, inner: httpx.AsyncBaseTransport, meter: ClientMeter) -> None:
        self.inner, self.meter = inner, meter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
        except Exception:
            self.meter.record(request.method, ERROR_STATUS, time.perf_counter() - start)
            raise
        self.meter.record(request.method, str(response.status_code), time.perf_counter() - start)
        return response

    async def __aenter__(self) -> MeteredAsyncTransport:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        await self.inner.aclose()


def wrap_transports(client: httpx.Client | httpx.AsyncClient, meter: ClientMeter) -> None:
    """Wrap the client's default transport and its mounts (proxies included) in place."""
    current = getattr(client, "_transport", None)
    if current is None or not isinstance(getattr(client, "_mounts", None), dict):
        raise ConfigurationError(
            f"instrument_client: httpx {httpx.__version__} keeps a client's transports"
            " where glassbox does not look (it wraps _transport and _mounts)"
        )
    if isinstance(current, MeteredTransport | MeteredAsyncTransport):
        if current.meter.peer == meter.peer:
            return
        raise ConfigurationError(
            f"instrument_client: this client is already instrumented as peer"
            f" {current.meter.peer!r}; use one client per peer"
        )
    if isinstance(client, httpx.AsyncClient):
        client._transport = MeteredAsyncTransport(client._transport, meter)
        client._mounts = {
            pattern: None if t is None else MeteredAsyncTransport(t, meter)
            for pattern, t in client._mounts.items()
        }
    else:
        client._transport = MeteredTransport(client._transport, meter)
        client._mounts = {
            pattern: None if t is None else MeteredTransport(t, meter)
            for pattern, t in client._mounts.items()
        }
