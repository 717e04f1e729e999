"""An app served by several worker processes in the multiprocess tests."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import glassbox

worker_up = glassbox.REGISTRY.gauge("worker_up", "1 per live worker.", mode="all")
worker_up.set(1)
jobs = glassbox.REGISTRY.counter("jobs", "Jobs done.")


async def item(request: Request) -> PlainTextResponse:
    jobs.inc()
    return PlainTextResponse(str(os.getpid()))


app = Starlette(routes=[Route("/items/{item_id}", item)])
glassbox.instrument(app, service="mp", process_metrics=False)
