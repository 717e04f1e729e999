"""A service run under a real uvicorn by the security tests: it logs what a careless
app logs (its request headers, cookies, a nested context) and labels a business
metric with a planted ``<script>``."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import glassbox
from glassbox.logs import get_logger

log = get_logger("planted")
MARKUP = os.environ.get("PLANTED_MARKUP", "<script>window.__pwned=1</script>")
events = glassbox.REGISTRY.counter("planted_events", "Planted events.", ["note"])
events.inc(1, MARKUP)


async def checkout(request: Request) -> PlainTextResponse:
    log.info(
        "checkout",
        headers=request.headers,
        cookies=request.cookies,
        scope={"headers": request.scope["headers"]},
        context={"http": {"request": {"headers": dict(request.headers)}}},
        note=MARKUP,
    )
    events.inc(1, MARKUP)
    return PlainTextResponse("ok")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError(f"failed for {request.headers.get('x-user', '')}")


app = Starlette(routes=[Route("/checkout", checkout), Route("/boom", boom)])
glassbox.instrument(app, service="planted", version="1.0.0", env="test")
