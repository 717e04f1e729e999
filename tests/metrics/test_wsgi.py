"""The WSGI middleware on Flask, and on a plain WSGI callable."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from flask import Blueprint, Flask, Response

import glassbox
from tests.metrics.helpers import parse, series_of, value


def flask_app() -> Flask:
    app = Flask(__name__)
    bp = Blueprint("api", __name__, url_prefix="/api")

    @bp.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    @app.get("/stream")
    def stream() -> Response:
        def gen() -> Iterable[str]:
            yield "a" * 10
            yield "b" * 5

        return app.response_class(gen())

    app.register_blueprint(bp)
    return app


def test_flask_route_rules_and_errors() -> None:
    registry = glassbox.Registry()
    app = glassbox.instrument(flask_app(), service="svc", registry=registry)
    client = app.test_client()

    def get(path: str) -> tuple[int, bytes]:
        # like a WSGI server: read the body, then close the response iterable
        response = client.get(path)
        body = response.get_data()
        response.close()
        return response.status_code, body

    assert get("/api/users/1")[0] == 200
    assert get("/api/users/2")[0] == 200
    assert get("/nope")[0] == 404
    assert get("/boom")[0] == 500
    assert get("/stream") == (200, b"a" * 10 + b"b" * 5)
    get("/health/live")
    samples = parse(client.get("/metrics").get_data(as_text=True))
    total = "http_requests_total"
    assert value(samples, total, method="GET", route="/api/users/<int:user_id>", status="200") == 2
    assert value(samples, total, method="GET", route="<unmatched>", status="404") == 1
    assert value(samples, total, method="GET", route="/boom", status="500") == 1
    assert (
        value(samples, "http_response_size_bytes_sum", method="GET", route="/stream", status="200")
        == 15
    )
    assert {s["route"] for s in series_of(samples, total)} == {
        "/api/users/<int:user_id>",
        "<unmatched>",
        "/boom",
        "/stream",
    }


def test_plain_wsgi_callable_is_wrapped_and_exception_counted() -> None:
    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        if environ["PATH_INFO"] == "/fail":
            raise ValueError("bad")
        start_response("201 Created", [("content-type", "text/plain")])
        return [b"done"]

    registry = glassbox.Registry()
    wrapped = glassbox.instrument(app, service="svc", registry=registry)
    assert wrapped is not app
    from werkzeug.test import Client

    client = Client(wrapped)
    assert client.post("/x", data=b"12345").status_code == 201
    with pytest.raises(ValueError, match="bad"):
        client.get("/fail")
    samples = parse(client.get("/metrics").get_data(as_text=True))
    assert (
        value(samples, "http_requests_total", method="POST", route="<unmatched>", status="201") == 1
    )
    assert (
        value(
            samples, "http_request_size_bytes_sum", method="POST", route="<unmatched>", status="201"
        )
        == 5
    )
    assert (
        value(samples, "http_requests_total", method="GET", route="<unmatched>", status="500") == 1
    )
    assert (
        value(
            samples,
            "http_exceptions_total",
            method="GET",
            route="<unmatched>",
            exception_type="ValueError",
        )
        == 1
    )


def test_flask_request_id_and_access_line(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    app = Flask(__name__)

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    glassbox.instrument(
        app, service="flasky", registry=glassbox.Registry(), log_format="json", tracing=False
    )
    capsys.readouterr()
    client = app.test_client()
    response = client.get("/users/3", headers={"X-Request-ID": "abc-123"})
    response.get_data()
    response.close()
    assert response.headers["X-Request-ID"] == "abc-123"
    bad = client.get("/users/4", headers={"X-Request-ID": "bad id\\n"})
    bad.get_data()
    bad.close()
    assert bad.headers["X-Request-ID"] != "bad id\\n"
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    access = [r for r in lines if r.get("logger") == "glassbox.access"]
    assert [r["route"] for r in access] == ["/users/<int:user_id>"] * 2
    assert access[0]["request_id"] == "abc-123"
    assert access[0]["status"] == 200
    assert access[1]["request_id"] == bad.headers["X-Request-ID"]
