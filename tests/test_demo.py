"""The README's main command: the demo service answers and exposes its metrics."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.conftest import free_port, port_open, wait_for
from tests.metrics.helpers import parse, value


@pytest.mark.slow
def test_demo_service_serves_traffic_and_metrics(processes: list) -> None:  # type: ignore[type-arg]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "glassbox", "demo", "--shop", "--port", str(port)],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    processes.append(proc)
    wait_for(lambda: port_open(port), 30, "the demo to listen")
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/api/items/42").json()["id"] == 42
    assert httpx.get(f"{base}/api/items/5000").status_code == 404
    for _ in range(5):
        httpx.post(f"{base}/api/orders", params={"items": 3})
    samples = parse(httpx.get(f"{base}/metrics").text)
    total = "http_requests_total"
    assert value(samples, total, method="GET", route="/api/items/{item_id}", status="200") == 1
    assert value(samples, total, method="GET", route="/api/items/{item_id}", status="404") == 1
    placed = value(samples, total, method="POST", route="/api/orders", status="200") or 0
    failed = value(samples, total, method="POST", route="/api/orders", status="500") or 0
    assert placed + failed == 5
    assert value(samples, "shop_cart_items_count") == 5
    assert value(samples, "service_info", service="shop", version="0.1.0", env="demo") == 1
