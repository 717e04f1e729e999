"""The demo service: a small FastAPI shop instrumented with glassbox."""

from __future__ import annotations

import asyncio
import random

from fastapi import APIRouter, FastAPI, HTTPException

import glassbox

metrics = glassbox.REGISTRY
orders_placed = metrics.counter(
    "orders_placed", "Orders placed, by payment method.", ["payment"], namespace="shop"
)
cart_items = metrics.histogram(
    "cart_items", "Items per order.", buckets=(1, 2, 5, 10, 20), namespace="shop"
)


@metrics.measured("payment_calls", {"provider": "demo-pay"}, namespace="shop")
async def charge(amount: float) -> str:
    await asyncio.sleep(random.uniform(0.001, 0.02))  # noqa: S311 - demo latency
    if random.random() < 0.05:  # noqa: S311 - demo faults
        raise RuntimeError("payment provider timed out")
    return f"charged {amount:.2f}"


def create_app() -> FastAPI:
    app = FastAPI(title="glassbox demo shop")
    api = APIRouter(prefix="/api")

    @api.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, object]:
        if item_id > 1000:
            raise HTTPException(status_code=404, detail="no such item")
        return {"id": item_id, "name": f"item {item_id}"}

    @api.post("/orders")
    async def place_order(items: int = 1, payment: str = "card") -> dict[str, object]:
        cart_items.observe(items)
        receipt = await charge(items * 9.99)
        orders_placed.inc(1, payment if payment in ("card", "paypal", "invoice") else "other")
        return {"status": "placed", "receipt": receipt}

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"service": "shop", "metrics": "/metrics"}

    app.include_router(api)
    glassbox.instrument(app, service="shop", version=glassbox.__version__, env="demo")
    return app
