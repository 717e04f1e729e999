"""Automation Orchestrator API: workflows, their runs and inbound webhooks, monitored with glassbox.

Run (after ``./scripts/setup.sh``)::

    ORCH_DATABASE_URL=postgresql://orchestrator@127.0.0.1:5432/orchestrator \\
    ORCH_REDIS_URL=redis://127.0.0.1:6379/0 GLASSBOX_HEALTH_TOKEN=change-me \\
    .venv/bin/uvicorn --factory --app-dir examples/automation-orchestrator \\
        orchestrator:create_app --host 127.0.0.1 --port 8000

Environment: ``ORCH_DATABASE_URL`` (PostgreSQL, used synchronously: ``def`` handlers in
FastAPI's thread pool) and ``ORCH_REDIS_URL`` (sessions, webhook de-duplication), both needed
for readiness; ``ORCH_DEMO_PASSWORD`` seeds the users ``operator`` and ``former`` (locked);
``GLASSBOX_HEALTH_TOKEN`` protects ``/health/detailed``; ``GLASSBOX_TRACE_SAMPLE_RATIO``
(0.1 unless set); ``GLASSBOX_EXAMPLE_FAULTS=1`` adds ``/admin/faults`` for the tests.

Metrics (``http`` prefix, the guide's names): ``http_requests_total{method,route,status}``,
``http_request_duration_seconds``, ``http_requests_in_progress``, ``auth_failures_total{reason}``,
``db_query_duration_seconds{operation}``, ``workflow_runs_total{workflow_type,status}``,
``workflow_runs_duration_seconds{workflow_type}``. Health: ``/health``, ``/health/live``,
``/health/ready``, ``/health/detailed``. Log events: ``auth_failed`` (``reason``) and
``slow_query`` (``operation``, ``db_duration_ms``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, LiteralString

import psycopg
import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

import glassbox
from glassbox.demo.faults import Faults
from glassbox.health import checks
from glassbox.logs import get_logger

# fixed sets; workflow_type is fixed by WorkflowSpec (workflow names and ids are never labels)
STEPS = frozenset({"extract", "transform", "load", "render", "send"})
WEBHOOK_SOURCES = frozenset({"github", "stripe", "slack"})
SLOW_QUERY = 1.0  # seconds; slower queries are logged

log = get_logger("orchestrator")
metrics = glassbox.REGISTRY
auth_failures = metrics.counter(  # reason: unknown_user, bad_password, locked
    "auth_failures", "Failed logins.", ["reason"], label_cap=10
)
db_query = metrics.histogram(
    "db_query_duration_seconds", "Database query duration.", ["operation"], label_cap=20,
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)  # fmt: skip

SCHEMA: tuple[LiteralString, ...] = (
    "CREATE TABLE IF NOT EXISTS users (name text PRIMARY KEY, salt bytea, hash bytea, locked bool)",
    "CREATE TABLE IF NOT EXISTS workflows (id text PRIMARY KEY, name text, workflow_type text,"
    " steps text[])",
    "CREATE TABLE IF NOT EXISTS runs (id text PRIMARY KEY, workflow_id text, status text,"
    " error text, finished timestamptz DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS webhook_events (id text PRIMARY KEY, source text, body jsonb)",
)


class Login(BaseModel):
    username: str
    password: str


class WorkflowSpec(BaseModel):
    name: str
    workflow_type: Literal["etl", "report", "notify"]
    steps: list[str]


class StepError(RuntimeError):
    """A workflow step the orchestrator does not know."""


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)


def _execute(steps: list[str]) -> None:
    for step in steps:
        if step not in STEPS:
            raise StepError(f"unknown step {step!r}")


def create_app() -> FastAPI:
    pool = ConnectionPool(
        os.environ["ORCH_DATABASE_URL"], min_size=1, max_size=8, open=False, timeout=1.0,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True, "connect_timeout": 2},
    )  # fmt: skip
    cache = redis.Redis.from_url(
        os.environ["ORCH_REDIS_URL"], socket_timeout=0.5, socket_connect_timeout=0.5
    )
    faults = Faults()

    def sql(operation: str, statement: LiteralString, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement, timed as ``db_query_duration_seconds{operation}``."""
        with pool.connection() as conn:
            start = time.perf_counter()
            try:
                cur = conn.execute(statement, params)
                return cur.fetchall() if cur.description else []
            finally:
                elapsed = time.perf_counter() - start
                db_query.observe(elapsed, operation)
                if elapsed > SLOW_QUERY:
                    log.warning("slow_query", operation=operation,
                                db_duration_ms=round(elapsed * 1000))  # fmt: skip

    def setup() -> None:
        pool.wait(timeout=10)
        for statement in SCHEMA:
            sql("migrate", statement)
        password = os.environ.get("ORCH_DEMO_PASSWORD")
        if not password:
            return
        for name, locked in (("operator", False), ("former", True)):
            salt = secrets.token_bytes(16)
            sql("insert_user", "INSERT INTO users VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (name, salt, _hash(password, salt), locked))  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=False)
        try:
            await asyncio.to_thread(setup)
        except Exception as exc:  # readiness reports it; the service still starts
            log.error("setup_failed", error=type(exc).__name__)
        yield
        pool.close()
        cache.close()

    app = FastAPI(title="automation-orchestrator", lifespan=lifespan)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "storage unavailable"}, status_code=503)

    app.add_exception_handler(psycopg.Error, unavailable)
    app.add_exception_handler(redis.RedisError, unavailable)

    auth = APIRouter(prefix="/auth", dependencies=[Depends(faults.inject)])
    api = APIRouter(prefix="/api", dependencies=[Depends(faults.inject)])

    @auth.post("/login")
    def login(body: Login) -> dict[str, str]:
        rows = sql("select_user", "SELECT salt, hash, locked FROM users WHERE name = %s",
                   (body.username,))  # fmt: skip
        reason = None
        if not rows:
            reason = "unknown_user"
        elif not hmac.compare_digest(_hash(body.password, rows[0][0]), rows[0][1]):
            reason = "bad_password"
        elif rows[0][2]:
            reason = "locked"
        if reason is not None:
            auth_failures.inc(1, reason)
            log.warning("auth_failed", reason=reason)
            raise HTTPException(status_code=401, detail="invalid credentials")
        token = secrets.token_urlsafe(32)
        cache.set(f"session:{hashlib.sha256(token.encode()).hexdigest()}", body.username, ex=3600)
        return {"access_token": token, "token_type": "bearer"}

    @api.post("/workflows", status_code=201)
    def create_workflow(spec: WorkflowSpec) -> dict[str, str]:
        workflow_id = uuid.uuid4().hex[:12]
        sql("insert_workflow", "INSERT INTO workflows VALUES (%s, %s, %s, %s)",
            (workflow_id, spec.name, spec.workflow_type, spec.steps))  # fmt: skip
        return {"id": workflow_id, "name": spec.name}

    @api.get("/workflows/{workflow_id}")
    def get_workflow(workflow_id: str) -> dict[str, Any]:
        rows = sql("select_workflow", "SELECT name, workflow_type, steps FROM workflows"
                   " WHERE id = %s", (workflow_id,))  # fmt: skip
        if not rows:
            raise HTTPException(status_code=404, detail="no such workflow")
        name, kind, steps = rows[0]
        return {"id": workflow_id, "name": name, "workflow_type": kind, "steps": steps}

    @api.post("/workflows/{workflow_id}/runs", status_code=201)
    def start_run(workflow_id: str) -> dict[str, Any]:
        workflow = get_workflow(workflow_id)
        kind, steps = workflow["workflow_type"], workflow["steps"]
        run_id, status, error = uuid.uuid4().hex[:12], "succeeded", None
        try:  # workflow_runs_total{workflow_type,status}, workflow_runs_duration_seconds
            with metrics.measure("workflow_runs", workflow_type=kind):
                _execute(steps)
        except StepError as exc:  # a failed run is a result, not a 5xx
            status, error = "failed", str(exc)
        sql("insert_run", "INSERT INTO runs VALUES (%s, %s, %s, %s)",
            (run_id, workflow_id, status, error))  # fmt: skip
        return {"id": run_id, "workflow_id": workflow_id, "status": status, "error": error}

    @api.get("/runs/{run_id}")
    def get_run(run_id: str) -> dict[str, Any]:
        rows = sql("select_run", "SELECT workflow_id, status, error FROM runs WHERE id = %s",
                   (run_id,))  # fmt: skip
        if not rows:
            raise HTTPException(status_code=404, detail="no such run")
        workflow_id, status, error = rows[0]
        return {"id": run_id, "workflow_id": workflow_id, "status": status, "error": error}

    @api.post("/webhooks/{source}", status_code=202)
    def receive_webhook(source: str, body: dict[str, Any]) -> dict[str, Any]:
        if source not in WEBHOOK_SOURCES:
            raise HTTPException(status_code=404, detail="unknown webhook source")
        delivery = str(body.get("id") or uuid.uuid4().hex)
        seen = f"webhook:{source}:{delivery}"
        if not cache.set(seen, 1, nx=True, ex=86400):
            return {"id": delivery, "duplicate": True}
        try:
            sql("insert_event", "INSERT INTO webhook_events VALUES (%s, %s, %s)",
                (f"{source}:{delivery}", source, Jsonb(body)))  # fmt: skip
        except psycopg.Error:
            cache.delete(seen)  # not stored: the sender's retry must not count as a duplicate
            raise
        return {"id": delivery, "duplicate": False}

    app.include_router(auth)
    app.include_router(api)
    exclude = faults.mount(app)  # /admin/faults with GLASSBOX_EXAMPLE_FAULTS=1

    health: list[checks.Check] = [
        checks.Postgres(pool, timeout=0.5),  # a sync pool: SELECT 1 in a worker thread
        checks.Redis(cache),  # a sync client also runs in a worker thread
        checks.Cpu(warn=0.8, critical=False),  # since the last probe; never sleeps
        checks.Memory(warn=0.8, fail=0.9, critical=False),
        checks.Disk("/", warn=0.85, fail=0.95, critical=False),
    ]
    ratio = float(os.environ.get("GLASSBOX_TRACE_SAMPLE_RATIO", "0.1"))  # guide: Sentry 0.1
    glassbox.instrument(app, service="automation-orchestrator", version="1.0.0", health=health,
                        exclude=exclude, trace_sample_ratio=ratio)  # fmt: skip
    return app
