"""Serving ``/metrics``: content negotiation, gzip and protection, shared by every server."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from glassbox._auth import Protection

if TYPE_CHECKING:
    from glassbox.metrics.registry import Registry

__all__ = [
    "OPENMETRICS_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "MetricsResponse",
    "Source",
    "build_response",
    "deny",
    "renderer",
    "wants_gzip",
    "wants_openmetrics",
]

TEXT_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"
#: Below this size gzip costs more than it saves.
_GZIP_MIN_BYTES: Final = 1024

Render = Callable[[bool], str]
"""``render(openmetrics) -> exposition text``."""


class Source(Protocol):
    """Where a scrape's metrics come from: a registry, or several workers merged."""

    @property
    def merges(self) -> bool:
        """True if :meth:`view` does file I/O (run it off the event loop)."""
        ...

    def view(self) -> Registry:
        """The registry to render for this scrape."""
        ...


def renderer(source: Source) -> Render:
    """A plain ``render(openmetrics)`` function for ``source``."""
    return lambda openmetrics: source.view().render(openmetrics=openmetrics)


MetricsResponse = tuple[int, list[tuple[bytes, bytes]], bytes]


def wants_openmetrics(accept: str | None) -> bool:
    """True if the Accept header prefers OpenMetrics (as Prometheus' scrape does)."""
    if not accept:
        return False
    best_om, best_text = -1.0, -1.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == "application/openmetrics-text":
            best_om = max(best_om, q)
        elif media in ("text/plain", "*/*", "text/*"):
            best_text = max(best_text, q)
    return best_om > 0 and best_om >= best_text


def wants_gzip(accept_encoding: str | None) -> bool:
    if not accept_encoding:
        return False
    for part in accept_encoding.split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding.lower() in ("gzip", "*"):
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00") for p in params)
    return False


def deny(method: str, authorization: str | None, protection: Protection) -> MetricsResponse | None:
    """The 401 or 405 answer for a scrape that may not proceed, else None."""
    if not protection.allows(authorization):
        body = b"authentication required\n"
        return (
            401,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"www-authenticate", protection.challenge.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
            b"" if method == "HEAD" else body,
        )
    if method not in ("GET", "HEAD"):
        return (
            405,
            [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain"), (b"content-length", b"0")],
            b"",
        )
    return None


def content_type(openmetrics: bool) -> bytes:
    return (OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE).encode()


def build_response(
    render: Render,
    *,
    method: str,
    accept: str | None,
    accept_encoding: str | None,
    authorization: str | None,
    protection: Protection,
) -> MetricsResponse:
    """Status, headers and body for one ``/metrics`` request (runs off the event loop)."""
    refused = deny(method, authorization, protection)
    if refused is not None:
        return refused
    openmetrics = wants_openmetrics(accept)
    body = render(openmetrics).encode("utf-8")
    headers = [
        (
            b"content-type",
            (OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE).encode(),
        ),
        (b"cache-control", b"no-store"),
        (b"vary", b"Accept, Accept-Encoding"),
    ]
    if len(body) >= _GZIP_MIN_BYTES and wants_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=1)
        headers.append((b"content-encoding", b"gzip"))
    headers.append((b"content-length", str(len(body)).encode()))
    return 200, headers, (b"" if method == "HEAD" else body)
