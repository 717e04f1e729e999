"""One vocabulary: what the rules and dashboards read is what a real service exposes."""

from __future__ import annotations

import re
import tomllib
from importlib.resources import files

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import glassbox
from glassbox.stack.build import render_stack
from glassbox.stack.config import parse_config

STARTER = tomllib.loads(files("glassbox.stack").joinpath("starter.toml").read_text())


async def item(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def boom(request: object) -> PlainTextResponse:
    raise RuntimeError("fails, so the exceptions counter is exposed too")


def scrape(namespace: str | None) -> str:
    app = Starlette(routes=[Route("/items/{id}", item), Route("/boom", boom)])
    glassbox.instrument(
        app,
        service="shop",
        namespace=namespace,
        registry=glassbox.Registry(),
        process_metrics=False,
    )
    client = TestClient(app, raise_server_exceptions=False)
    for _ in range(3):
        assert client.get("/items/1").status_code == 200
    assert client.get("/boom").status_code == 500
    text: str = client.get("/metrics").text
    return text


def exposed(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """Sample names, and the le values of every histogram bucket series."""
    names: set[str] = set()
    les: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            if sample.name.endswith("_bucket"):
                les.setdefault(sample.name, set()).add(sample.labels["le"])
    return names, les


def test_every_le_and_red_metric_in_the_stack_is_exposed_by_a_real_service() -> None:
    for namespace in (None, "kato"):
        data = dict(STARTER)
        data["services"] = [{**STARTER["services"][0], "namespace": namespace}]
        if namespace is None:
            del data["services"][0]["namespace"]
        rendered = render_stack(parse_config(data))
        names, les = exposed(scrape(namespace))
        prefix = namespace or "http"
        bucket = f"{prefix}_request_duration_seconds_bucket"
        assert bucket in les
        texts = [
            t
            for rel, t in rendered.items()
            if rel.startswith(("prometheus/rules/", "grafana/dashboards/"))
        ]
        used_les = {m for t in texts for m in re.findall(rf'{bucket}\{{[^}}]*le=\\?"([^"\\]+)', t)}
        assert used_les, "the latency SLO reads one bucket by its le"
        assert used_les <= les[bucket], (used_les, sorted(les[bucket]))
        # every RED metric name a rule or panel reads is one the service exposes
        red = {
            m
            for t in texts
            for m in re.findall(rf"\b{prefix}_[a-z_]+(?:_total|_bucket|_count|_sum|_progress)\b", t)
        }
        assert red, texts[:1]
        assert red <= names, red - names
