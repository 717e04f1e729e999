"""The service the schemathesis runs fuzz through a real server: Starlette (``starlette_app``,
for uvicorn) or Flask (``flask_app``, for gunicorn), instrumented from ``GLASSBOX_*``
variables, its checks chosen by ``OPENAPI_APP_CHECKS`` (``pass``, ``warn``, ``fail``)."""

from __future__ import annotations

import os

from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import glassbox
from glassbox.health.result import CheckResult


def database() -> bool:
    return True


def replica() -> CheckResult:
    return CheckResult.warned("replica lag 3.5 s", 3.5, "s")


def payments() -> bool:
    raise ConnectionRefusedError("the database refused the connection")


_CHECKS = {"pass": database, "warn": replica, "fail": payments}


def _checks() -> list[object]:
    names = os.environ.get("OPENAPI_APP_CHECKS", "pass").split(",")
    return [_CHECKS[name] for name in names if name]


async def _home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


starlette_app = glassbox.instrument(
    Starlette(routes=[Route("/", _home)]),
    service="fuzzed",
    version="1.2.3",
    health=_checks(),
    registry=glassbox.Registry(),
)

flask_app = Flask("fuzzed")
flask_app.add_url_rule("/", "home", lambda: "home")
glassbox.instrument(
    flask_app, service="fuzzed", version="1.2.3", health=_checks(), registry=glassbox.Registry()
)
