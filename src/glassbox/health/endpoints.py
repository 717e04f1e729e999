"""``/health``, ``/health/live``, ``/health/ready``, ``/health/detailed`` for ASGI and WSGI.

- live: the process alone (answering at all proves the event loop turns); never
  depends on a dependency, so a database outage cannot restart the fleet.
- ready: the readiness checks; 503 when a critical one fails.
- health: every check with its status.
- detailed: adds per-check latency, observed values, uptime, memory and CPU. With a
  health token set, it needs ``Authorization: Bearer <token>``, and check messages
  are hidden from anonymous callers everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from glassbox._auth import Protection
from glassbox.health.report import CONTENT_TYPE, ProcessInfo, build_body, overall
from glassbox.health.result import Status
from glassbox.health.runner import HealthRunner

__all__ = ["HealthEndpoints", "WSGIHealthMiddleware", "health_paths"]

Kind = Literal["live", "ready", "health", "detailed"]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

_REASONS = {200: "OK", 401: "Unauthorized", 405: "Method Not Allowed", 503: "Service Unavailable"}


def health_paths(prefix: str = "/health") -> dict[str, Kind]:
    base = prefix.rstrip("/")
    paths: dict[str, Kind] = {}
    kinds: tuple[tuple[str, Kind], ...] = (
        ("", "health"),
        ("/live", "live"),
        ("/ready", "ready"),
        ("/detailed", "detailed"),
    )
    for suffix, kind in kinds:
        paths[base + suffix] = kind
        paths[base + suffix + "/"] = kind
    return paths


class HealthEndpoints:
    """Answers for the four health endpoints, shared by the ASGI and WSGI servers."""

    def __init__(
        self,
        runner: HealthRunner,
        *,
        service: str,
        version: str,
        protection: Protection = Protection(),  # noqa: B008 - immutable value object
    ) -> None:
        self.runner = runner
        self.service = service
        self.version = version
        self.protection = protection
        self.process = ProcessInfo()

    def _refuse(self, kind: Kind, method: str, authorized: bool) -> Answer | None:
        if method not in ("GET", "HEAD"):
            return 405, [(b"allow", b"GET, HEAD"), (b"content-length", b"0")], b""
        if kind == "detailed" and not authorized:
            body = b'{"status":"fail","output":"authentication required"}'
            return (
                401,
                [
                    (b"content-type", CONTENT_TYPE.encode()),
                    (b"www-authenticate", self.protection.challenge.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                ],
                b"" if method == "HEAD" else body,
            )
        return None

    def _finish(
        self, kind: Kind, method: str, results: dict[str, Any], detailed: bool, authorized: bool
    ) -> Answer:
        checks = self.runner.readiness_checks if kind == "ready" else self.runner.checks
        if kind == "live":
            checks, status = (), Status.PASS
        else:
            status = overall(checks, results)
        body = build_body(
            status=status,
            checks=checks,
            results=results,
            service=self.service,
            version=self.version,
            detailed=detailed,
            show_output=authorized or not self.protection.enabled,
            process=self.process if detailed else None,
        )
        headers = [
            (b"content-type", CONTENT_TYPE.encode()),
            (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode()),
        ]
        return status.http_status, headers, (b"" if method == "HEAD" else body)

    def _selected(self, kind: Kind) -> tuple[Any, ...]:
        if kind == "live":
            return ()
        return self.runner.readiness_checks if kind == "ready" else self.runner.checks

    async def answer(self, kind: Kind, method: str, authorization: str | None) -> Answer:
        authorized = self.protection.allows(authorization)
        refused = self._refuse(kind, method, authorized)
        if refused is not None:
            return refused
        selected = self._selected(kind)
        results = await self.runner.run(selected) if selected else {}
        return self._finish(kind, method, results, kind == "detailed", authorized)

    def answer_sync(self, kind: Kind, method: str, authorization: str | None) -> Answer:
        authorized = self.protection.allows(authorization)
        refused = self._refuse(kind, method, authorized)
        if refused is not None:
            return refused
        selected = self._selected(kind)
        results = self.runner.run_sync(selected) if selected else {}
        return self._finish(kind, method, results, kind == "detailed", authorized)


class WSGIHealthMiddleware:
    """WSGI: answers the health paths, passes everything else through."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        endpoints: HealthEndpoints,
        prefix: str = "/health",
    ) -> None:
        self.app = app
        self.endpoints = endpoints
        self._paths = health_paths(prefix)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        kind = self._paths.get(environ.get("PATH_INFO", ""))
        if kind is None:
            return self.app(environ, start_response)
        status, headers, body = self.endpoints.answer_sync(
            kind, environ.get("REQUEST_METHOD", "GET"), environ.get("HTTP_AUTHORIZATION")
        )
        start_response(
            f"{status} {_REASONS.get(status, '')}",
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
        )
        return [body]
