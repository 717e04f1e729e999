"""Metrics of the service's outgoing HTTP requests (httpx clients).

``instrument_client(client, peer="llm")`` counts every request the client sends in
``http_client_requests_total{peer,method,status}`` and times it in
``http_client_request_duration_seconds{peer}`` (``<namespace>_client_*`` with a namespace,
as for the RED metrics). ``peer`` is an alias the caller declares, never a URL, so the
series count stays bounded. ``status`` is the response's status code, or ``error`` when
no response came back (connection refused, timeout, TLS failure); the exception still
reaches the caller. The duration runs until the response headers arrive: the body of a
streamed response is not part of it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, TypeVar

from glassbox.exceptions import ConfigurationError
from glassbox.metrics.business import Counter, Histogram, _CounterChild
from glassbox.metrics.catalogue import (
    OTHER_METHOD,
    STANDARD_METHODS,
    ClientCatalogue,
    client_catalogue,
)
from glassbox.metrics.registry import REGISTRY, Registry

if TYPE_CHECKING:
    import httpx

__all__ = ["ClientMeter", "instrument_client"]

_PEER_RE: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,63}\Z")
#: Status label of a request that got no response.
ERROR_STATUS: Final = "error"

ClientT = TypeVar("ClientT", "httpx.Client", "httpx.AsyncClient")


class ClientMeter:
    """Records one peer's requests; shared by the transports of one instrumented client."""

    __slots__ = ("_children", "_counter", "_observe", "peer")

    def __init__(self, peer: str, counter: Counter, histogram: Histogram) -> None:
        self.peer = peer
        self._counter = counter
        self._observe = histogram.labels(peer).observe
        self._children: dict[tuple[str, str], _CounterChild] = {}

    def record(self, method: str, status: str, seconds: float) -> None:
        """Count one request (``status`` a code or ``error``) that took ``seconds``."""
        self._observe(seconds)
        if method not in STANDARD_METHODS:
            method = OTHER_METHOD
        child = self._children.get((method, status))
        if child is None:
            child = self._children[(method, status)] = self._counter.labels(
                self.peer, method, status
            )
        child.inc()


def _check_peer(peer: object) -> str:
    if not isinstance(peer, str) or not _PEER_RE.match(peer):
        raise ConfigurationError(
            f"instrument_client: peer {peer!r} must be a short alias such as 'llm' or"
            " 'payments' (1-64 letters, digits, '_', '-' or '.', starting with a letter),"
            " never a URL: it becomes a label value"
        )
    return peer


def _meter(peer: str, registry: Registry, catalogue: ClientCatalogue) -> ClientMeter:
    requests, duration = catalogue.requests_total, catalogue.request_duration
    counter = registry.counter(requests.name, requests.help, requests.labels)
    histogram = registry.histogram(
        duration.name, duration.help, duration.labels, buckets=catalogue.buckets
    )
    return ClientMeter(peer, counter, histogram)


def instrument_client(
    client: ClientT,
    *,
    peer: str,
    registry: Registry | None = None,
    namespace: str | None = None,
    buckets: Sequence[float] | None = None,
) -> ClientT:
    """Count and time the requests of an ``httpx.Client`` or ``httpx.AsyncClient``.

    The client is changed in place (its transports are wrapped) and returned. ``peer``
    names the remote side in the labels. ``namespace`` gives
    ``<namespace>_client_requests_total`` instead of ``http_client_requests_total``;
    ``buckets`` defaults to the RED buckets plus 30 s and 60 s (outgoing calls such as
    LLM completions are often slow).
    """
    import httpx

    from glassbox.metrics._httpx import wrap_transports

    name = _check_peer(peer)
    if not isinstance(client, httpx.Client | httpx.AsyncClient):
        raise ConfigurationError(
            f"instrument_client needs an httpx.Client or httpx.AsyncClient,"
            f" got {type(client).__name__}"
        )
    catalogue = client_catalogue(namespace, buckets)
    wrap_transports(client, _meter(name, registry or REGISTRY, catalogue))
    return client
