"""Keiko backend: agent registry and chat, monitored with glassbox.

Run (after ``./scripts/setup.sh``)::

    KEIKO_DATABASE_URL=postgresql://keiko@127.0.0.1:5432/keiko \\
    KEIKO_REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/uvicorn --factory --app-dir examples/keiko keiko:create_app \\
        --host 127.0.0.1 --port 8000

Configuration comes from the environment, as Keiko's own is:

``KEIKO_DATABASE_URL``     PostgreSQL (agents live there); readiness fails without it
``KEIKO_REDIS_URL``        Redis (chat context cache); readiness fails without it
``KEIKO_AGENT_RUNTIME_URL`` the agent runtime's health URL; non-critical (degraded only)
``GLASSBOX_HEALTH_TOKEN``  protects ``/health/detailed`` (and check messages)
``GLASSBOX_EXAMPLE_FAULTS=1`` adds ``/admin/faults`` for the end-to-end test

What it exposes (``http`` prefix, the names the Keiko monitoring docs use):
``http_requests_total{method,route,status}``, ``http_request_duration_seconds``,
``api_errors_total{error_type}``, ``agent_operations_total{operation,status}`` and
``agent_operations_duration_seconds{operation}`` (registrations; a refused name is the
caller's error, not a failed registration), ``agents_registered`` (a gauge: it goes down
when an agent is removed, so it is not a ``_total`` counter), and the docs' custom-metric
pair ``custom_operations_total{operation_type}`` and ``custom_duration_seconds``, timed
with ``Histogram.time()``.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

import glassbox
from glassbox.demo.faults import Faults
from glassbox.health import checks

OPERATIONS = ("start", "stop", "reset")  # a fixed set: safe as a label
ERROR_TYPES = ("validation", "not_found", "storage", "cache")

metrics = glassbox.REGISTRY
api_errors = metrics.counter("api_errors", "API errors by kind.", ["error_type"], label_cap=20)
agents_registered = metrics.gauge("agents_registered", "Registered agents.", mode="max")
custom_operations = metrics.counter(
    "custom_operations", "Operations run on agents.", ["operation_type"], label_cap=20
)
custom_duration = metrics.histogram("custom_duration_seconds", "Seconds an agent operation took.")


class AgentSpec(BaseModel):
    name: str
    model: str = "default"


class ChatRequest(BaseModel):
    agent_id: str
    message: str


_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


@metrics.measured("agent_operations", {"operation": "register"})
async def register_agent(pool: AsyncConnectionPool, spec: AgentSpec) -> str:
    """Store a new agent; an exception counts as a failed registration."""
    agent_id = uuid.uuid4().hex[:12]
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO agents (id, name, model) VALUES (%s, %s, %s)",
            (agent_id, spec.name, spec.model),
        )
    return agent_id


def create_app() -> FastAPI:
    database_url = os.environ["KEIKO_DATABASE_URL"]
    redis_url = os.environ["KEIKO_REDIS_URL"]
    runtime_url = os.environ.get("KEIKO_AGENT_RUNTIME_URL")
    pool = AsyncConnectionPool(database_url, min_size=1, max_size=5, open=False, timeout=2)
    cache = aioredis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    faults = Faults()

    async def count_agents() -> None:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*) FROM agents")).fetchone()
        agents_registered.set(row[0] if row else 0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=False)
        try:
            async with pool.connection(timeout=10) as conn:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS agents (id text PRIMARY KEY, name text NOT NULL,"
                    " model text NOT NULL, state text NOT NULL DEFAULT 'stopped',"
                    " created timestamptz NOT NULL DEFAULT now())"
                )
            await count_agents()
        except Exception:  # readiness reports it; the service still starts
            api_errors.inc(1, "storage")
        yield
        await pool.close()
        await cache.aclose()

    app = FastAPI(title="keiko-backend", lifespan=lifespan)
    api = APIRouter(prefix="/api", dependencies=[Depends(faults.inject)])

    def fail(status: int, error_type: str, detail: str) -> HTTPException:
        api_errors.inc(1, error_type)
        return HTTPException(status_code=status, detail=detail)

    @api.post("/agents", status_code=201)
    async def register(spec: AgentSpec) -> dict[str, str]:
        if not _NAME.match(spec.name):
            raise fail(422, "validation", "agent names are lower-case letters, digits and dashes")
        try:
            agent_id = await register_agent(pool, spec)
        except Exception:
            raise fail(503, "storage", "agent store unavailable") from None
        await count_agents()
        return {"id": agent_id, "name": spec.name}

    @api.get("/agents")
    async def list_agents() -> list[dict[str, Any]]:
        try:
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT id, name, model FROM agents ORDER BY created")
                rows = await cur.fetchall()
        except Exception:
            raise fail(503, "storage", "agent store unavailable") from None
        return [{"id": r[0], "name": r[1], "model": r[2]} for r in rows]

    @api.get("/agents/{agent_id}")
    async def get_agent(agent_id: str) -> dict[str, Any]:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, name, model FROM agents WHERE id = %s", (agent_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise fail(404, "not_found", "no such agent")
        return {"id": row[0], "name": row[1], "model": row[2]}

    @api.delete("/agents/{agent_id}", status_code=204)
    async def remove_agent(agent_id: str) -> None:
        async with pool.connection() as conn:
            cur = await conn.execute("DELETE FROM agents WHERE id = %s", (agent_id,))
        if cur.rowcount == 0:
            raise fail(404, "not_found", "no such agent")
        await count_agents()

    @api.post("/agents/{agent_id}/operations/{operation}")
    async def operate(agent_id: str, operation: str) -> dict[str, str]:
        if operation not in OPERATIONS:
            raise fail(422, "validation", f"operation must be one of {', '.join(OPERATIONS)}")
        custom_operations.inc(1, operation)
        state = "running" if operation == "start" else "stopped"
        try:
            with custom_duration.time():
                async with pool.connection() as conn:
                    cur = await conn.execute(
                        "UPDATE agents SET state = %s WHERE id = %s", (state, agent_id)
                    )
        except Exception:
            raise fail(503, "storage", "agent store unavailable") from None
        if cur.rowcount == 0:
            raise fail(404, "not_found", "no such agent")
        return {"id": agent_id, "operation": operation, "status": state}

    @api.post("/chat")
    async def chat(request: ChatRequest) -> dict[str, str]:
        key = f"chat:{request.agent_id}"
        try:
            await cache.rpush(key, request.message)
            await cache.ltrim(key, -20, -1)
            await cache.expire(key, 3600)
            turns = await cache.llen(key)
        except Exception:
            raise fail(503, "cache", "conversation cache unavailable") from None
        return {"agent_id": request.agent_id, "reply": f"turn {turns}: noted"}

    app.include_router(api)
    exclude = faults.mount(app)  # /admin/faults with GLASSBOX_EXAMPLE_FAULTS=1

    health: list[checks.Check] = [
        checks.Postgres(pool),
        checks.Redis(cache),
        checks.Disk("/", warn=0.8, fail=0.9, critical=False),
        checks.Memory(warn=0.8, fail=0.9, critical=False),
        checks.Cpu(warn=0.8, critical=False),
    ]
    if runtime_url:
        health.append(checks.Http(runtime_url, name="agent-runtime", critical=False))
    glassbox.instrument(app, service="keiko-backend", version="1.0.0", health=health,
                        exclude=exclude)  # fmt: skip
    return app
