"""Every panel of every generated dashboard returns data from a live stack.

A real service (the demo shop, under uvicorn) with real Redis and PostgreSQL behind
their real exporters, node_exporter, real Prometheus and Alertmanager, and Prometheus
remote-writing into a real VictoriaMetrics: each dashboard query is asked of both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glassbox.local.stack import LocalPorts, LocalStack
from glassbox.stack.render.grafana import dashboard_queries
from glassbox.stack.verify import substitute_variables
from tests.conftest import free_port, stop_process, wait_for

NEEDED = (
    "prometheus",
    "redis-server",
    "prometheus-redis-exporter",
    "prometheus-node-exporter",
    "prometheus-postgres-exporter",
    "victoria-metrics",
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(shutil.which(b) is None for b in NEEDED),
        reason="the exporters and VictoriaMetrics come from ./scripts/setup.sh dev",
    ),
]

CONFIG = """\
[prometheus]
scrape_interval = "1s"
evaluation_interval = "1s"

[[prometheus.remote_write]]
name = "vm"
kind = "victoriametrics"
url = "http://127.0.0.1:{vm}/api/v1/write"

[[services]]
name = "shop"
targets = ["127.0.0.1:{shop}"]

[services.alerts]
window = "10s"

[[services.slos]]
name = "availability"
kind = "availability"
objective = 99.0

[[services.slos]]
name = "latency"
kind = "latency"
objective = 99.0
threshold = 0.25

[[services.business_metrics]]
name = "shop_orders_placed_total"
kind = "counter"
title = "Orders"
by = ["payment"]

[[services.business_metrics]]
name = "shop_cart_items"
kind = "histogram"
title = "Items per order"

[[dependencies]]
name = "cache"
kind = "redis"
targets = ["127.0.0.1:{redis_exporter}"]

[[dependencies]]
name = "db"
kind = "postgres"
targets = ["127.0.0.1:{pg_exporter}"]

[[dependencies]]
name = "host"
kind = "node"
targets = ["127.0.0.1:{node_exporter}"]

[[receivers]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"""


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


@pytest.fixture
def live(
    tmp_path: Path, redis_server: Any, postgres_server: Any
) -> Iterator[tuple[LocalStack, str]]:
    ports = {
        k: free_port() for k in ("vm", "shop", "redis_exporter", "pg_exporter", "node_exporter")
    }
    procs = [
        spawn(
            ["victoria-metrics", f"-httpListenAddr=127.0.0.1:{ports['vm']}",
             f"-storageDataPath={tmp_path / 'vm'}", "-search.latencyOffset=0s"],
            tmp_path / "vm.log",
        ),
        spawn(
            ["prometheus-redis-exporter", f"-redis.addr={redis_server.url}",
             f"-web.listen-address=127.0.0.1:{ports['redis_exporter']}"],
            tmp_path / "redis_exporter.log",
        ),
        spawn(
            ["prometheus-postgres-exporter",
             f"--web.listen-address=127.0.0.1:{ports['pg_exporter']}"],
            tmp_path / "pg_exporter.log",
            env={**os.environ, "DATA_SOURCE_NAME": postgres_server.dsn + "?sslmode=disable"},
        ),
        spawn(
            [
                "prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{ports['node_exporter']}",
            ],
            tmp_path / "node_exporter.log",
        ),
        spawn(
            [sys.executable, "-m", "uvicorn", "glassbox.demo.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(ports["shop"]), "--no-access-log"],
            tmp_path / "shop.log",
            env={**os.environ, "DEMO_REDIS_URL": redis_server.url},
        ),
    ]  # fmt: skip
    config = tmp_path / "glassbox.toml"
    config.write_text(CONFIG.format(**ports))
    stack = LocalStack(config, ports=LocalPorts(0, 0, 0, 0, 0), real_receivers=True)
    try:
        for port in ports.values():
            url = f"http://127.0.0.1:{port}/metrics"
            wait_for(lambda url=url: _answers(url), 30, f"port {port}")  # type: ignore[misc]
        stack.start(watch=False)
        yield stack, f"http://127.0.0.1:{ports['vm']}"
    finally:
        stack.stop()
        for proc in procs:
            stop_process(proc)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _empty(base: str, queries: list[tuple[str, str, str]]) -> list[str]:
    empty = []
    with httpx.Client(timeout=10) as client:
        for where, title, expr in queries:
            query = substitute_variables(expr, rate_interval="1m")
            body = client.get(f"{base}/api/v1/query", params={"query": query}).json()
            if body.get("status") != "success" or not body["data"]["result"]:
                empty.append(f"{where} {title!r}: {expr} -> {body.get('error') or 'no data'}")
    return empty


def _traffic(shop: str) -> None:
    """Requests of every kind; a connection the server closed under us is not a failure."""
    calls: list[tuple[str, str, dict[str, str | int]]] = []
    for i in range(30):
        calls.append(("GET", f"{shop}/api/items/{i}", {}))
        calls.append(("POST", f"{shop}/api/orders", {"items": i % 5 + 1, "payment": "card"}))
    calls.append(("GET", f"{shop}/health/ready", {}))
    calls.append(("POST", f"{shop}/api/orders", {"payment": "broken"}))  # an exception
    with httpx.Client(timeout=5, headers={"Connection": "close"}) as client:
        for method, url, params in calls:
            with contextlib.suppress(httpx.TransportError):
                client.request(method, url, params=params)


def test_every_dashboard_query_returns_data_in_prometheus_and_victoriametrics(
    live: tuple[LocalStack, str],
) -> None:
    stack, vm = live
    assert stack.config is not None
    shop = f"http://{stack.config.services[0].targets[0]}"
    boards = sorted((stack.config_path.parent / "monitoring/grafana/dashboards").glob("*.json"))
    queries = [
        (path.name, title, expr)
        for path in boards
        for title, expr in dashboard_queries(path.read_text())
    ]
    assert len(boards) >= 7, boards
    assert len(queries) >= 35, queries

    def all_answered(base: str) -> bool:
        _traffic(shop)
        return not _empty(base, queries)

    try:
        wait_for(lambda: all_answered(stack.prometheus_url), 90, "every panel in Prometheus")
    except AssertionError:
        raise AssertionError("\n".join(_empty(stack.prometheus_url, queries))) from None
    try:
        wait_for(lambda: all_answered(vm), 90, "every panel in VictoriaMetrics")
    except AssertionError:
        raise AssertionError("\n".join(_empty(vm, queries))) from None
    # the template variables' own queries find values too
    for path in boards:
        board = json.loads(path.read_text())
        for variable in board.get("templating", {}).get("list", []):
            query = variable.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            match = re.match(r"label_values\((.*),\s*(\w+)\)$", str(text or ""))
            if match is None:
                continue
            selector, label = match.groups()
            body = httpx.get(
                f"{stack.prometheus_url}/api/v1/series",
                params={"match[]": substitute_variables(selector, rate_interval="1m")},
                timeout=10,
            ).json()
            assert any(label in s for s in body["data"]), (path.name, text)
