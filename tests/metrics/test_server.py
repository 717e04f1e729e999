"""``/metrics`` on a separate port."""

from __future__ import annotations

import httpx
import pytest
from starlette.testclient import TestClient

import glassbox
from glassbox.exceptions import ConfigurationError
from tests.conftest import free_port
from tests.metrics.helpers import parse, value
from tests.metrics.test_asgi import starlette_app


def test_metrics_on_their_own_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLASSBOX_METRICS_TOKEN", "tok")
    port = free_port()
    registry = glassbox.Registry()
    app = glassbox.instrument(starlette_app(), service="svc", registry=registry, metrics_port=port)
    state = app.state.glassbox
    try:
        assert state.metrics_server is not None
        assert state.metrics_server.server_address[0] == "127.0.0.1"
        client = TestClient(app)
        client.get("/items/1")
        assert client.get("/metrics").status_code == 404  # not on the app's port
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url).status_code == 401
        response = httpx.get(url, headers={"authorization": "Bearer tok"})
        assert response.status_code == 200
        samples = parse(response.text)
        assert (
            value(
                samples, "http_requests_total", method="GET", route="/items/{item_id}", status="200"
            )
            == 1
        )
        assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404
        # the port is taken now: a second app asking for it gets a clear error
        with pytest.raises(ConfigurationError, match=f"metrics_port {port}"):
            glassbox.instrument(
                starlette_app(), service="svc", registry=glassbox.Registry(), metrics_port=port
            )
    finally:
        if state.metrics_server is not None:
            state.metrics_server.shutdown()
            state.metrics_server.server_close()
