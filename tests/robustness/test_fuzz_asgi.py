"""Hostile ASGI scopes driven straight into an instrumented Starlette app.

Invariants, for every scope hypothesis makes up (odd methods, raw paths with
%-encodings, ``..`` and NUL, huge and non-UTF-8 header values, missing scope keys,
``lifespan`` and ``websocket`` scopes):

* no exception comes out of the instrumented app that the same app without glassbox
  does not raise for the same scope;
* an HTTP scope gets exactly one ``http.response.start``;
* ``/metrics`` content is never served without the token;
* every label value of the RED metrics is from a fixed set (standard methods or
  ``_OTHER``, the app's route templates or ``<unmatched>``, three-digit statuses), so
  the number of series stays bounded however many paths and methods are sent.

A WSGI variant drives random environs into an instrumented Flask app.
"""

from __future__ import annotations

import asyncio
import copy
import io
import string
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import glassbox
from glassbox.metrics.catalogue import OTHER_METHOD, STANDARD_METHODS, UNMATCHED_ROUTE
from tests.metrics.helpers import parse
from tests.robustness.fuzzing import fuzz

TOKEN = "fuzz-metrics-token"
HEALTH_TOKEN = "fuzz-health-token"
ROUTES = frozenset({"/items/{item_id}", "/boom", "/echo", "/ws", UNMATCHED_ROUTE})
METHODS = STANDARD_METHODS | {OTHER_METHOD}
STATUSES = frozenset(str(code) for code in range(100, 600))

Message = dict[str, Any]


async def item(request: Request) -> Response:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def boom(request: Request) -> Response:
    raise RuntimeError("the app's own error")


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body[:64], media_type="application/octet-stream")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield


def make_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/items/{item_id}", item, methods=["GET", "POST", "PUT"]),
            Route("/boom", boom),
            Route("/echo", echo, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ],
        lifespan=lifespan,
    )


REGISTRY = glassbox.Registry()
INSTRUMENTED = glassbox.instrument(
    make_app(),
    service="fuzz",
    registry=REGISTRY,
    tracer_provider=TracerProvider(),
    metrics_token=TOKEN,
    health_token=HEALTH_TOKEN,
)
BARE = make_app()

# -- strategies -------------------------------------------------------------------------

_TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
methods = st.one_of(
    st.sampled_from(sorted(STANDARD_METHODS)),
    st.sampled_from(["get", "Get", "PROPFIND", "M-SEARCH", "BREW", "", " GET", "GET\x00"]),
    st.text(alphabet=_TCHAR, min_size=1, max_size=12),
    st.text(max_size=12),
    st.just("X" * 10_000),
)
segments = st.one_of(
    st.sampled_from(
        [
            "items", "boom", "echo", "ws", "metrics", "METRICS", "health", "detailed",
            "live", "ready", "..", ".", "", "%2F", "%2e%2e", "%00", "\x00", "%6d%65trics",
            "metrics;x=1", "metrics?", "é", "\U0001f642", "a%ZZ", "\\", "\r\n", " ", "\ud800",
        ]
    ),
    st.text(max_size=12),
)  # fmt: skip
paths = st.one_of(
    st.builds(
        lambda parts, lead, trail: lead + "/".join(parts) + trail,
        st.lists(segments, max_size=6),
        st.sampled_from(["/", "//", "", "/./", "/../"]),
        st.sampled_from(["", "/", "//", "%2F", "?"]),
    ),
    st.text(max_size=40),
    st.just("/items/" + "a" * 100_000),
)
header_names = st.one_of(
    st.sampled_from(
        [
            b"authorization", b"Authorization", b"content-length", b"CONTENT-LENGTH",
            b"x-request-id", b"traceparent", b"accept", b"accept-encoding", b"cookie",
            b"content-type", b"host", b"connection", b"upgrade",
        ]
    ),
    st.binary(max_size=20),
)  # fmt: skip
header_values = st.one_of(
    st.sampled_from(
        [
            f"Bearer {TOKEN}".encode(), f"Bearer {HEALTH_TOKEN}".encode(), b"Bearer",
            b"Basic !!!", b"Basic " + b"=" * 9, b"\xb2", b"\xb9\xb2", b"-1", b"1e3",
            b"9" * 40, b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-0000000000000000-01", b"gzip, *;q=0",
            b"application/openmetrics-text; q=nan", b"application/openmetrics-text;q=1e999",
            b"text/plain;;;q=", b"abc\n", b"\xff\xfe\x00", b"req\x00id",
        ]
    ),
    st.binary(max_size=64),
    st.binary(min_size=1, max_size=16).map(lambda b: b + b"\xff\xc3"),
    st.just(b"v" * 200_000),
)  # fmt: skip
headers = st.lists(st.tuples(header_names, header_values), max_size=8)
bodies = st.lists(st.binary(max_size=256), max_size=3)
HTTP_KEYS = (
    "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
    "root_path", "headers", "client", "server", "state",
)  # fmt: skip


@st.composite
def http_scopes(draw: st.DrawFn) -> tuple[dict[str, Any], list[Message]]:
    path = draw(paths)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": draw(st.sampled_from(["2.3", "2.4"]))},
        "http_version": draw(st.sampled_from(["1.1", "1.0", "2", "0.9", ""])),
        "method": draw(methods),
        "scheme": draw(st.sampled_from(["http", "https", "ws", ""])),
        "path": path,
        "raw_path": draw(st.one_of(st.just(path.encode("utf-8", "replace")), st.binary())),
        "query_string": draw(st.binary(max_size=64)),
        "root_path": draw(st.sampled_from(["", "", "/api", "/", "/items"])),
        "headers": draw(headers),
        "client": draw(st.sampled_from([("127.0.0.1", 5000), None, ("::1", 0)])),
        "server": draw(st.sampled_from([("127.0.0.1", 8000), None])),
    }
    for key in draw(st.sets(st.sampled_from(HTTP_KEYS), max_size=3)):
        scope.pop(key, None)
    chunks = draw(bodies) or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    return scope, messages


@st.composite
def websocket_scopes(draw: st.DrawFn) -> tuple[dict[str, Any], list[Message]]:
    path = draw(st.one_of(st.just("/ws"), paths))
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode("utf-8", "replace"),
        "query_string": b"",
        "root_path": "",
        "headers": draw(headers),
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }
    for key in draw(st.sets(st.sampled_from(["headers", "query_string", "subprotocols"]))):
        scope.pop(key, None)
    return scope, [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]


def lifespan_scopes() -> st.SearchStrategy[tuple[dict[str, Any], list[Message]]]:
    return st.builds(
        lambda state: (
            {"type": "lifespan", "asgi": {"version": "3.0"}, **state},
            [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
        ),
        st.sampled_from([{}, {"state": {}}]),
    )


scopes = st.one_of(
    http_scopes(), http_scopes(), http_scopes(), websocket_scopes(), lifespan_scopes()
)

# -- driving ----------------------------------------------------------------------------


async def _drive(
    app: Any, scope: dict[str, Any], messages: list[Message]
) -> tuple[list[Message], BaseException | None]:
    queue = list(messages)
    sent: list[Message] = []
    ends = {"http": "http.disconnect", "websocket": "websocket.disconnect"}

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(0)
        return {"type": ends.get(scope.get("type", ""), "lifespan.shutdown")}

    async def send(message: Message) -> None:
        sent.append(dict(message))

    try:
        await asyncio.wait_for(app(scope, receive, send), 10)
    except Exception as exc:
        return sent, exc
    return sent, None


def run(app: Any, scope: dict[str, Any], messages: list[Message]) -> tuple[list[Message], Any]:
    return asyncio.run(_drive(app, scope, messages))


def red_labels() -> list[dict[str, str]]:
    """Labels of every sample of the RED families in an authorised scrape."""
    text = REGISTRY.render(openmetrics=False)
    return [
        dict(labels)
        for (name, labels) in parse(text)
        if name.startswith("http_") and dict(labels).get("method") is not None
    ]


def assert_bounded() -> None:
    for labels in red_labels():
        assert labels["method"] in METHODS, labels
        assert labels.get("route", UNMATCHED_ROUTE) in ROUTES, labels
        if "status" in labels:
            assert labels["status"] in STATUSES, labels


def _authorised(scope: dict[str, Any]) -> bool:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            return bool(value.strip() == f"Bearer {TOKEN}".encode())
    return False


@fuzz(400)
@given(scopes)
def test_instrumented_app_fails_only_as_the_app_does(
    case: tuple[dict[str, Any], list[Message]],
) -> None:
    scope, messages = case
    _, bare_error = run(BARE, copy.deepcopy(scope), messages)
    sent, error = run(INSTRUMENTED, copy.deepcopy(scope), messages)
    if error is not None:
        assert type(error) is type(bare_error), (
            f"glassbox raised {error!r}; the bare app raised {bare_error!r}"
        )
    if scope["type"] == "http":
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, sent
        for name, value in starts[0].get("headers", ()):
            assert not {13, 10} & set(value), (name, value)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        if b"# TYPE http_requests" in body or b"http_requests_total{" in body:
            assert _authorised(scope), "metrics served without the token"
        if b'"uptime_seconds"' in body or b'"memory' in body:
            assert any(
                v.strip() == f"Bearer {HEALTH_TOKEN}".encode()
                for k, v in scope.get("headers") or ()
                if k.lower() == b"authorization"
            ), "detailed health served without the token"
    assert_bounded()


def test_series_stay_bounded_under_many_distinct_paths_and_methods() -> None:
    registry = glassbox.Registry()
    app = glassbox.instrument(make_app(), service="many", registry=registry, access_log=False)
    for i in range(3000):
        scope = {
            "type": "http",
            "method": f"M{i % 97}" if i % 3 else "GET",
            "path": f"/items/{i}" if i % 2 else f"/no/such/{i}/{'x' * (i % 50)}",
            "headers": [],
            "query_string": b"",
        }
        run(app, scope, [{"type": "http.request", "body": b""}])
    text = registry.render(openmetrics=False)
    totals = [dict(labels) for (name, labels) in parse(text) if name == "http_requests_total"]
    assert {t["method"] for t in totals} <= {"GET", OTHER_METHOD}
    assert {t["route"] for t in totals} <= {"/items/{item_id}", UNMATCHED_ROUTE}
    # 2 methods x 2 routes x statuses {200, 404, 405}: at most 12 series from 3000 requests
    assert len(totals) <= 12, totals


# -- WSGI -------------------------------------------------------------------------------


def make_flask() -> Flask:
    flask_app = Flask("fuzz")

    @flask_app.route("/items/<item_id>", methods=["GET", "POST"])
    def flask_item(item_id: str) -> str:
        return f"item {item_id}"

    @flask_app.route("/boom")
    def flask_boom() -> str:
        raise RuntimeError("the app's own error")

    flask_app.config["PROPAGATE_EXCEPTIONS"] = False
    return flask_app


WSGI_REGISTRY = glassbox.Registry()
FLASK = glassbox.instrument(
    make_flask(), service="fuzz-wsgi", registry=WSGI_REGISTRY, metrics_token=TOKEN
)
BARE_FLASK = make_flask()
WSGI_ROUTES = frozenset({"/items/<item_id>", "/boom", UNMATCHED_ROUTE})


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


@st.composite
def environs(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(st.binary(max_size=128))
    # a WSGI server puts paths and headers in the environ as latin-1 strings
    environ: dict[str, Any] = {
        "REQUEST_METHOD": draw(methods),
        "SCRIPT_NAME": draw(st.sampled_from(["", "", "/app"])),
        "PATH_INFO": draw(st.one_of(paths, st.binary(max_size=40).map(_latin1))),
        "QUERY_STRING": draw(st.binary(max_size=40).map(_latin1)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "", "HTTP/9"])),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in draw(headers):
        key = _latin1(name).upper().replace("-", "_")
        if key in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            environ[key] = _latin1(value)
        elif key:
            environ["HTTP_" + key] = _latin1(value)
    for key in draw(st.sets(st.sampled_from(["REQUEST_METHOD", "PATH_INFO", "QUERY_STRING"]))):
        environ.pop(key, None)
    return environ


def _call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[list[str], BaseException | None]:
    statuses: list[str] = []

    def start_response(status: str, headers: Iterable[tuple[str, str]], exc: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    try:
        result = app(environ, start_response)
        try:
            b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception as exc:
        return statuses, exc
    return statuses, None


@fuzz(200)
@given(environs())
def test_instrumented_flask_fails_only_as_the_app_does(environ: dict[str, Any]) -> None:
    bare = {**environ, "wsgi.input": io.BytesIO(environ["wsgi.input"].getvalue())}
    _, bare_error = _call_wsgi(BARE_FLASK, bare)
    statuses, error = _call_wsgi(FLASK, environ)
    if error is not None:
        assert type(error) is type(bare_error), (
            f"glassbox raised {error!r}; the bare app raised {bare_error!r}"
        )
    else:
        assert len(statuses) == 1, statuses
    for name, labels in parse(WSGI_REGISTRY.render(openmetrics=False)):
        values = dict(labels)
        if name.startswith("http_") and "method" in values:
            assert values["method"] in METHODS, values
            assert values.get("route", UNMATCHED_ROUTE) in WSGI_ROUTES, values
            assert values.get("status", "200") in STATUSES, values


@pytest.mark.parametrize("value", [b"\xb2", b"\xb9\xb2\xb3", "\u0661\u0662".encode()])
def test_a_content_length_of_non_ascii_digits_is_ignored(value: bytes) -> None:
    """``'²'.isdigit()`` is true but ``int('²')`` fails: glassbox must not crash on it."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/items/1",
        "headers": [(b"content-length", value)],
        "query_string": b"",
    }
    sent, error = run(INSTRUMENTED, scope, [{"type": "http.request", "body": b"x"}])
    assert error is None
    assert sent[0]["status"] == 200
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/items/1",
        "CONTENT_LENGTH": value.decode("latin-1"),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "wsgi.input": io.BytesIO(b"x"),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    statuses, error = _call_wsgi(FLASK, environ)
    assert error is None
    assert statuses[:1] == ["200 OK"], statuses


def test_a_request_id_ending_in_a_newline_is_not_echoed() -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/items/1",
        "headers": [(b"x-request-id", b"abc\n")],
        "query_string": b"",
    }
    sent, error = run(INSTRUMENTED, scope, [{"type": "http.request", "body": b""}])
    assert error is None
    echoed = dict(sent[0]["headers"])[b"x-request-id"]
    assert echoed != b"abc\n"
    assert b"\n" not in echoed


@pytest.mark.parametrize("name", ["orders_total\n", "orders_total\r\n"])
def test_metric_and_label_names_refuse_a_trailing_newline(name: str) -> None:
    from glassbox.exceptions import MetricNameError
    from glassbox.metrics.catalogue import check_label_names, check_metric_name

    with pytest.raises(MetricNameError):
        check_metric_name(name)
    with pytest.raises(MetricNameError):
        check_label_names([name], metric="orders_total")
