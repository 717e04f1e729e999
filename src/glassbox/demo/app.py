"""The demo service: a small FastAPI shop instrumented with glassbox.

With ``DEMO_REDIS_URL`` set, items are cached in Redis and readiness checks Redis, so
stopping Redis makes ``/health/ready`` answer 503. ``PUT /admin/faults`` (JSON
``{"error_ratio": 0.5, "latency": 0.8}``) injects faults into the ``/api`` routes; the
demo driver uses it for its timeline. The service only ever binds where it is told
(127.0.0.1 by default).
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException

import glassbox
from glassbox.health.checks import Check, Redis

metrics = glassbox.REGISTRY
orders_placed = metrics.counter(
    "orders_placed", "Orders placed, by payment method.", ["payment"], namespace="shop"
)
cart_items = metrics.histogram(
    "cart_items", "Items per order.", buckets=(1, 2, 5, 10, 20), namespace="shop"
)


@dataclass
class Faults:
    """Faults injected into every /api request."""

    error_ratio: float = 0.0
    latency: float = 0.0


@metrics.measured("payment_calls", {"provider": "demo-pay"}, namespace="shop")
async def charge(amount: float, payment: str = "card") -> str:
    await asyncio.sleep(random.uniform(0.001, 0.02))  # noqa: S311 - demo latency
    if payment == "broken" or random.random() < 0.01:  # noqa: S311 - demo faults
        raise RuntimeError("payment provider timed out")
    return f"charged {amount:.2f}"


def create_app(redis_url: str | None = None) -> FastAPI:
    faults = Faults()
    redis_url = redis_url or os.environ.get("DEMO_REDIS_URL")
    client: Any = None
    if redis_url:
        import redis.asyncio

        client = redis.asyncio.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)

    async def inject() -> None:
        if faults.latency:
            await asyncio.sleep(faults.latency * random.uniform(0.9, 1.1))  # noqa: S311
        if faults.error_ratio and random.random() < faults.error_ratio:  # noqa: S311
            raise HTTPException(status_code=500, detail="injected fault")

    app = FastAPI(title="glassbox demo shop")
    api = APIRouter(prefix="/api", dependencies=[Depends(inject)])

    @api.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, object]:
        if item_id > 1000:
            raise HTTPException(status_code=404, detail="no such item")
        name = f"item {item_id}"
        if client is not None:
            try:
                cached = await client.get(f"item:{item_id}")
                if cached is None:
                    await client.set(f"item:{item_id}", name, ex=60)
            except Exception as exc:
                raise HTTPException(status_code=503, detail="cache unavailable") from exc
        return {"id": item_id, "name": name}

    @api.post("/orders")
    async def place_order(items: int = 1, payment: str = "card") -> dict[str, object]:
        cart_items.observe(items)
        receipt = await charge(items * 9.99, payment)
        orders_placed.inc(1, payment if payment in ("card", "paypal", "invoice") else "other")
        return {"status": "placed", "receipt": receipt}

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"service": "shop", "metrics": "/metrics"}

    @app.put("/admin/faults")
    async def set_faults(body: dict[str, float]) -> dict[str, float]:
        faults.error_ratio = min(1.0, max(0.0, float(body.get("error_ratio", 0.0))))
        faults.latency = min(30.0, max(0.0, float(body.get("latency", 0.0))))
        return {"error_ratio": faults.error_ratio, "latency": faults.latency}

    app.include_router(api)
    checks: list[Check] = [Redis(url=redis_url, timeout=0.5)] if redis_url else []
    glassbox.instrument(
        app,
        service="shop",
        version=glassbox.__version__,
        env="demo",
        health=checks,
        exclude=["/admin/faults"],
    )
    return app
