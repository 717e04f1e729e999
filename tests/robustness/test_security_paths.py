"""Path tricks against the protection of ``/metrics`` and ``/health/detailed``.

The app has a catch-all route, so every spelling that is not the protected path
reaches the app (and says so). Trailing and doubled slashes, dot segments,
%-encodings (``%6d%65trics``, ``%2F``), case changes, ``;params``, query strings, NUL
and spaces, with every method (HEAD and OPTIONS included) and wrong credentials: none
may return the metrics, the detailed health report or a check's output without the
token. Sent as raw request lines to a real uvicorn and to the separate metrics port on
127.0.0.1, and as scopes straight into the ASGI app.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import glassbox
from glassbox.console.app import ConsoleServer
from tests.conftest import free_port

METRICS_TOKEN = "metrics-7c1e-token"
HEALTH_TOKEN = "health-94ab-token"
CHECK_OUTPUT = "planted-check-output-5d2f"
METRICS_MARKERS = (b"http_requests_total", b"# TYPE", b"# HELP")
HEALTH_MARKERS = (b"uptimeSeconds", b"memoryRssBytes", CHECK_OUTPUT.encode())


async def anything(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"the app answered {request.url.path!r}")


def failing_check() -> bool:
    raise RuntimeError(CHECK_OUTPUT)


def make_app() -> Starlette:
    app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "HEAD", "POST"])])
    return glassbox.instrument(
        app,
        service="guarded",
        registry=glassbox.Registry(),
        health=[failing_check],
        metrics_token=METRICS_TOKEN,
        health_token=HEALTH_TOKEN,
    )


def _variants(path: str) -> list[str]:
    name = path.rsplit("/", 1)[1]
    head = path[: -len(name)]
    encoded = "".join(f"%{ord(c):02x}" for c in name)
    return [
        path, path + "/", path + "//", "/" + path, path.replace("/", "//"),
        "/." + path, "/x/.." + path, head + "./" + name, path + "/.", path + "/..",
        head + encoded, head + encoded.upper(), head[:-1] + "%2F" + name, path + "%2F",
        path + "%2f", path.upper(), path.title(), path + ";x=1", path + ";", path + "?x=1",
        path + "?", path + "%00", path + "%20", path + ".", path + "%3F", path + "#x",
        "/%2e" + path, "/%2e%2e" + path, path + "/%2e", path.replace("/", "/%2e/"),
        "http://127.0.0.1" + path, "*", path + "\\", path.replace("/", "\\"),
    ]  # fmt: skip


METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "FOO"]
BAD_AUTH = [
    None, "Bearer", "Bearer wrong", f"Bearer {METRICS_TOKEN[:-1]}", f"Bearer {HEALTH_TOKEN}x",
    f"Basic {base64.b64encode(f'x:{METRICS_TOKEN}'.encode()).decode()}",
    f"Token {METRICS_TOKEN}", f"Bearer{METRICS_TOKEN}", f"Bearer {METRICS_TOKEN.upper()}",
]  # fmt: skip


def _leaks(body: bytes, target: str, authorization: str | None) -> list[bytes]:
    """Protected content in ``body`` that ``authorization`` does not entitle."""
    found = []
    if authorization != f"Bearer {METRICS_TOKEN}":
        found += [m for m in METRICS_MARKERS if m in body]
    if authorization != f"Bearer {HEALTH_TOKEN}":
        found += [m for m in HEALTH_MARKERS if m in body]
    return found


# -- a real uvicorn ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ConsoleServer]:
    running = ConsoleServer(make_app()).start()
    yield running
    running.stop()


def raw_request(port: int, method: str, target: str, authorization: str | None) -> bytes:
    """The whole response to one raw request line (the target sent byte for byte)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


@pytest.mark.parametrize("protected", ["/metrics", "/health/detailed"])
def test_path_tricks_against_a_real_uvicorn(server: ConsoleServer, protected: str) -> None:
    answers: dict[int, int] = {}
    for target in _variants(protected):
        for method in METHODS:
            for authorization in BAD_AUTH:
                response = raw_request(server.port, method, target, authorization)
                status = _status(response)
                answers[status] = answers.get(status, 0) + 1
                leaked = _leaks(response, target, authorization)
                assert not leaked, (method, target, authorization, response[:300])
    assert 401 in answers  # the exact paths were refused, not missed
    assert 200 in answers  # and the other spellings reached the app
    # the control: with the token the same server serves the content
    token = METRICS_TOKEN if protected == "/metrics" else HEALTH_TOKEN
    response = raw_request(server.port, "GET", protected, f"Bearer {token}")
    assert _status(response) in (200, 503)
    assert any(m in response for m in (*METRICS_MARKERS, *HEALTH_MARKERS))


def test_path_tricks_against_the_separate_metrics_port() -> None:
    port = free_port()
    app = glassbox.instrument(
        Starlette(),
        service="own-port",
        registry=glassbox.Registry(),
        metrics_port=port,
        metrics_token=METRICS_TOKEN,
    )
    metrics_server = app.state.glassbox.metrics_server
    try:
        for target in _variants("/metrics"):
            for method in METHODS:
                for authorization in BAD_AUTH:
                    response = raw_request(port, method, target, authorization)
                    assert _status(response) != 200, (method, target, authorization)
                    assert not _leaks(response, target, authorization), (method, target)
        response = raw_request(port, "GET", "/metrics", f"Bearer {METRICS_TOKEN}")
        assert _status(response) == 200
    finally:
        metrics_server.shutdown()
        metrics_server.server_close()


# -- the ASGI app directly ---------------------------------------------------------------


def asgi_request(app: Any, method: str, target: str, authorization: str | None) -> bytes:
    raw_path, _, query = target.partition("?")
    headers = [(b"host", b"127.0.0.1")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),  # what a server puts there: %-escapes decoded
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return f"HTTP/1.1 {status} -\r\n\r\n".encode() + body


@pytest.mark.parametrize("protected", ["/metrics", "/health/detailed"])
def test_path_tricks_against_the_asgi_app(protected: str) -> None:
    app = make_app()
    for target in _variants(protected):
        for method in METHODS:
            for authorization in BAD_AUTH:
                response = asgi_request(app, method, target, authorization)
                assert not _leaks(response, target, authorization), (method, target, response)
                if unquote(target.partition("?")[0]) in (protected, protected + "/"):
                    assert _status(response) in (401, 405), (method, target, response)
