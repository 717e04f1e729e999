"""An app served by several workers with process metrics on (the default)."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import glassbox


async def pid(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


app = Starlette(routes=[Route("/pid", pid)])
glassbox.instrument(app, service="mp-process", logs=False, tracing=False)
