"""Fault injection for the demo and the example services.

A :class:`Faults` object holds one :class:`Fault` per route template (or ``"*"`` for
every route). Its :meth:`Faults.inject` is a FastAPI dependency: put it on the routers
whose requests should feel the faults. :meth:`Faults.router` adds ``PUT`` and ``DELETE``
``/admin/faults`` so a test or the demo driver can change them while the service runs::

    PUT /admin/faults  {"route": "/api/chat", "error_ratio": 0.2, "latency": 1.5}

The admin route is only added where a service asks for it (the examples do when
``GLASSBOX_EXAMPLE_FAULTS=1``); exclude it from metrics with ``instrument(exclude=...)``.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request

__all__ = ["ADMIN_PATH", "Fault", "Faults"]

ADMIN_PATH = "/admin/faults"


class InjectedFaultError(RuntimeError):
    """The unhandled exception a fault with ``raise_ratio`` raises."""


@dataclass(slots=True)
class Fault:
    """What requests to one route suffer."""

    error_ratio: float = 0.0  # answered with 500
    raise_ratio: float = 0.0  # an unhandled exception escapes the handler
    latency: float = 0.0  # seconds added
    status: int = 500  # the status of an injected error

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Fault:
        def ratio(key: str) -> float:
            value = float(body.get(key, 0.0))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{key} must be between 0 and 1, got {value}")
            return value

        latency = float(body.get("latency", 0.0))
        if not 0.0 <= latency <= 60.0:
            raise ValueError(f"latency must be between 0 and 60 seconds, got {latency}")
        status = int(body.get("status", 500))
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, got {status}")
        return cls(ratio("error_ratio"), ratio("raise_ratio"), latency, status)


@dataclass(slots=True)
class Faults:
    """The faults in force, by route template."""

    by_route: dict[str, Fault] = field(default_factory=dict)

    def fault_for(self, route: str) -> Fault | None:
        return self.by_route.get(route) or self.by_route.get("*")

    async def inject(self, request: Request) -> None:
        """FastAPI dependency: delay, fail or raise as the route's fault says."""
        route = getattr(request.scope.get("route"), "path", None) or request.url.path
        fault = self.fault_for(route)
        if fault is None:
            return
        if fault.latency:
            await asyncio.sleep(fault.latency * random.uniform(0.95, 1.05))  # noqa: S311
        if fault.raise_ratio and random.random() < fault.raise_ratio:  # noqa: S311
            raise InjectedFaultError(f"injected exception on {route}")
        if fault.error_ratio and random.random() < fault.error_ratio:  # noqa: S311
            raise HTTPException(status_code=fault.status, detail="injected fault")

    def mount(self, app: FastAPI, *, env: str = "GLASSBOX_EXAMPLE_FAULTS") -> list[str]:
        """Add the admin routes when ``env`` is ``1``; the paths to exclude from metrics."""
        if os.environ.get(env) != "1":
            return []
        app.include_router(self.router())
        return [ADMIN_PATH]

    def router(self) -> APIRouter:
        """``PUT``/``GET``/``DELETE`` ``/admin/faults``."""
        admin = APIRouter()

        @admin.put(ADMIN_PATH)
        async def set_fault(body: dict[str, Any]) -> dict[str, Any]:
            route = str(body.get("route", "*"))
            try:
                fault = Fault.parse(body)
            except (TypeError, ValueError) as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
            self.by_route[route] = fault
            return {"route": route, **asdict(fault)}

        @admin.get(ADMIN_PATH)
        async def list_faults() -> dict[str, Any]:
            return {route: asdict(f) for route, f in self.by_route.items()}

        @admin.delete(ADMIN_PATH)
        async def clear_faults() -> dict[str, Any]:
            self.by_route.clear()
            return {}

        return admin
