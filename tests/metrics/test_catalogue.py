"""The catalogue is the one vocabulary: what it says is what /metrics exposes."""

from __future__ import annotations

from starlette.testclient import TestClient

import glassbox
from glassbox.metrics.catalogue import DEFAULT_BUCKETS, le_label, red_catalogue
from tests.metrics.helpers import parse, series_of
from tests.metrics.test_asgi import starlette_app


def test_le_values_are_spelled_exactly_as_exposed() -> None:
    for buckets in (DEFAULT_BUCKETS, (1, 2, 5), (0.1, 1.0, 10.0)):
        registry = glassbox.Registry()
        app = glassbox.instrument(
            starlette_app(), service="svc", registry=registry, buckets=buckets
        )
        client = TestClient(app)
        client.get("/items/1")
        samples = parse(client.get("/metrics").text)
        exposed = [s["le"] for s in series_of(samples, "http_request_duration_seconds_bucket")]
        catalogue = red_catalogue(None, buckets)
        assert exposed == list(catalogue.le_values())
    assert le_label(1) == "1.0"  # not "1": le="1" and le="1.0" are different series


def test_catalogue_names_are_the_exposed_names() -> None:
    registry = glassbox.Registry()
    app = glassbox.instrument(starlette_app(), service="svc", registry=registry, namespace="kato")
    client = TestClient(app, raise_server_exceptions=False)
    client.get("/items/1")
    client.get("/boom")
    text = client.get("/metrics").text
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    catalogue = red_catalogue("kato")
    for spec in catalogue.all:
        for name in spec.sample_names:
            assert name in exposed, name


def test_bound_helpers() -> None:
    catalogue = red_catalogue()
    assert catalogue.is_bound(0.5)
    assert not catalogue.is_bound(0.3)
    assert catalogue.nearest_bounds(0.3) == (0.25, 0.5)
    assert catalogue.nearest_bounds(100) == (10.0, None)
