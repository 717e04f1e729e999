"""A service run under a real uvicorn subprocess by the logging tests."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import glassbox
from glassbox.logs import get_logger

log = get_logger("shop")
stdlib = logging.getLogger("shop.stdlib")


async def login(request: Request) -> PlainTextResponse:
    user = request.query_params.get("user", "")
    log.info("login attempt", user=user, password="hunter2-planted", api_key="AKIA-planted")
    stdlib.warning("stdlib says hello to %s", user)
    return PlainTextResponse("ok")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("database exploded")


app = Starlette(routes=[Route("/login", login), Route("/boom", boom)])
glassbox.instrument(app, service="shop", version="9.9.9", env="test", process_metrics=False)
